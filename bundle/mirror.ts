import { open } from "node:fs/promises";
import {
  AirlockError,
  Digester,
  MAX_MANIFEST_BYTES,
  childDescriptors,
  digestOf,
  isIndexMediaType,
  parseDigest,
  parseManifest,
  parseReference,
  type Descriptor,
  type Digest,
} from "../registry/oci/index.js";
import type { RegistryClient, PushOutcome, UploadCheckpoint } from "../registry/client/index.js";
import { allocateReadBuffer, type OperationOptions, type Store } from "../registry/store/index.js";
import { BLOB_DIR } from "./format.js";
import { partSpans, readBundleAt } from "./parts.js";
import { indexTar } from "./tar.js";
import { checkSignature, readBundleHead } from "./verify.js";

/** An image (or pack) to mirror: its name at the source and its top manifest. */
export interface MirrorImage {
  ref: string;
  repository: string;
  tag: string;
  digest: Digest;
  /** Manifests whose subject is the image or one of its platforms (signatures, SBOMs), copied along. */
  referrers?: Digest[] | undefined;
}

/** Where mirrored content comes from: the store, or a bundle file read in place. */
export interface MirrorSource {
  label: string;
  images: MirrorImage[];
  manifest(digest: Digest): Promise<Buffer>;
  /**
   * The blob's bytes from `offset`, failing if they do not hash to its digest. A chunk's buffer is
   * reused two chunks later: hand the iterable to the client as it is (no stream in between), which
   * asks for the next chunk only once the socket took the previous one.
   */
  blob(descriptor: Descriptor, offset: number): AsyncIterable<Buffer>;
  has(digest: Digest): boolean | Promise<boolean>;
}

/**
 * Upload sessions in flight, kept where a killed run leaves them (bundle/mirror-state.ts keeps them
 * in a file): the next run resumes each from the offset the target reports instead of sending the
 * blob again.
 */
export interface UploadJournal {
  find(repository: string, digest: Digest): UploadCheckpoint | undefined;
  record(repository: string, digest: Digest, checkpoint: UploadCheckpoint): void;
  forget(repository: string, digest: Digest): void;
}

export interface MirrorOptions extends OperationOptions {
  source: MirrorSource;
  client: RegistryClient;
  /** Repository prefix at the target (`palette` → `palette/hubble/msgbroker`); "" for none. */
  prefix: string;
  /** Only find out what is missing and how many bytes would go. */
  dryRun?: boolean;
  /** Blobs in flight at once. */
  concurrency?: number;
  /** Where chunked uploads stand, so that a run killed midway is resumed, not sent again. */
  uploads?: UploadJournal | undefined;
}

export interface MirroredImage {
  source: string;
  /** `HOST/PREFIX/repository:tag` */
  target: string;
  digest: Digest;
  status: "copied" | "present" | "missing" | "failed";
  blobs: Record<PushOutcome, number>;
  bytesSent: number;
  error?: { code: string; message: string; hint?: string | undefined } | undefined;
}

export interface MirrorResult {
  source: string;
  target: string;
  dryRun: boolean;
  images: MirroredImage[];
  /** Bytes uploaded (or, for a dry run, that would be). */
  bytes: number;
  failed: number;
  durationMs: number;
}

/** 1 MiB reads: few enough syscalls, and three of them per blob in flight stay in the CPU's caches. */
const RING_CHUNK_BYTES = 1024 * 1024;

/**
 * A blob's bytes from `offset` on, out of `spans` of files holding the whole blob, read into a ring of
 * three buffers of its own and hashed on the way — the bytes before `offset` too, read but not
 * yielded, so a resumed upload is checked whole; the last chunk is held back until the digest
 * matched, so a target never commits a wrong blob.
 * Reading 1 GiB through fresh buffers (createReadStream) costs ~0.9 s of CPU on page faults and makes
 * V8 run a major GC per few MiB for the external memory; reused buffers cost ~0.1 s (bench/mirror).
 * The undici client pulls the next chunk of an async-iterable body only after socket.write took the
 * previous one (or after 'drain'), so a buffer is refilled only once the socket no longer needs it:
 * at most the tail of the last chunk written can still be queued, and the ring never refills it.
 */
