import { readdir, stat } from "node:fs/promises";
import {
  Digester,
  MAX_MANIFEST_BYTES,
  childDescriptors,
  isIndexMediaType,
  isManifestMediaType,
  isNonDistributable,
  parseManifest,
  type Digest,
} from "../oci/index.js";
import type { BlobInfo, FsBlobStore } from "./blobs.js";
import type { Db } from "./db.js";
import type { OperationOptions } from "../oci/index.js";
import type { FsckReport } from "./types.js";

/**
 * Every blob a visible row needs: bundle metadata and files, the closure of every manifest, and
 * every blob linked to a repository. `missing` collects references that do not resolve, with what
 * referenced them.
 */
export async function reachableBlobs(
  db: Db,
  blobs: FsBlobStore,
  missing?: FsckReport["missing"],
): Promise<Set<Digest>> {
  const reachable = new Set<Digest>();
  const report = (digest: Digest, referencedBy: string): void => {
    missing?.push({ digest, referencedBy });
  };
  const mark = async (digest: Digest, referencedBy: string): Promise<boolean> => {
    if (reachable.has(digest)) return false;
    reachable.add(digest);
    if ((await blobs.stat(digest)) === undefined) {
      report(digest, referencedBy);
      return false;
    }
    return true;
  };
  const walk = async (digest: Digest, mediaType: string, referencedBy: string): Promise<void> => {
    if (!(await mark(digest, referencedBy))) return;
    if (!isIndexMediaType(mediaType) && !isManifestMediaType(mediaType)) return;
    let parsed;
    try {
      parsed = parseManifest(await blobs.readSmall(digest, MAX_MANIFEST_BYTES), mediaType, digest);
    } catch (error) {
      // gc must not guess what a damaged manifest references; fsck reports it (its hash fails) and goes on.
      if (missing === undefined) throw error;
      return;
    }
    for (const child of childDescriptors(parsed)) {
      if (!isNonDistributable(child)) await walk(child.digest, child.mediaType, digest);
    }
  };
  const all = <T>(sql: string): T[] => db.prepare(sql).all() as T[];
  for (const bundle of all<{ digest: Digest; name: string; version: string }>(
    "SELECT digest, name, version FROM bundles",
  )) {
    await mark(bundle.digest, `bundle ${bundle.name} ${bundle.version}`);
  }
  for (const file of all<{ path: string; digest: Digest }>("SELECT path, digest FROM bundle_files")) {
    await mark(file.digest, `bundle file ${file.path}`);
  }
  for (const row of all<{ repository: string; digest: Digest; mediaType: string }>(
    "SELECT repository, digest, media_type AS mediaType FROM manifests",
  )) {
    await walk(row.digest, row.mediaType, `repository ${row.repository}`);
  }
  // After the walks: a linked blob that is a manifest has been walked already, as a manifest row.
  for (const link of all<{ repository: string; digest: Digest }>(
    "SELECT repository, digest FROM repository_blobs",
  )) {
    await mark(link.digest, `repository ${link.repository}`);
  }
  for (const tag of all<{ repository: string; tag: string; digest: Digest }>(
    "SELECT repository, tag, digest FROM tags ORDER BY repository, tag",
  )) {
    if (!reachable.has(tag.digest)) report(tag.digest, `tag ${tag.repository}:${tag.tag}`);
  }
  return reachable;
}

/** Re-hashes every blob and resolves every reference. */
export async function checkStore(
  db: Db,
  blobs: FsBlobStore,
  options: OperationOptions = {},
): Promise<FsckReport> {
  const missing: FsckReport["missing"] = [];
  const reachable = await reachableBlobs(db, blobs, missing);
  const all: Digest[] = [];
  for await (const digest of blobs.list()) all.push(digest);
  const corrupt: FsckReport["corrupt"] = [];
  let bytes = 0;
  for (const [i, digest] of all.entries()) {
    options.signal?.throwIfAborted();
    options.onProgress?.({ phase: "fsck", done: i, total: all.length, unit: "items", item: digest });
    const digester = new Digester(digest.startsWith("sha512:") ? "sha512" : "sha256");
    for await (const chunk of blobs.chunks(digest)) digester.update(chunk);
    bytes += digester.size;
    const actual = digester.digest();
    if (actual !== digest) corrupt.push({ digest, actual });
  }
  options.onProgress?.({ phase: "fsck", done: all.length, total: all.length, unit: "items" });
  const staleIngests = (await readdir(blobs.ingestDir)).length;
  return {
    ok: corrupt.length === 0 && missing.length === 0,
    blobs: all.length,
    bytes,
    corrupt,
    missing,
    unreferenced: all.filter((digest) => !reachable.has(digest)),
    staleIngests,
  };
}

/** Removes (or, dry, lists) blobs nothing reaches that are older than `graceMs`. */
export async function sweepBlobs(
  db: Db,
  blobs: FsBlobStore,
  options: OperationOptions & { dryRun: boolean; graceMs: number },
): Promise<BlobInfo[]> {
  const reachable = await reachableBlobs(db, blobs);
  const removed: BlobInfo[] = [];
  for await (const digest of blobs.list()) {
    options.signal?.throwIfAborted();
    if (reachable.has(digest)) continue;
    const file = await stat(blobs.path(digest)).catch(() => undefined);
    if (file === undefined || Date.now() - file.mtimeMs < options.graceMs) continue;
    if (!options.dryRun) await blobs.delete(digest);
    removed.push({ digest, size: file.size });
  }
  return removed;
}
