import {
  AirlockError,
  Digester,
  errnoCode,
  sha256Hex,
  digestOf,
  type OperationOptions,
} from "../registry/oci/index.js";
import { readChunks } from "../registry/store/index.js";
import type { FileSpec, BundleSpec } from "./spec.js";
import type { ByteStream } from "./sources.js";
import { listTree } from "./pack.js";
import { encodeHeader, endOfArchive, paddingFor } from "./tar.js";
import type { BundleWriter } from "./writer.js";
import type { ConcurrentPulls } from "./pulls.js";
import { BIN_DIR, DIRECTORY_MODE, MANIFESTS_DIR, entryNameProblem } from "./format.js";

/**
 * The entries of a bundle's archive as build plans them (files hashed in place, bytes in memory,
 * blobs from their sources) and their writing, in order, each body checked against its plan.
 */

/** One entry of the archive to write, body readable on demand. */
export interface PlannedEntry {
  name: string;
  type: "file" | "directory";
  mode: number;
  size: number;
  sha256?: string;
  open?: () => ByteStream;
  /** The stream checks its own digest (a registry pull): hashing it again here would only cost CPU. */
  selfChecking?: boolean;
  /** Read over the network (a registry pull): worth fetching ahead of its turn. */
  remote?: boolean;
}

async function hashFile(path: string, where: string): Promise<{ sha256: string; size: number }> {
  const digester = new Digester();
  try {
    for await (const chunk of readChunks(path)) digester.update(chunk);
  } catch (error) {
    throw new AirlockError("PATH_NOT_FOUND", `cannot read ${path}: ${(error as Error).message}`, {
      where,
      hint:
        errnoCode(error) === "ENOENT"
          ? "check the path (relative paths are relative to bundle.yaml)"
          : undefined,
    });
  }
  return { sha256: sha256Hex(digester.digest()), size: digester.size };
}

function fileEntry(name: string, path: string, size: number, sha256: string, mode: number): PlannedEntry {
  const problem = entryNameProblem(name);
  if (problem !== undefined) {
    throw new AirlockError(
      "PATH_UNSUPPORTED",
      `${path} would become bundle entry ${JSON.stringify(name)}, which ${problem}`,
      {
        where: path,
        hint: "rename the file: bundle entry names use letters, digits and . _ + @ = - only",
      },
    );
  }
  return {
    name,
    type: "file",
    mode,
    size,
    sha256,
    open: () => readChunks(path),
  };
}

export async function planFiles(spec: BundleSpec): Promise<PlannedEntry[]> {
  const entries: PlannedEntry[] = [];
  if (spec.manifests !== undefined) {
    for (const file of await listTree(spec.manifests, `manifests: ${spec.manifests}`)) {
      const { sha256, size } = await hashFile(file.absolute, `manifests: ${spec.manifests}`);
      entries.push(fileEntry(`${MANIFESTS_DIR}${file.path}`, file.absolute, size, sha256, 0o644));
    }
  }
  for (const file of spec.files) entries.push(await planBinFile(file));
  return entries;
}

async function planBinFile(file: FileSpec): Promise<PlannedEntry> {
  const where = `files: ${file.path}`;
  const { sha256, size } = await hashFile(file.path, where);
  if (file.sha256 !== undefined && file.sha256 !== sha256) {
    throw new AirlockError(
      "FILE_PIN_MISMATCH",
      `${file.path} hashes to ${sha256}, but bundle.yaml pins ${file.sha256}`,
      {
        where,
        hint: "the file changed: check it, then update the sha256: pin",
      },
    );
  }
  return fileEntry(`${BIN_DIR}${file.name}`, file.path, size, sha256, file.mode);
}

/** Directory entries for every parent of the given paths, in order, so tools that extract get real dirs. */
export function directoriesFor(names: string[], already: Set<string>): PlannedEntry[] {
  const out: PlannedEntry[] = [];
  for (const name of names) {
    const parts = name.split("/").slice(0, -1);
    for (let i = 1; i <= parts.length; i++) {
      const dir = `${parts.slice(0, i).join("/")}/`;
      if (!already.has(dir)) {
        already.add(dir);
        out.push({ name: dir, type: "directory", mode: DIRECTORY_MODE, size: 0 });
      }
    }
  }
  return out;
}

export function memoryEntry(name: string, bytes: Uint8Array): PlannedEntry {
  return {
    name,
    type: "file",
    mode: 0o644,
    size: bytes.byteLength,
    sha256: sha256Hex(digestOf(bytes)),
    open: () => [bytes],
  };
}

/**
 * Copies an entry's body through `put` (each chunk with its offset in the body), checking it against
 * the plan: never more bytes than planned (they would overwrite the next entry), then size and digest.
 */
export async function copyBody(
  entry: PlannedEntry,
  body: ByteStream,
  put: (chunk: Uint8Array, at: number) => Promise<void>,
  check: () => void,
): Promise<void> {
  const digester = entry.selfChecking === true ? undefined : new Digester();
  let written = 0;
  for await (const chunk of body) {
    check();
    if (written + chunk.byteLength > entry.size) throw sourceChanged(entry);
    const writing = put(chunk, written);
    digester?.update(chunk);
    written += chunk.byteLength;
    await writing;
  }
  if (written !== entry.size || (digester !== undefined && sha256Hex(digester.digest()) !== entry.sha256)) {
    throw sourceChanged(entry);
  }
}

function sourceChanged(entry: PlannedEntry): AirlockError {
  return new AirlockError("SOURCE_CHANGED", `${entry.name} changed while the bundle was written`, {
    where: entry.name,
    hint: "a source file or image was modified or damaged during the build: build again",
  });
}

/**
 * Streams the planned entries into the output in order, each body checked against its plan. With
 * `pulls`, a registry blob's range is reserved, once a pull can start, and pulled into beside the rest.
 */
export async function writeEntries(
  writer: BundleWriter,
  entries: PlannedEntry[],
  pulls: ConcurrentPulls | undefined,
  mtime: number,
  report: (item: string) => void,
  options: OperationOptions,
): Promise<void> {
  const check = (): void => {
    options.signal?.throwIfAborted();
    pulls?.throwIfStopped();
  };
  for (const entry of entries) {
    check();
    await writer.write(encodeHeader({ ...entry, mtime }));
    if (entry.type === "directory") continue;
    if (pulls !== undefined && entry.remote === true) {
      await pulls.add(entry);
    } else {
      await copyBody(
        entry,
        entry.open!(),
        async (chunk) => {
          await writer.write(chunk);
          report(entry.name);
        },
        check,
      );
    }
    await writer.write(new Uint8Array(paddingFor(entry.size)));
  }
  await writer.write(endOfArchive());
}
