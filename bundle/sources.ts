import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import {
  AirlockError,
  Digester,
  MediaType,
  REF_NAME_ANNOTATION,
  artifactTypeOf,
  childDescriptors,
  digestOf,
  encodeJson,
  errnoCode,
  formatPlatform,
  isIndexMediaType,
  isManifestMediaType,
  parseManifest,
  platformMatches,
  subjectOf,
  MAX_MANIFEST_BYTES,
  type Descriptor,
  type Digest,
  type ImageIndex,
  type ParsedManifest,
  type Platform,
} from "../registry/oci/index.js";
import { readChunks } from "../registry/store/index.js";
import { indexTarFile, type TarEntry } from "./tar.js";
import type { BundleReferrer } from "./format.js";
import type { RegistryConnections } from "./registry-source.js";
import type { ImageSpec, ImageSourceSpec, RegistrySourceSpec } from "./spec.js";

/** Chunks of bytes; `for await` takes both kinds, so a small in-memory blob is just `[bytes]`. */
export type ByteStream = AsyncIterable<Uint8Array> | Iterable<Uint8Array>;

/** One blob an image needs, readable as a stream. The digest is checked by whoever consumes it. */
export interface BlobSource {
  digest: Digest;
  size: number;
  mediaType: string;
  open(): ByteStream;
  /** open() checks the bytes against `digest` and `size` itself and fails before handing out the last of them. */
  selfChecking?: boolean;
  /** open() reads over the network (a registry pull), so a build fetches it ahead of its turn. */
  remote?: boolean;
}

/** A place images are read from: go-containerregistry's small interface, reduced to what build needs. */
interface ImageStore {
  readonly label: string;
  /** The top manifest or index a reference names. */
  resolve(ref: string | undefined): Promise<Descriptor>;
  blob(descriptor: Descriptor): Promise<BlobSource>;
  /** Manifests whose subject is `digest`, where the source can tell (a registry's referrers API). */
  referrers?(digest: Digest): Promise<Descriptor[]>;
}

/** What resolving shares across a build's images: file sources opened once, registry connections. */
export interface SourceContext {
  stores: Map<string, ImageStore>;
  registries: RegistryConnections;
}

export interface ResolvedImage {
  ref: string;
  descriptor: Descriptor;
  sourceDigest: Digest;
  platforms: string[];
  /** Every blob of the image, manifests included, each once, children before parents; referrers' too. */
  blobs: BlobSource[];
  /** Manifests referring to the image, when asked for (`referrers: true`). */
  referrers?: BundleReferrer[] | undefined;
}

export function bytesSource(bytes: Uint8Array, mediaType: string): BlobSource {
  return {
    digest: digestOf(bytes),
    size: bytes.byteLength,
    mediaType,
    open: () => [bytes],
  };
}

export function fileRangeSource(path: string, start: number, descriptor: Descriptor): BlobSource {
  return {
    digest: descriptor.digest,
    size: descriptor.size,
    mediaType: descriptor.mediaType,
    open: () => readChunks(path, { start, length: descriptor.size }),
  };
}

async function readAll(source: BlobSource, label: string): Promise<Uint8Array> {
  if (source.size > MAX_MANIFEST_BYTES) {
    throw new AirlockError(
      "MANIFEST_INVALID",
      `${source.digest} is ${source.size} bytes, too large to be metadata`,
      {
        where: label,
      },
    );
  }
  const chunks: Uint8Array[] = [];
  // Copied: file readers reuse their buffers once the next chunk is asked for.
  for await (const chunk of source.open()) chunks.push(Buffer.from(chunk));
  const bytes = Buffer.concat(chunks);
  const actual = digestOf(bytes);
  if (actual !== source.digest || bytes.byteLength !== source.size) {
    throw new AirlockError("SOURCE_CORRUPT", `${source.digest} holds content hashing to ${actual}`, {
      where: label,
      hint: "the image source is damaged: export or copy it again",
    });
  }
  return bytes;
}

type FileSourceSpec = Exclude<ImageSourceSpec, RegistrySourceSpec>;

function sourceLabel(spec: FileSourceSpec): string {
  return `${spec.transport}:${spec.path}${spec.ref === undefined ? "" : `:${spec.ref}`}`;
}

