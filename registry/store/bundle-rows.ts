import type { Digest } from "../oci/index.js";
import type { Db } from "./db.js";
import type {
  BundleSummary,
  FileRecord,
  ImageRecord,
  SignatureStatus,
  StoredBundle,
  TagCounts,
  TagRecord,
} from "./types.js";

interface BundleRow {
  id: number;
  digest: Digest;
  name: string;
  version: string;
  upgrade_from: string | null;
  base_digest: Digest | null;
  created: string;
  imported_at: string;
  signature: SignatureStatus;
  total_bytes: number;
}

const IMAGE_COLUMNS = "ref, repository, tag, digest, media_type AS mediaType, size, kind";
const FILE_COLUMNS = "path, digest, size, mode";

function summaryOf(row: BundleRow): Omit<BundleSummary, "imageCount"> {
  return {
    id: row.id,
    digest: row.digest,
    name: row.name,
    version: row.version,
    upgradeFrom: row.upgrade_from ?? undefined,
    baseDigest: row.base_digest ?? undefined,
    created: row.created,
    importedAt: row.imported_at,
    signature: row.signature,
    totalBytes: row.total_bytes,
  };
}

/** A bundle's image or file rows, or (without `bundleId`) every bundle's, by bundle id, in `order`. */
function rowsByBundle<T>(
  db: Db,
  table: "bundle_images" | "bundle_files",
  columns: string,
  order: string,
  bundleId?: number,
): Map<number, T[]> {
  const where = bundleId === undefined ? "" : "WHERE bundle_id = ?";
  const statement = db.prepare(
    `SELECT bundle_id, ${columns} FROM ${table} ${where} ORDER BY bundle_id, ${order}`,
  );
  const rows = (bundleId === undefined ? statement.all() : statement.all(bundleId)) as (T & {
    bundle_id: number;
  })[];
  const out = new Map<number, T[]>();
  for (const { bundle_id: id, ...rest } of rows) {
    const list = out.get(id) ?? [];
    list.push(rest as T);
    out.set(id, list);
  }
  return out;
}

export function findBundleRow(db: Db, digest: Digest): StoredBundle | undefined {
  const row = db.prepare("SELECT * FROM bundles WHERE digest = ?").get(digest) as BundleRow | undefined;
  if (row === undefined) return undefined;
  const images = rowsByBundle<ImageRecord>(db, "bundle_images", IMAGE_COLUMNS, "ref", row.id);
  const files = rowsByBundle<FileRecord>(db, "bundle_files", FILE_COLUMNS, "path", row.id);
  return { ...summaryOf(row), images: images.get(row.id) ?? [], files: files.get(row.id) ?? [] };
}

/** Every bundle, oldest first, with its images and files: three queries whatever their number. */
export function listBundleRows(db: Db): StoredBundle[] {
  const rows = db.prepare("SELECT * FROM bundles ORDER BY imported_at, id").all() as BundleRow[];
  const images = rowsByBundle<ImageRecord>(db, "bundle_images", IMAGE_COLUMNS, "ref");
  const files = rowsByBundle<FileRecord>(db, "bundle_files", FILE_COLUMNS, "path");
  return rows.map((row) => ({
    ...summaryOf(row),
    images: images.get(row.id) ?? [],
    files: files.get(row.id) ?? [],
  }));
}

/** Every bundle, oldest first, with how many images it has instead of their rows. */
export function listBundleSummaries(db: Db): BundleSummary[] {
  const rows = db
    .prepare(
      `SELECT b.*, (SELECT count(*) FROM bundle_images i WHERE i.bundle_id = b.id) AS image_count
       FROM bundles b ORDER BY imported_at, id`,
    )
    .all() as (BundleRow & { image_count: number })[];
  return rows.map((row) => ({ ...summaryOf(row), imageCount: row.image_count }));
}

export function countTags(db: Db): TagCounts {
  return db
    .prepare("SELECT count(*) AS tags, count(DISTINCT repository) AS repositories FROM tags")
    .get() as TagCounts;
}

/** Tags by repository and tag, `limit` of them from `offset`. */
export function tagPage(db: Db, offset: number, limit: number): TagRecord[] {
  return db
    .prepare("SELECT repository, tag, digest FROM tags ORDER BY repository, tag LIMIT ? OFFSET ?")
    .all(limit, offset) as TagRecord[];
}

/** The sizes bundles recorded for these image manifests; a digest no bundle brought is absent. */
export function imageSizes(db: Db, digests: readonly Digest[]): Map<Digest, number> {
  const sizes = new Map<Digest, number>();
  const unique = [...new Set(digests)];
  // SQLite binds at most 32766 parameters; a page asks for far fewer.
  for (let i = 0; i < unique.length; i += 500) {
    const batch = unique.slice(i, i + 500);
    const rows = db
      .prepare(`SELECT digest, size FROM bundle_images WHERE digest IN (${batch.map(() => "?").join(", ")})`)
      .all(...batch) as { digest: Digest; size: number }[];
    for (const row of rows) sizes.set(row.digest, row.size);
  }
  return sizes;
}