async function* ringChunks(
  spans: { path: string; start: number; length: number }[],
  descriptor: Descriptor,
  offset: number,
  where: string,
): AsyncGenerator<Buffer> {
  const digester = new Digester(parseDigest(descriptor.digest).algorithm);
  // Fresh per blob (not the store's shared pool): a buffer goes back to nobody while a socket may hold it.
  const ring = [0, 1, 2].map(() => allocateReadBuffer(RING_CHUNK_BYTES));
  let turn = 0;
  let held: Buffer | undefined;
  let skip = offset;
  for (const span of spans) {
    const handle = await open(span.path, "r");
    try {
      for (let position = span.start, end = span.start + span.length; position < end;) {
        // Bytes before `offset` never leave, so they need no turn of the ring: one buffer serves them.
        const buffer = skip > 0 ? ring[0]! : ring[turn++ % ring.length]!;
        const length = Math.min(buffer.byteLength, end - position, skip > 0 ? skip : Infinity);
        const { bytesRead } = await handle.read(buffer, 0, length, position);
        if (bytesRead === 0) {
          throw new AirlockError("BUNDLE_TRUNCATED", `${span.path} ends before byte ${end}`, {
            where,
            hint: "copy the bundle (every part) again",
          });
        }
        position += bytesRead;
        const chunk = buffer.subarray(0, bytesRead);
        digester.update(chunk);
        if (skip > 0) {
          skip -= bytesRead;
          continue;
        }
        if (held !== undefined) yield held;
        held = chunk;
      }
    } finally {
      await handle.close();
    }
  }
  if (digester.size !== descriptor.size || digester.digest() !== descriptor.digest) {
    throw new AirlockError("BUNDLE_ENTRY_CORRUPT", `blob ${descriptor.digest} does not match its digest`, {
      where,
      hint: "the source is damaged: copy the bundle again, or run `airlock store fsck`",
    });
  }
  if (held !== undefined) yield held;
}

/** Every tagged image of the store. */
export function storeSource(store: Store): MirrorSource {
  return {
    label: store.dataDir,
    images: store.listTags().map((tag) => ({
      ref: `${tag.repository}:${tag.tag}`,
      referrers: store.listReferrers(tag.repository, tag.digest).map((referrer) => referrer.digest),
      ...tag,
    })),
    manifest: (digest) => store.blobs.readSmall(digest, MAX_MANIFEST_BYTES),
    has: async (digest) => (await store.blobs.stat(digest)) !== undefined,
    blob: (descriptor, offset) => {
      const path = store.blobs.path(descriptor.digest);
      return ringChunks([{ path, start: 0, length: descriptor.size }], descriptor, offset, path);
    },
  };
}

/**
 * A bundle file (or its parts) read in place: its signature checked (against `publicKeyPath` when
 * given), its tar indexed by seeking from header to header, and each blob streamed from its offset
 * and hashed on the way. Nothing is imported or copied.
 */