function refNotFound(label: string, ref: string | undefined, known: string[]): AirlockError {
  return new AirlockError(
    "IMAGE_NOT_FOUND",
    ref === undefined
      ? `the source holds ${known.length} images; name one`
      : `no image named ${ref} in the source`,
    {
      where: label,
      hint: known.length === 0 ? "the source holds no named images" : `the source has: ${known.join(", ")}`,
    },
  );
}

function missingSource(label: string, error: unknown): AirlockError {
  return new AirlockError("SOURCE_NOT_FOUND", `cannot read the image source: ${(error as Error).message}`, {
    where: label,
    hint: "check the path in the image's source: (relative paths are relative to bundle.yaml)",
    cause: error,
  });
}

function pickByRefName(index: ImageIndex, ref: string | undefined, label: string): Descriptor {
  const named = index.manifests.filter((d) => d.annotations?.[REF_NAME_ANNOTATION] !== undefined);
  const names = named.map((d) => d.annotations![REF_NAME_ANNOTATION]!);
  if (ref === undefined) {
    if (index.manifests.length === 1) return index.manifests[0]!;
    throw refNotFound(label, ref, names);
  }
  const found = named.find((d) => d.annotations![REF_NAME_ANNOTATION] === ref);
  if (found === undefined) throw refNotFound(label, ref, names);
  return found;
}

async function readEntry(path: string, entry: TarEntry): Promise<Buffer> {
  if (entry.size > MAX_MANIFEST_BYTES) {
    throw new AirlockError(
      "SOURCE_CORRUPT",
      `${entry.name} is ${entry.size} bytes, too large to be metadata`,
      {
        where: path,
      },
    );
  }
  const handle = await open(path, "r");
  try {
    const buffer = Buffer.alloc(entry.size);
    await handle.read(buffer, 0, entry.size, entry.dataOffset);
    return buffer;
  } finally {
    await handle.close();
  }
}

class OciLayoutStore implements ImageStore {
  constructor(
    readonly label: string,
    private readonly dir: string,
  ) {}

  async resolve(ref: string | undefined): Promise<Descriptor> {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(this.dir, "index.json"));
    } catch (error) {
      throw missingSource(this.label, error);
    }
    return pickFromLayoutIndex(bytes, ref, this.label);
  }

  async blob(descriptor: Descriptor): Promise<BlobSource> {
    const [algorithm, hex] = descriptor.digest.split(":") as [string, string];
    const path = join(this.dir, "blobs", algorithm, hex);
    const info = await stat(path).catch((error: unknown) => {
      if (errnoCode(error) === "ENOENT") {
        throw new AirlockError(
          "SOURCE_BLOB_MISSING",
          `blob ${descriptor.digest} is missing from the layout`,
          {
            where: this.label,
            hint: "the OCI layout is incomplete: copy the image into it again",
          },
        );
      }
      throw error;
    });
    if (info.size !== descriptor.size) {
      throw new AirlockError(
        "SOURCE_CORRUPT",
        `blob ${descriptor.digest} is ${info.size} bytes, expected ${descriptor.size}`,
        {
          where: this.label,
        },
      );
    }
    return fileRangeSource(path, 0, descriptor);
  }
}

/** A tar read in place: indexed once by seeking over headers, entries then read as byte ranges. */
class ArchiveFile {
  private entries: Map<string, TarEntry> | undefined;

  constructor(
    private readonly label: string,
    readonly path: string,
    private readonly kind: string,
  ) {}

