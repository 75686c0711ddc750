import { Limiter } from "./limiter.js";
import {
  AirlockError,
  childDescriptors,
  isIndexMediaType,
  parseManifest,
  type Descriptor,
  type Digest,
  type ErrorCode,
  type OperationOptions,
} from "../registry/oci/index.js";
import type { RegistryClient, PushOutcome, UploadCheckpoint } from "../registry/client/index.js";

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
  error?: { code: ErrorCode; message: string; hint?: string | undefined } | undefined;
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

function describe(error: unknown): { code: ErrorCode; message: string; hint?: string | undefined } {
  return error instanceof AirlockError
    ? { code: error.code, message: error.message, hint: error.hint }
    : { code: "MIRROR_FAILED", message: (error as Error).message };
}

/**
 * Pushes one blob, taking over the upload session the journal names for it, and keeps the journal
 * up to date while the bytes go. Returns how the blob got there and the bytes this run sent of it.
 */
async function pushJournaled(
  options: MirrorOptions,
  repository: string,
  blob: Descriptor,
  mountFrom: string | undefined,
  onDone: (done: number) => void,
): Promise<{ outcome: PushOutcome; bytesSent: number }> {
  const { client, source, uploads } = options;
  let resumedFrom = 0;
  const outcome = await client.pushBlob(repository, blob, (offset) => source.blob(blob, offset), {
    mountFrom,
    resume: uploads?.find(repository, blob.digest),
    onProgress: (progress) => {
      resumedFrom = progress.resumedFrom ?? 0;
      if (progress.location !== undefined) {
        uploads?.record(repository, blob.digest, { location: progress.location, offset: progress.done });
      }
      onDone(progress.done);
    },
  });
  uploads?.forget(repository, blob.digest);
  return { outcome, bytesSent: outcome === "uploaded" ? blob.size - resumedFrom : 0 };
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
              const from = mountFrom === repository ? undefined : mountFrom;
              const pushed = await pushJournaled(options, repository, blob, from, (done) => {
                bytesDone += done - sent;
                sent = done;
                report(image.ref);
              });
              result.blobs[pushed.outcome]++;
              result.bytesSent += pushed.bytesSent;
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