export async function bundleSource(paths: string[], publicKeyPath?: string): Promise<MirrorSource> {
  const head = await readBundleHead(paths);
  await checkSignature(head, publicKeyPath);
  const { input } = head;
  const entries = await indexTar((position, length) => readBundleAt(input, position, length), input.size);
  const entryOf = (digest: Digest) => entries.get(`${BLOB_DIR}${digest.slice("sha256:".length)}`);
  const missing = (digest: Digest): AirlockError =>
    new AirlockError("BUNDLE_BLOB_MISSING", `the bundle does not carry ${digest}`, {
      where: input.label,
      hint:
        head.metadata.base === undefined
          ? "the bundle is damaged: copy it again"
          : `a delta bundle: mirror its base ${head.metadata.base.name} ${head.metadata.base.version} first`,
    });
  return {
    label: input.label,
    // Named as import names them in the store, so a mirror of the bundle and of the store agree.
    images: head.metadata.images.map((image) => {
      const ref = parseReference(image.ref, `airlock.json images ${image.ref}`);
      return {
        ref: image.ref,
        repository: ref.repository,
        tag: ref.tag ?? "latest",
        digest: image.digest,
        referrers: image.referrers?.map((referrer) => referrer.digest),
      };
    }),
    has: (digest) => entryOf(digest) !== undefined,
    async manifest(digest) {
      const entry = entryOf(digest);
      if (entry === undefined) throw missing(digest);
      if (entry.size > MAX_MANIFEST_BYTES) {
        throw new AirlockError("BUNDLE_ENTRY_CORRUPT", `manifest ${digest} is ${entry.size} bytes`, {
          where: input.label,
        });
      }
      const bytes = await readBundleAt(input, entry.dataOffset, entry.size);
      if (digestOf(bytes) !== digest) {
        throw new AirlockError("BUNDLE_ENTRY_CORRUPT", `manifest ${digest} does not match its digest`, {
          where: `${input.label}: ${entry.name}`,
          hint: "copy the bundle again; `airlock bundle verify` names the damaged part",
        });
      }
      return bytes;
    },
    blob(descriptor, offset) {
      const entry = entryOf(descriptor.digest);
      if (entry === undefined) throw missing(descriptor.digest);
      return ringChunks(
        partSpans(input, entry.dataOffset, entry.size),
        descriptor,
        offset,
        `${input.label}: ${entry.name}`,
      );
    },
  };
}

/** Counts what may run at once; waiters go in order. */
class Limiter {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.running++;
    try {
      return await task();
    } finally {
      this.running--;
      this.waiting.shift()?.();
    }
  }
}

interface ImageTree {
  /** Manifests children first, so a parent is never put before what it references. */
  manifests: { digest: Digest; mediaType: string; bytes: Buffer }[];
  blobs: Descriptor[];
}

async function walk(source: MirrorSource, roots: Digest[]): Promise<ImageTree> {
  const tree: ImageTree = { manifests: [], blobs: [] };
  const seen = new Set<string>();
  const visit = async (at: Digest): Promise<void> => {
    if (seen.has(at)) return;
    seen.add(at);
    const bytes = await source.manifest(at);
    const parsed = parseManifest(bytes, undefined, at);
    for (const child of childDescriptors(parsed)) {
      if (isIndexMediaType(parsed.mediaType)) await visit(child.digest);
      else if (!seen.has(child.digest)) {
        seen.add(child.digest);
        tree.blobs.push(child);
      }
    }
    tree.manifests.push({ digest: at, mediaType: parsed.mediaType, bytes });
  };
  for (const root of roots) await visit(root);
  return tree;
}

function describe(error: unknown): { code: string; message: string; hint?: string | undefined } {
  return error instanceof AirlockError
    ? { code: error.code, message: error.message, hint: error.hint }
    : { code: "MIRROR_FAILED", message: (error as Error).message };
}

/**
 * Copies every image of the source into the target registry with byte-identical digests: blobs
 * first (HEAD, then mount from a repository this run already filled, then upload), child manifests
 * by digest, the tag last. An image whose tag already names the same digest is complete (a registry
 * refuses a manifest whose blobs it lacks), so a re-run costs one HEAD per image. A failed image is
 * recorded and the others go on.
 */
