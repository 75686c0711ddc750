import { lstat, readdir, readFile } from "node:fs/promises";
import { join, relative, sep } from "node:path";
import {
  AirlockError,
  Digester,
  MediaType,
  encodeJson,
  errnoCode,
  type Descriptor,
} from "../registry/oci/index.js";
import { readChunks } from "../registry/store/index.js";
import { bytesSource, type BlobSource, type ResolvedImage } from "./sources.js";
import { encodeHeader, endOfArchive, paddingFor } from "./tar.js";
import type { PackSpec } from "./spec.js";

export interface ResolvedPack {
  name: string;
  version: string;
  image: ResolvedImage;
}

export interface TreeFile {
  /** Path relative to the tree's root, with forward slashes. */
  path: string;
  absolute: string;
  size: number;
  mode: number;
}

/** Regular files of a directory tree, sorted; links and devices are refused so a build cannot leak the host. */
export async function listTree(root: string, where: string): Promise<TreeFile[]> {
  const files: TreeFile[] = [];
  const walk = async (dir: string): Promise<void> => {
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (error) {
      throw new AirlockError("PATH_NOT_FOUND", `cannot read directory ${dir}: ${(error as Error).message}`, {
        where,
        hint:
          errnoCode(error) === "ENOENT"
            ? "check the path (relative paths are relative to bundle.yaml)"
            : undefined,
      });
    }
    for (const name of names) {
      const absolute = join(dir, name);
      const info = await lstat(absolute);
      if (info.isDirectory()) await walk(absolute);
      else if (info.isFile()) {
        files.push({
          path: relative(root, absolute).split(sep).join("/"),
          absolute,
          size: info.size,
          mode: info.mode & 0o111 ? 0o755 : 0o644,
        });
      } else {
        throw new AirlockError("PATH_UNSUPPORTED", `${absolute} is not a regular file or directory`, {
          where,
          hint: "bundles carry regular files only: replace links with the files they point at",
        });
      }
    }
  };
  await walk(root);
  return files;
}

/** A deterministic tar of a file tree (mtime 0, owner 0, modes normalised), as a re-readable stream. */
function treeTar(files: TreeFile[]): { size: number; open: () => AsyncGenerator<Uint8Array> } {
  let size = 1024;
  for (const file of files) {
    size += encodeHeader({
      name: file.path,
      size: file.size,
      mode: file.mode,
      type: "file",
      mtime: 0,
    }).byteLength;
    size += file.size + paddingFor(file.size);
  }
  const open = async function* (): AsyncGenerator<Uint8Array> {
    for (const file of files) {
      yield encodeHeader({ name: file.path, size: file.size, mode: file.mode, type: "file", mtime: 0 });
      let read = 0;
      for await (const chunk of readChunks(file.absolute)) {
        read += chunk.byteLength;
        yield chunk;
      }
      if (read !== file.size) {
        throw new AirlockError("SOURCE_CHANGED", `${file.absolute} changed size while the pack was read`, {
          hint: "do not edit a pack while a build runs",
        });
      }
      yield new Uint8Array(paddingFor(file.size));
    }
    yield endOfArchive();
  };
  return { size, open };
}

interface PackYaml {
  name: string;
  version: string;
}

/** yaml and semver load here, on first use, as the spec parser does (see loadBundleSpec). */
async function readPackYaml(text: string, where: string): Promise<PackYaml> {
  const [{ parse: parseYaml }, { valid: validSemver }] = await Promise.all([
    import("yaml"),
    import("semver"),
  ]);
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (error) {
    throw new AirlockError("PACK_INVALID", `pack.yaml is not valid YAML: ${(error as Error).message}`, {
      where,
    });
  }
  const pack = doc as Partial<PackYaml> | null;
  if (typeof pack?.name !== "string" || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(pack.name)) {
    throw new AirlockError("PACK_INVALID", "pack.yaml needs a name: lowercase letters, digits and dashes", {
      where,
      hint: "e.g. name: observability",
    });
  }
  if (typeof pack.version !== "string" || validSemver(pack.version) === null) {
    throw new AirlockError("PACK_INVALID", "pack.yaml needs a semver version:", {
      where,
      hint: 'e.g. version: "0.1.0"',
    });
  }
  return { name: pack.name, version: pack.version };
}

/**
 * A pack becomes an OCI artifact: artifactType `application/vnd.airlock.pack.v1`, a small JSON config
 * with its name and version, and one layer holding the pack directory as a deterministic tar.
 */
export async function resolvePack(spec: PackSpec): Promise<ResolvedPack> {
  const where = `pack ${spec.path}`;
  const yamlPath = join(spec.path, "pack.yaml");
  const text = await readFile(yamlPath, "utf8").catch((error: unknown) => {
    throw new AirlockError("PACK_INVALID", `cannot read pack.yaml: ${(error as Error).message}`, {
      where: yamlPath,
      hint: "a pack is a directory holding pack.yaml, values.yaml and templates/",
    });
  });
  const { name, version } = await readPackYaml(text, yamlPath);
  const files = await listTree(spec.path, where);
  const tar = treeTar(files);
  const digester = new Digester();
  for await (const chunk of tar.open()) digester.update(chunk);
  const layer: BlobSource = {
    digest: digester.digest(),
    size: tar.size,
    mediaType: MediaType.AirlockPackLayer,
    open: tar.open,
  };
  const config = bytesSource(encodeJson({ name, version }), MediaType.AirlockPackConfig);
  const describe = (blob: BlobSource): Descriptor => ({
    mediaType: blob.mediaType,
    digest: blob.digest,
    size: blob.size,
  });
  const manifest = bytesSource(
    encodeJson({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType: MediaType.AirlockPack,
      config: describe(config),
      layers: [
        { ...describe(layer), annotations: { "org.opencontainers.image.title": `${name}-${version}.tar` } },
      ],
      annotations: { "org.opencontainers.image.title": name, "org.opencontainers.image.version": version },
    }),
    MediaType.OciManifest,
  );
  return {
    name,
    version,
    image: {
      ref: `packs/${name}:${version}`,
      descriptor: describe(manifest),
      sourceDigest: manifest.digest,
      platforms: [],
      blobs: [config, layer, manifest],
    },
  };
}