  async entry(name: string): Promise<TarEntry> {
    if (this.entries === undefined) {
      try {
        this.entries = await indexTarFile(this.path);
      } catch (error) {
        if (error instanceof AirlockError) throw error;
        throw missingSource(this.label, error);
      }
    }
    const entry = this.entries.get(name.replace(/^\.\//, ""));
    if (entry === undefined || entry.typeflag !== "0") {
      throw new AirlockError("SOURCE_BLOB_MISSING", `the archive has no ${name}`, {
        where: this.label,
        hint: `the archive is incomplete or is not ${this.kind}`,
      });
    }
    return entry;
  }

  async read(name: string): Promise<Buffer> {
    return readEntry(this.path, await this.entry(name));
  }
}

/** The image a layout's index.json names by its ref.name annotation. */
function pickFromLayoutIndex(bytes: Uint8Array, ref: string | undefined, label: string): Descriptor {
  const parsed = parseManifest(bytes, MediaType.OciIndex, `${label} index.json`);
  if (parsed.kind !== "index") {
    throw new AirlockError("SOURCE_CORRUPT", "index.json is not an index", { where: label });
  }
  return pickByRefName(parsed.index, ref, label);
}

/** An OCI layout packed in a tar (skopeo's `oci-archive:`), read in place. */
class OciArchiveStore implements ImageStore {
  private readonly archive: ArchiveFile;

  constructor(
    readonly label: string,
    path: string,
  ) {
    this.archive = new ArchiveFile(label, path, "an OCI archive");
  }

  async resolve(ref: string | undefined): Promise<Descriptor> {
    return pickFromLayoutIndex(await this.archive.read("index.json"), ref, this.label);
  }

  async blob(descriptor: Descriptor): Promise<BlobSource> {
    const entry = await this.archive.entry(`blobs/${descriptor.digest.replace(":", "/")}`);
    if (entry.size !== descriptor.size) {
      throw new AirlockError(
        "SOURCE_CORRUPT",
        `blob ${descriptor.digest} is ${entry.size} bytes, expected ${descriptor.size}`,
        {
          where: this.label,
        },
      );
    }
    return fileRangeSource(this.archive.path, entry.dataOffset, descriptor);
  }
}

interface DockerArchiveImage {
  Config: string;
  RepoTags?: string[] | null;
  Layers: string[];
}

/** Docker Hub's implicit prefixes, which `docker save` and skopeo may or may not write into RepoTags. */
function normaliseDockerRef(ref: string): string {
  return ref.replace(/^docker\.io\//, "").replace(/^library\//, "");
}

async function layerMediaType(path: string, entry: TarEntry): Promise<string> {
  const handle = await open(path, "r");
  try {
    const magic = Buffer.alloc(4);
    await handle.read(magic, 0, 4, entry.dataOffset);
    if (magic[0] === 0x1f && magic[1] === 0x8b) return MediaType.OciLayerGzip;
    if (magic.readUInt32LE(0) === 0xfd2fb528) return MediaType.OciLayerZstd;
    return MediaType.OciLayer;
  } finally {
    await handle.close();
  }
}

/**
 * A `docker save` archive, converted to OCI as it is read: the config and layers are kept byte for
 * byte (so no recompression and no new layer digests) and an OCI manifest is written around them.
 */
class DockerArchiveStore implements ImageStore {
  private readonly archive: ArchiveFile;
  private readonly generated = new Map<Digest, BlobSource>();

  constructor(
    readonly label: string,
    private readonly path: string,
  ) {
    this.archive = new ArchiveFile(label, path, "a docker-archive (docker save) tar");
  }

  private async hashEntry(entry: TarEntry): Promise<Digest> {
    const digester = new Digester();
    const probe = fileRangeSource(this.path, entry.dataOffset, {
      mediaType: "",
      digest: "sha256:0",
      size: entry.size,
    });
    for await (const chunk of probe.open()) digester.update(chunk);
    return digester.digest();
  }

  async resolve(ref: string | undefined): Promise<Descriptor> {
    const listing = JSON.parse(
      (await this.archive.read("manifest.json")).toString("utf8"),
    ) as DockerArchiveImage[];
    const tags = listing.flatMap((image) => image.RepoTags ?? []);
    const image =
      ref === undefined
        ? listing.length === 1
          ? listing[0]
          : undefined
        : listing.find((candidate) =>
            (candidate.RepoTags ?? []).some((tag) => normaliseDockerRef(tag) === normaliseDockerRef(ref)),
          );
    if (image === undefined) throw refNotFound(this.label, ref, tags);

    const configBytes = await this.archive.read(image.Config);
    const config: Descriptor = {
      mediaType: MediaType.OciConfig,
      digest: digestOf(configBytes),
      size: configBytes.byteLength,
    };
    this.generated.set(config.digest, bytesSource(configBytes, config.mediaType));
    const layers: Descriptor[] = [];
    for (const layerName of image.Layers) {
      const entry = await this.archive.entry(layerName);
      const layer: Descriptor = {
        mediaType: await layerMediaType(this.path, entry),
        digest: await this.hashEntry(entry),
        size: entry.size,
      };
      this.generated.set(layer.digest, fileRangeSource(this.path, entry.dataOffset, layer));
      layers.push(layer);
    }
    const manifestBytes = encodeJson({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers });
    const manifest = bytesSource(manifestBytes, MediaType.OciManifest);
    this.generated.set(manifest.digest, manifest);
    return { mediaType: MediaType.OciManifest, digest: manifest.digest, size: manifest.size };
  }

  blob(descriptor: Descriptor): Promise<BlobSource> {
    const source = this.generated.get(descriptor.digest);
    if (source === undefined) {
      return Promise.reject(
        new AirlockError("SOURCE_BLOB_MISSING", `blob ${descriptor.digest} is not in the archive`, {
          where: this.label,
        }),
      );
    }
    return Promise.resolve(source);
  }
}

function openImageStore(spec: FileSourceSpec): ImageStore {
  const label = sourceLabel(spec);
  switch (spec.transport) {
    case "oci":
      return new OciLayoutStore(label, spec.path);
    case "oci-archive":
      return new OciArchiveStore(label, spec.path);
    case "docker-archive":
      return new DockerArchiveStore(label, spec.path);
  }
}

function imageStoreFor(spec: ImageSpec, context: SourceContext): ImageStore {
  const source = spec.source;
  // One store per registry image, so that its errors name the image; the connection is shared.
  if (source.transport === "docker") return context.registries.imageStore(source, spec.ref);
  const key = `${source.transport}:${source.path}`;
  let store = context.stores.get(key);
  if (store === undefined) {
    store = openImageStore(source);
    context.stores.set(key, store);
  }
  return store;
}

function platformOfConfig(configBytes: Uint8Array): Platform | undefined {
  const config = JSON.parse(new TextDecoder().decode(configBytes)) as Partial<Platform>;
  if (typeof config.os !== "string" || typeof config.architecture !== "string") return undefined;
  return {
    os: config.os,
    architecture: config.architecture,
    ...(config.variant === undefined ? {} : { variant: config.variant }),
  };
}

/** A manifest or index and everything under it, into `blobs`; returns it parsed. */
async function addManifestTree(
  store: ImageStore,
  descriptor: Descriptor,
  blobs: Map<Digest, BlobSource>,
  where: string,
): Promise<ParsedManifest> {
  const source = await store.blob(descriptor);
  const parsed = parseManifest(await readAll(source, where), descriptor.mediaType, where);
  for (const child of childDescriptors(parsed)) {
    if (isIndexMediaType(child.mediaType) || isManifestMediaType(child.mediaType)) {
      await addManifestTree(store, child, blobs, where);
    } else blobs.set(child.digest, await store.blob(child));
  }
  blobs.set(descriptor.digest, source);
  return parsed;
}

/**
 * The manifests referring to `subjects` (signatures, SBOMs), and those referring to them in turn (a
 * signature of an SBOM), each with its blobs added to `blobs`. Sorted by digest per subject, so the
 * same registry content gives the same bundle whatever order the registry lists them in.
 */
async function collectReferrers(
  store: ImageStore,
  subjects: Digest[],
  blobs: Map<Digest, BlobSource>,
  where: string,
): Promise<BundleReferrer[]> {
  if (store.referrers === undefined) {
    throw new AirlockError("SOURCE_UNSUPPORTED", `${store.label} cannot list referrers`, {
      where,
      hint: "referrers: true needs a docker:// source",
    });
  }
  const found: BundleReferrer[] = [];
  const seen = new Set(subjects);
  const queue = [...seen];
  for (let subject = queue.shift(); subject !== undefined; subject = queue.shift()) {
    const listed = (await store.referrers(subject)).sort((a, b) => (a.digest < b.digest ? -1 : 1));
    for (const descriptor of listed) {
      if (seen.has(descriptor.digest)) continue;
      seen.add(descriptor.digest);
      const parsed = await addManifestTree(store, descriptor, blobs, where);
      const named = subjectOf(parsed)?.digest;
      if (named !== subject) {
        throw new AirlockError(
          "SOURCE_CORRUPT",
          `the registry lists ${descriptor.digest} as a referrer of ${subject}, but its subject is ${named ?? "missing"}`,
          {
            where,
            hint: "the registry's referrers index is wrong: ask its operator, or drop referrers: true",
          },
        );
      }
      const artifactType = artifactTypeOf(parsed);
      found.push({
        digest: descriptor.digest,
        mediaType: descriptor.mediaType,
        size: descriptor.size,
        ...(artifactType === undefined ? {} : { artifactType }),
        subject,
      });
      queue.push(descriptor.digest);
    }
  }
  return found;
}

/**
 * Resolves one `images:` entry to every blob it needs. Indexes are kept whole, or narrowed to the
 * `platforms:` asked for (which makes a new index, and so a new top digest).
 */
export async function resolveImage(spec: ImageSpec, context: SourceContext): Promise<ResolvedImage> {
  const store = imageStoreFor(spec, context);
  const where = `image ${spec.ref} (${store.label})`;
  const top = await store.resolve(spec.source.ref);
  if (spec.digest !== undefined && spec.digest !== top.digest) {
    throw new AirlockError(
      "DIGEST_PIN_MISMATCH",
      `the source's ${spec.ref} is ${top.digest}, but bundle.yaml pins ${spec.digest}`,
      {
        where,
        hint: "the image changed at the source: check it, then update the digest: pin",
      },
    );
  }
  const blobs = new Map<Digest, BlobSource>();
  const platforms: string[] = [];
  const addImageManifest = async (
    descriptor: Descriptor,
    wanted: Platform[] | undefined,
  ): Promise<boolean> => {
    const manifestSource = await store.blob(descriptor);
    const parsed = parseManifest(await readAll(manifestSource, where), descriptor.mediaType, where);
    if (parsed.kind !== "manifest")
      throw new AirlockError("MANIFEST_INVALID", "nested index inside an index", { where });
    const configSource = await store.blob(parsed.manifest.config);
    const platform = descriptor.platform ?? platformOfConfig(await readAll(configSource, where));
    if (wanted !== undefined && !wanted.some((p) => platformMatches(platform, p))) return false;
    for (const child of childDescriptors(parsed)) blobs.set(child.digest, await store.blob(child));
    blobs.set(descriptor.digest, manifestSource);
    if (platform !== undefined) platforms.push(formatPlatform(platform));
    return true;
  };

  let descriptor: Descriptor = top;
  /** The manifests the bundle carries as the source has them: what referrers can point at. */
  const subjects: Digest[] = [];
  if (isIndexMediaType(top.mediaType)) {
    const indexSource = await store.blob(top);
    const parsed = parseManifest(await readAll(indexSource, where), top.mediaType, where);
    if (parsed.kind !== "index") throw new AirlockError("MANIFEST_INVALID", "expected an index", { where });
    const kept: Descriptor[] = [];
    for (const child of parsed.index.manifests) {
      if (await addImageManifest(child, spec.platforms)) kept.push(child);
    }
    if (kept.length === parsed.index.manifests.length) {
      blobs.set(top.digest, indexSource);
      subjects.push(top.digest);
    } else {
      // A narrowed index is new: what referred to the source's index (its signature) does not hold for it.
      const narrowed = bytesSource(encodeJson({ ...parsed.index, manifests: kept }), top.mediaType);
      blobs.set(narrowed.digest, narrowed);
      descriptor = { mediaType: top.mediaType, digest: narrowed.digest, size: narrowed.size };
    }
    subjects.push(...kept.map((child) => child.digest));
  } else if (await addImageManifest(top, spec.platforms)) {
    subjects.push(top.digest);
  }
  if (platforms.length === 0 && spec.platforms !== undefined) {
    throw new AirlockError(
      "PLATFORM_NOT_FOUND",
      `${spec.ref} has none of the platforms ${spec.platforms.map(formatPlatform).join(", ")}`,
      {
        where,
        hint: "drop platforms: or name one the image was built for",
      },
    );
  }
  const referrers = spec.referrers ? await collectReferrers(store, subjects, blobs, where) : undefined;
  return {
    ref: spec.ref,
    descriptor: { mediaType: descriptor.mediaType, digest: descriptor.digest, size: descriptor.size },
    sourceDigest: top.digest,
    platforms: [...new Set(platforms)].sort(),
    blobs: [...blobs.values()],
    referrers,
  };
}

export type { ImageStore };