export async function mirror(options: MirrorOptions): Promise<MirrorResult> {
  const started = Date.now();
  const { source, client } = options;
  const limiter = new Limiter(options.concurrency ?? 4);
  const targetRepository = (repository: string): string =>
    options.prefix === "" ? repository : `${options.prefix}/${repository}`;
  /** Where each blob has landed in this run, for mounts: first pusher wins, others mount from it. */
  const homes = new Map<Digest, Promise<string | undefined>>();
  let bytesDone = 0;
  let bytesTotal = 0;
  const report = (item?: string): void =>
    options.onProgress?.({
      phase: options.dryRun === true ? "plan" : "mirror",
      done: bytesDone,
      total: bytesTotal,
      item,
    });

  const mirrorImage = async (image: MirrorImage): Promise<MirroredImage> => {
    const repository = targetRepository(image.repository);
    const result: MirroredImage = {
      source: image.ref,
      target: `${client.host}/${repository}:${image.tag}`,
      digest: image.digest,
      status: "present",
      blobs: { present: 0, mounted: 0, uploaded: 0 },
      bytesSent: 0,
    };
    try {
      options.signal?.throwIfAborted();
      if ((await client.headManifest(repository, image.tag)) === image.digest) return result;
      const tree = await walk(source, [image.digest, ...(image.referrers ?? [])]);
      const size = tree.blobs.reduce((sum, blob) => sum + blob.size, 0);
      bytesTotal += size;
      report(image.ref);
      await Promise.all(
        tree.blobs.map(async (blob) => {
          if (options.dryRun === true) {
            return limiter.run(async () => {
              options.signal?.throwIfAborted();
              const present = (await client.headBlob(repository, blob.digest)) === blob.size;
              if (present) result.blobs.present++;
              else result.bytesSent += blob.size;
              bytesDone += blob.size;
            });
          }
          const home = homes.get(blob.digest);
          let settle: (repo: string | undefined) => void = () => undefined;
          if (home === undefined) homes.set(blob.digest, new Promise((resolve) => (settle = resolve)));
          // Waiting for another image's push of the same blob holds no --concurrency slot.
          const mountFrom = home === undefined ? undefined : await home;
          return limiter.run(async () => {
            let sent = 0;
            try {
              options.signal?.throwIfAborted();
              if (!(await source.has(blob.digest))) {
                if ((await client.headBlob(repository, blob.digest)) !== blob.size) {
                  throw new AirlockError(
                    "MIRROR_BLOB_MISSING",
                    `${source.label} lacks ${blob.digest} and the target has no copy`,
                    {
                      where: image.ref,
                      hint: "a delta bundle carries only what its base lacks: mirror the base first",
                    },
                  );
                }
                result.blobs.present++;
                bytesDone += blob.size;
                settle(repository);
                return;
              }
              let resumedFrom = 0;
              const outcome = await client.pushBlob(repository, blob, (offset) => source.blob(blob, offset), {
                mountFrom: mountFrom === repository ? undefined : mountFrom,
                resume: options.uploads?.find(repository, blob.digest),
                onProgress: (progress) => {
                  bytesDone += progress.done - sent;
                  sent = progress.done;
                  resumedFrom = progress.resumedFrom ?? 0;
                  if (progress.location !== undefined) {
                    options.uploads?.record(repository, blob.digest, {
                      location: progress.location,
                      offset: progress.done,
                    });
                  }
                  report(image.ref);
                },
              });
              options.uploads?.forget(repository, blob.digest);
              result.blobs[outcome]++;
              if (outcome === "uploaded") result.bytesSent += blob.size - resumedFrom;
              bytesDone += blob.size - sent;
              settle(repository);
            } catch (error) {
              settle(undefined);
              throw error;
            }
          });
        }),
      );
      if (options.dryRun === true) {
        result.status = "missing";
        return result;
      }
      // Children and referrers by digest, the tag last: a tag that names the digest means all of it is there.
      for (const manifest of tree.manifests.filter((m) => m.digest !== image.digest)) {
        if ((await client.headManifest(repository, manifest.digest)) !== manifest.digest) {
          await client.putManifest(repository, manifest.digest, manifest.bytes, manifest.mediaType);
        }
      }
      const top = tree.manifests.find((m) => m.digest === image.digest)!;
      await client.putManifest(repository, image.tag, top.bytes, top.mediaType);
      result.status = "copied";
      return result;
    } catch (error) {
      if (options.signal?.aborted === true) throw error;
      return { ...result, status: "failed", error: describe(error) };
    }
  };

  const images = await Promise.all(source.images.map((image) => mirrorImage(image)));
  return {
    source: source.label,
    target: `${client.host}${options.prefix === "" ? "" : `/${options.prefix}`}`,
    dryRun: options.dryRun === true,
    images,
    bytes: images.reduce((sum, image) => sum + image.bytesSent, 0),
    failed: images.filter((image) => image.status === "failed").length,
    durationMs: Date.now() - started,
  };
}
