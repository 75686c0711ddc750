import { statfs } from "node:fs/promises";
import {
  AirlockError,
  MAX_MANIFEST_BYTES,
  artifactTypeOf,
  childDescriptors,
  subjectOf,
  isIndexMediaType,
  isManifestMediaType,
  parseManifest,
  parseReference,
  type Digest,
} from "../registry/oci/index.js";
import type { Store, ManifestRecord, CommittedBlob } from "../registry/store/index.js";
import { openBundle, type BundleWalk, type VerifyOptions, type VerifyResult } from "./verify.js";
import type { BundleHead } from "./head.js";
import { BLOB_DIR, LAYOUT_ENTRIES, type BundleFile, type BundleMetadata } from "./format.js";

export interface ImportResult extends VerifyResult {
  /** False when the bundle was already imported: nothing was written. */
  imported: boolean;
  bundleId: number;
  blobsWritten: number;
  bytesWritten: number;
  blobsPresent: number;
}

function blobDigestOf(path: string): Digest | undefined {
  return path.startsWith(BLOB_DIR) ? `sha256:${path.slice(BLOB_DIR.length)}` : undefined;
}

/** Fails before anything is written when a delta's base blobs are not in the store. */
async function checkDeltaBase(store: Store, metadata: BundleMetadata, label: string): Promise<void> {
  if (metadata.base === undefined) return;
  const missing: Digest[] = [];
  for (const blob of metadata.base.blobs)
    if ((await store.blobs.stat(blob.digest)) === undefined) missing.push(blob.digest);
  if (missing.length > 0) {
    throw new AirlockError(
      "BUNDLE_BASE_MISSING",
      `this delta bundle needs ${missing.length} blobs of ${metadata.base.name} ${metadata.base.version} that the store lacks`,
      {
        where: label,
        hint: `import ${metadata.base.name} ${metadata.base.version} (bundle ${metadata.base.digest}) first, or ask the vendor for a full bundle`,
      },
    );
  }
}

async function checkStoreSpace(store: Store, metadata: BundleMetadata, label: string): Promise<void> {
  let needed = 0;
  for (const file of metadata.files) {
    const digest = blobDigestOf(file.path) ?? (`sha256:${file.sha256}` as Digest);
    if ((await store.blobs.stat(digest)) === undefined) needed += file.size;
  }
  const info = await statfs(store.blobs.root);
  const free = info.bavail * info.bsize;
  if (free < needed) {
    throw new AirlockError(
      "STORE_DISK_FULL",
      `the import needs ${needed} bytes but the store's disk has ${free} free`,
      {
        where: label,
        hint: "free space, or use a larger --data-dir; nothing was written",
      },
    );
  }
}

/** The manifests of an image, each under its repository, read back from the store after import. */
async function manifestClosure(
  store: Store,
  repository: string,
  digest: Digest,
  mediaType: string,
): Promise<ManifestRecord[]> {
  const out: ManifestRecord[] = [];
  const visit = async (d: Digest, type: string): Promise<void> => {
    const bytes = await store.blobs.readSmall(d, MAX_MANIFEST_BYTES);
    const parsed = parseManifest(bytes, type, d);
    out.push({
      repository,
      digest: d,
      mediaType: type,
      size: bytes.byteLength,
      subject: subjectOf(parsed)?.digest,
      artifactType: artifactTypeOf(parsed),
    });
    for (const child of childDescriptors(parsed)) {
      if (isIndexMediaType(child.mediaType) || isManifestMediaType(child.mediaType))
        await visit(child.digest, child.mediaType);
    }
  };
  await visit(digest, mediaType);
  return out;
}

/**
 * Blob commits (fsync, rename) run behind the stream, a few at a time, so the disk flushes one blob
 * while the next is read and hashed. Every commit is settled before the bundle's rows are written.
 */
class CommitQueue {
  private readonly pending = new Set<Promise<void>>();
  private readonly committed: CommittedBlob[] = [];
  private failure: { error: unknown } | undefined;

  constructor(private readonly limit: number) {}

  async add(commit: Promise<CommittedBlob>): Promise<void> {
    const tracked: Promise<void> = commit
      .then((blob) => void this.committed.push(blob))
      .catch((error: unknown) => {
        this.failure ??= { error };
      })
      .finally(() => this.pending.delete(tracked));
    this.pending.add(tracked);
    while (this.pending.size >= this.limit) await Promise.race(this.pending);
    this.throwIfFailed();
  }

  /** Waits for every commit; returns what they committed, or rethrows the first failure. */
  async drain(): Promise<CommittedBlob[]> {
    await Promise.all(this.pending);
    this.throwIfFailed();
    return this.committed;
  }

  /** Waits for every commit, ignoring failures: for cleanup after an error. */
  async settle(): Promise<void> {
    await Promise.all(this.pending);
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure.error;
  }
}

/**
 * Each commit's fdatasync holds one of libuv's four threadpool threads for its whole duration; more
 * than three in flight leaves the stream's own reads and writes queueing behind them.
 */
const COMMITS_IN_FLIGHT = 3;

/** What an import wrote: blobs it created and blobs the store already had. */
interface Stored {
  blobsWritten: number;
  bytesWritten: number;
  blobsPresent: number;
}

function isLayoutEntry(file: BundleFile): boolean {
  return LAYOUT_ENTRIES.includes(file.path as (typeof LAYOUT_ENTRIES)[number]);
}

/**
 * Streams every entry of the bundle into the store: each is written to an ingest file while it is
 * hashed, and committed (behind the stream) only once its digest checked; blobs already present and
 * the bundle's own layout files are verified, not written. Returns when every commit has settled.
 */
async function storeEntries(store: Store, walk: BundleWalk): Promise<Stored> {
  let blobsPresent = 0;
  const commits = new CommitQueue(COMMITS_IN_FLIGHT);
  try {
    for await (const entry of walk.entries()) {
      const { file } = entry;
      // The bundle's own layout files describe the bundle, not the store: verified, not kept.
      if (isLayoutEntry(file)) {
        await entry.verify();
        continue;
      }
      const digest = blobDigestOf(file.path) ?? (`sha256:${file.sha256}` as Digest);
      if ((await store.blobs.stat(digest)) !== undefined) {
        await entry.verify();
        blobsPresent++;
        continue;
      }
      const ingest = await store.blobs.ingest();
      try {
        await entry.writeTo(ingest);
      } catch (error) {
        await ingest.abort();
        throw error;
      }
      await commits.add(ingest.commit({ digest, size: file.size }));
    }
    const created = (await commits.drain()).filter((blob) => blob.created);
    const bytesWritten = created.reduce((sum, blob) => sum + blob.size, 0);
    return { blobsWritten: created.length, bytesWritten, blobsPresent };
  } catch (error) {
    // The blobs it already stored stay, referenced by no row: `registry serve` takes no lock, so a push
    // or mount may have counted one of them present meanwhile. A re-run reuses them; gc collects the
    // rest once they are older than its grace.
    await commits.settle();
    throw error;
  }
}

/** The bundle's rows, in one transaction: its images, files and the manifests of its images. */
async function recordBundle(store: Store, head: BundleHead, verified: VerifyResult): Promise<number> {
  const { metadata } = head;
  await store.blobs.put([head.metadataBytes], { digest: head.digest });
  const manifests: ManifestRecord[] = [];
  for (const image of metadata.images) {
    const ref = parseReference(image.ref, `airlock.json images ${image.ref}`);
    manifests.push(...(await manifestClosure(store, ref.repository, image.digest, image.mediaType)));
    // Recorded with their subject and artifactType, which is what the referrers API lists.
    for (const referrer of image.referrers ?? []) {
      manifests.push(...(await manifestClosure(store, ref.repository, referrer.digest, referrer.mediaType)));
    }
  }
  const { bundle } = await store.recordBundle({
    digest: head.digest,
    name: metadata.name,
    version: metadata.version,
    upgradeFrom: metadata.upgradeFrom,
    baseDigest: metadata.base?.digest,
    created: metadata.created,
    signature: verified.signature.status,
    totalBytes: verified.bytes,
    images: metadata.images.map((image) => {
      const ref = parseReference(image.ref);
      return {
        ref: image.ref,
        repository: ref.repository,
        tag: ref.tag ?? "latest",
        digest: image.digest,
        mediaType: image.mediaType,
        size: image.size,
        kind: image.kind,
      };
    }),
    files: metadata.files
      .filter((file) => blobDigestOf(file.path) === undefined && !isLayoutEntry(file))
      .map((file) => ({
        path: file.path,
        digest: `sha256:${file.sha256}` as Digest,
        size: file.size,
        mode: file.mode,
      })),
    manifests,
  });
  return bundle.id;
}

/**
 * Imports a bundle into the store in one streaming pass: each entry is written to an ingest file
 * while it is hashed and made visible only when its digest checks; blobs already present are
 * hashed but not rewritten. The bundle's rows appear in one transaction at the end, so an import
 * that fails or is killed leaves nothing visible, and a re-run completes it. A failed import never
 * deletes a blob: what it wrote is left to gc and its grace period (see storeEntries).
 */
export async function importBundle(
  store: Store,
  paths: string[],
  options: VerifyOptions = {},
): Promise<ImportResult> {
  return store.withLock("bundle import", async () => {
    await store.blobs.removeStaleIngests();
    const walk = await openBundle(paths, options);
    try {
      const { head, signature } = walk;
      const existing = store.findBundle(head.digest);
      if (existing !== undefined) {
        // The same airlock.json signed, imported unsigned earlier: record the stronger proof.
        if (signature.status === "verified" && existing.signature !== "verified") {
          store.setBundleSignature(existing.digest, "verified");
        }
        // A run killed after its rows committed may not have rewritten the layout's index.json.
        await store.writeLayoutIndex();
        const nothing = { blobsWritten: 0, bytesWritten: 0, blobsPresent: 0 };
        return { ...walk.result(), ...nothing, imported: false, bundleId: existing.id };
      }
      await checkDeltaBase(store, head.metadata, head.input.label);
      await checkStoreSpace(store, head.metadata, head.input.label);
      const stored = await storeEntries(store, walk);
      const verified = walk.result();
      const bundleId = await recordBundle(store, head, verified);
      return { ...verified, ...stored, imported: true, bundleId };
    } finally {
      await walk.close();
    }
  });
}
