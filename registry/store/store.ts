import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, rename, writeFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  AirlockError,
  errnoCode,
  parseManifest,
  MAX_MANIFEST_BYTES,
  REF_NAME_ANNOTATION,
  type Digest,
  type Descriptor,
  type OperationOptions,
  type ParsedManifest,
} from "../oci/index.js";
import { FsBlobStore } from "./blobs.js";
import {
  countTags,
  findBundleRow,
  imageSizes,
  listBundleRows,
  listBundleSummaries,
  tagPage,
} from "./bundle-rows.js";
import { checkStore, reachableBlobs, sweepBlobs } from "./collect.js";
import { openDatabase, type Db } from "./db.js";
import { annotationsOf, linkedBlobs, RepositoryBlobs } from "./links.js";
import { acquireLock } from "./lock.js";
import type {
  BundleRecord,
  BundleSummary,
  TagCounts,
  FsckReport,
  GcReport,
  ManifestRecord,
  ReferrerRecord,
  RegistryContent,
  SignatureStatus,
  StoreOptions,
  StoredBundle,
  TagRecord,
  UploadSession,
} from "./types.js";
import { UploadSessions } from "./upload-sessions.js";

/**
 * The site's content store: an OCI image layout under `<dataDir>/store` for blobs, and SQLite
 * (`<dataDir>/airlock.db`) for what makes them visible: bundles, manifests per repository, tags.
 * A blob is visible only once a row references it, and rows are written in one transaction after
 * every blob they name is on disk.
 */
export class Store implements RegistryContent {
  readonly dataDir: string;
  readonly blobs: FsBlobStore;
  readonly db: Db;
  /** Which repositories each blob belongs to: a blob is served only under those. */
  private readonly repositoryBlobs: RepositoryBlobs;
  private readonly staleIngestMs: number;
  private readonly uploads: UploadSessions;

  private constructor(dataDir: string, blobs: FsBlobStore, db: Db, options: StoreOptions) {
    this.dataDir = dataDir;
    this.blobs = blobs;
    this.db = db;
    this.repositoryBlobs = new RepositoryBlobs(db);
    this.staleIngestMs = options.staleIngestMs ?? 60 * 60 * 1000;
    this.uploads = new UploadSessions(
      db,
      blobs,
      join(blobs.root, "uploads"),
      options.staleUploadMs ?? 24 * 60 * 60 * 1000,
    );
  }

  static async open(dataDir: string, options: StoreOptions = {}): Promise<Store> {
    const root = join(dataDir, "store");
    try {
      await mkdir(root, { recursive: true });
      const blobs = new FsBlobStore(root, options);
      await blobs.init();
      await mkdir(join(root, "uploads"), { recursive: true });
      const layoutFile = join(root, "oci-layout");
      await readFile(layoutFile).catch(async () => {
        await writeFile(layoutFile, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
      });
      const readBlob = (digest: Digest): Uint8Array | undefined => {
        try {
          return readFileSync(blobs.path(digest));
        } catch (error) {
          if (errnoCode(error) === "ENOENT") return undefined;
          throw error;
        }
      };
      const db = openDatabase(join(dataDir, "airlock.db"), { readBlob });
      const store = new Store(dataDir, blobs, db, options);
      await readFile(join(root, "index.json")).catch(() => store.writeLayoutIndex());
      return store;
    } catch (error) {
      if (error instanceof AirlockError) throw error;
      const code = errnoCode(error);
      throw new AirlockError("STORE_OPEN_FAILED", `cannot open the store: ${(error as Error).message}`, {
        where: dataDir,
        hint:
          code === "EACCES" || code === "EROFS"
            ? "run as a user who can write the data dir, or pass --data-dir"
            : "check --data-dir (or AIRLOCK_HOME) names a writable directory",
        cause: error,
      });
    }
  }

  close(): void {
    this.db.close();
  }

  /** Serialises writers (imports, gc) across processes. */
  async withLock<T>(purpose: string, fn: () => Promise<T>): Promise<T> {
    const release = acquireLock(this.db, "store", purpose);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  findBundle(digest: Digest): StoredBundle | undefined {
    return findBundleRow(this.db, digest);
  }

  /** Every bundle, oldest first, with its images and files. */
  listBundles(): StoredBundle[] {
    return listBundleRows(this.db);
  }

  /** Every bundle, oldest first, with its count of images instead of them: what a listing shows. */
  listBundleSummaries(): BundleSummary[] {
    return listBundleSummaries(this.db);
  }

  /**
   * Makes a bundle visible: its row, images, files, manifests and tags in one transaction.
   * Every blob it names must already be in the store. Recording the same bundle twice is a no-op.
   */
  async recordBundle(record: BundleRecord): Promise<{ bundle: StoredBundle; created: boolean }> {
    const existing = this.findBundle(record.digest);
    if (existing !== undefined) return { bundle: existing, created: false };
    const parsed: ParsedManifest[] = [];
    for (const manifest of record.manifests) parsed.push(await this.readManifest(manifest));
    await this.blobs.syncDirectories();
    const now = new Date().toISOString();
    const id = this.db.transaction(() => {
      const result = this.db
        .prepare(
          `INSERT INTO bundles (digest, name, version, upgrade_from, base_digest, created, imported_at, signature, total_bytes)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          record.digest,
          record.name,
          record.version,
          record.upgradeFrom ?? null,
          record.baseDigest ?? null,
          record.created,
          now,
          record.signature,
          record.totalBytes,
        );
      const bundleId = Number(result.lastInsertRowid);
      const insertImage = this.db.prepare(
        "INSERT INTO bundle_images (bundle_id, ref, repository, tag, digest, media_type, size, kind) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
      );
      for (const image of record.images) {
        insertImage.run(
          bundleId,
          image.ref,
          image.repository,
          image.tag,
          image.digest,
          image.mediaType,
          image.size,
          image.kind,
        );
        this.putTagInTransaction(image.repository, image.tag, image.digest, now);
      }
      const insertFile = this.db.prepare(
        "INSERT INTO bundle_files (bundle_id, path, digest, size, mode) VALUES (?, ?, ?, ?, ?)",
      );
      for (const file of record.files) insertFile.run(bundleId, file.path, file.digest, file.size, file.mode);
      for (const [i, manifest] of record.manifests.entries())
        this.putManifestInTransaction(manifest, parsed[i]!, true);
      return bundleId;
    })();
    await this.writeLayoutIndex();
    const bundle = this.findBundle(record.digest);
    if (bundle === undefined || bundle.id !== id) throw new Error("bundle row vanished after insert");
    return { bundle, created: true };
  }

  setBundleSignature(digest: Digest, signature: SignatureStatus): void {
    this.db.prepare("UPDATE bundles SET signature = ? WHERE digest = ?").run(signature, digest);
  }

  /** Stores a manifest in its repository, linking the blobs it names (`parsed` is its content) there. */
  putManifest(manifest: ManifestRecord, parsed: ParsedManifest): void {
    this.db.transaction(() => this.putManifestInTransaction(manifest, parsed))();
  }

  private async readManifest(manifest: ManifestRecord): Promise<ParsedManifest> {
    const bytes = await this.blobs.readSmall(manifest.digest, MAX_MANIFEST_BYTES);
    return parseManifest(bytes, manifest.mediaType, `${manifest.repository}@${manifest.digest}`);
  }

  /** Whether a blob belongs to a repository: one indexed lookup, made on every blob pull. */
  hasBlob(repository: string, digest: Digest): boolean {
    return this.repositoryBlobs.has(repository, digest);
  }

  /** Records a blob pushed to a repository (already committed to the store). */
  linkBlob(repository: string, digest: Digest): void {
    this.repositoryBlobs.link(repository, [digest]);
  }

  /** Links a blob of `from` into `to`; false (and nothing linked) when `from` does not hold it. */
  mountBlob(from: string, to: string, digest: Digest): boolean {
    return this.db.transaction(() => {
      if (!this.repositoryBlobs.has(from, digest)) return false;
      this.repositoryBlobs.link(to, [digest]);
      return true;
    })();
  }

  /** Points a tag at a manifest already in the repository, and refreshes the layout's index.json. */
  async putTag(repository: string, tag: string, digest: Digest): Promise<void> {
    this.putTagInTransaction(repository, tag, digest, new Date().toISOString());
    await this.writeLayoutIndex();
  }

  /** A manifest a bundle brought stays marked as the bundle's, whoever pushed the same bytes. */
  private putManifestInTransaction(
    manifest: ManifestRecord,
    parsed: ParsedManifest,
    fromBundle = false,
  ): void {
    const annotations = manifest.annotations ?? annotationsOf(parsed);
    this.db
      .prepare(
        `INSERT INTO manifests (repository, digest, media_type, size, subject, artifact_type, annotations, from_bundle)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (repository, digest) DO UPDATE SET from_bundle = max(from_bundle, excluded.from_bundle)`,
      )
      .run(
        manifest.repository,
        manifest.digest,
        manifest.mediaType,
        manifest.size,
        manifest.subject ?? null,
        manifest.artifactType ?? null,
        annotations === undefined ? null : JSON.stringify(annotations),
        fromBundle ? 1 : 0,
      );
    this.repositoryBlobs.link(manifest.repository, linkedBlobs(parsed));
  }

  /** Manifests of a repository whose subject is `digest` (the referrers API). */
  listReferrers(repository: string, digest: Digest): ReferrerRecord[] {
    const rows = this.db
      .prepare(
        `SELECT repository, digest, media_type AS mediaType, size, artifact_type AS artifactType, annotations
         FROM manifests WHERE repository = ? AND subject = ? ORDER BY digest`,
      )
      .all(repository, digest) as (Omit<ManifestRecord, "annotations"> & {
      artifactType: string | null;
      annotations: string | null;
    })[];
    return rows.map((row) => ({
      ...row,
      artifactType: row.artifactType ?? undefined,
      annotations:
        row.annotations === null ? undefined : (JSON.parse(row.annotations) as Record<string, string>),
    }));
  }

  startUpload(repository: string): Promise<UploadSession> {
    return this.uploads.start(repository);
  }

  /** Reopens an upload session another server process (or an earlier run) started; undefined if none. */
  resumeUpload(id: string): Promise<UploadSession | undefined> {
    return this.uploads.resume(id);
  }

  /** Forgets an upload session; its file is the ingest's to commit or abort. */
  endUpload(id: string): void {
    this.uploads.end(id);
  }

  private bundleOwns(repository: string, digest: Digest): boolean {
    const row = this.db
      .prepare("SELECT from_bundle FROM manifests WHERE repository = ? AND digest = ?")
      .get(repository, digest) as { from_bundle: number } | undefined;
    return row?.from_bundle === 1;
  }

  /**
   * Removes a pushed manifest and the tags pointing at it. What a bundle brought is refused: it goes
   * with its bundle, so an installed release can never lose an image. Returns false when absent.
   */
  async deleteManifest(repository: string, digest: Digest): Promise<boolean> {
    if (this.getManifest(repository, digest) === undefined) return false;
    if (this.bundleOwns(repository, digest)) {
      throw new AirlockError("IN_USE_BY_BUNDLE", `${repository}@${digest} belongs to an imported bundle`, {
        where: `${repository}@${digest}`,
        hint: "images of a bundle are removed with the bundle, not one by one",
      });
    }
    this.db.transaction(() => {
      this.db.prepare("DELETE FROM tags WHERE repository = ? AND digest = ?").run(repository, digest);
      this.db.prepare("DELETE FROM manifests WHERE repository = ? AND digest = ?").run(repository, digest);
    })();
    await this.writeLayoutIndex();
    return true;
  }

  /** Removes a tag, unless an imported bundle names it. Returns false when absent. */
  async deleteTag(repository: string, tag: string): Promise<boolean> {
    const digest = this.resolveTag(repository, tag);
    if (digest === undefined) return false;
    const owned = this.db
      .prepare("SELECT 1 FROM bundle_images WHERE repository = ? AND tag = ? LIMIT 1")
      .get(repository, tag);
    if (owned !== undefined) {
      throw new AirlockError("IN_USE_BY_BUNDLE", `${repository}:${tag} is an image of an imported bundle`, {
        where: `${repository}:${tag}`,
        hint: "images of a bundle are removed with the bundle, not one by one",
      });
    }
    this.db.prepare("DELETE FROM tags WHERE repository = ? AND tag = ?").run(repository, tag);
    await this.writeLayoutIndex();
    return true;
  }

  /**
   * Unlinks a blob from one repository, refusing while a manifest of that repository names it; other
   * repositories keep it, and its bytes go at gc once none links it. Returns false when not linked.
   */
  async deleteBlob(repository: string, digest: Digest): Promise<boolean> {
    if (!this.repositoryBlobs.has(repository, digest)) return false;
    const user = await this.manifestUsing(repository, digest);
    if (user !== undefined) {
      throw new AirlockError("BLOB_IN_USE", `blob ${digest} is used by ${repository}@${user}`, {
        where: `${repository}@${digest}`,
        hint: "delete the manifests that use it first",
      });
    }
    return this.repositoryBlobs.unlink(repository, digest);
  }

  /** A manifest of the repository that names the blob, if any (a delete reads them all: deletes are rare). */
  private async manifestUsing(repository: string, digest: Digest): Promise<Digest | undefined> {
    const rows = this.db
      .prepare("SELECT repository, digest, media_type AS mediaType FROM manifests WHERE repository = ?")
      .all(repository) as ManifestRecord[];
    for (const row of rows) {
      if ((await this.blobs.stat(row.digest)) === undefined) continue;
      if (linkedBlobs(await this.readManifest(row)).includes(digest)) return row.digest;
    }
    return undefined;
  }

  private putTagInTransaction(repository: string, tag: string, digest: Digest, now: string): void {
    this.db
      .prepare(
        "INSERT INTO tags (repository, tag, digest, updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (repository, tag) DO UPDATE SET digest = excluded.digest, updated_at = excluded.updated_at",
      )
      .run(repository, tag, digest, now);
  }

  getManifest(repository: string, digest: Digest): ManifestRecord | undefined {
    return this.db
      .prepare(
        "SELECT repository, digest, media_type AS mediaType, size FROM manifests WHERE repository = ? AND digest = ?",
      )
      .get(repository, digest) as ManifestRecord | undefined;
  }

  resolveTag(repository: string, tag: string): Digest | undefined {
    const row = this.db
      .prepare("SELECT digest FROM tags WHERE repository = ? AND tag = ?")
      .get(repository, tag) as { digest: Digest } | undefined;
    return row?.digest;
  }

  /** Repositories holding at least one manifest, in order, after `last` when given (catalog paging). */
  listRepositories(limit: number, last?: string): string[] {
    const rows = this.db
      .prepare("SELECT DISTINCT repository FROM manifests WHERE repository > ? ORDER BY repository LIMIT ?")
      .all(last ?? "", limit) as { repository: string }[];
    return rows.map((row) => row.repository);
  }

  /** A repository's tags in order, after `last` when given (tags/list paging). */
  listTagsOf(repository: string, limit: number, last?: string): string[] {
    const rows = this.db
      .prepare("SELECT tag FROM tags WHERE repository = ? AND tag > ? ORDER BY tag LIMIT ?")
      .all(repository, last ?? "", limit) as { tag: string }[];
    return rows.map((row) => row.tag);
  }

  hasRepository(repository: string): boolean {
    return (
      this.db.prepare("SELECT 1 FROM manifests WHERE repository = ? LIMIT 1").get(repository) !== undefined
    );
  }

  listTags(): TagRecord[] {
    return this.db
      .prepare("SELECT repository, tag, digest FROM tags ORDER BY repository, tag")
      .all() as TagRecord[];
  }

  countTags(): TagCounts {
    return countTags(this.db);
  }

  /** `limit` tags from `offset`, in listTags' order: one page of a listing. */
  listTagPage(offset: number, limit: number): TagRecord[] {
    return tagPage(this.db, offset, limit);
  }

  /** The sizes bundles recorded for these image manifests; a digest no bundle brought is absent. */
  imageSizes(digests: readonly Digest[]): Map<Digest, number> {
    return imageSizes(this.db, digests);
  }

  /** Keeps `store/index.json` listing every tag, so the store is an OCI layout any OCI tool can read. */
  async writeLayoutIndex(): Promise<void> {
    const rows = this.db
      .prepare(
        `SELECT t.repository, t.tag, t.digest, m.media_type AS mediaType, m.size FROM tags t
         JOIN manifests m ON m.repository = t.repository AND m.digest = t.digest ORDER BY t.repository, t.tag`,
      )
      .all() as (TagRecord & { mediaType: string; size: number })[];
    const index = {
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: rows.map((row): Descriptor => ({
        mediaType: row.mediaType,
        digest: row.digest,
        size: row.size,
        annotations: { [REF_NAME_ANNOTATION]: `${row.repository}:${row.tag}` },
      })),
    };
    const target = join(this.blobs.root, "index.json");
    const temp = `${target}.${process.pid}-${randomBytes(6).toString("hex")}.tmp`;
    await writeFile(temp, JSON.stringify(index, null, 2) + "\n");
    await rename(temp, target);
  }

  /** Every blob a visible row needs; `missing` collects references that do not resolve. */
  reachableBlobs(missing?: FsckReport["missing"]): Promise<Set<Digest>> {
    return reachableBlobs(this.db, this.blobs, missing);
  }

  /** Re-hashes every blob and resolves every reference. */
  fsck(options: OperationOptions = {}): Promise<FsckReport> {
    return checkStore(this.db, this.blobs, options);
  }

  /**
   * Removes blobs no visible row needs, ingest files of crashed writers and abandoned uploads.
   * `graceMs` keeps unreferenced blobs younger than that: an import stores its blobs before the rows
   * that reference them (and an upload before its link), and collecting in between would lose them.
   */
  async gc(options: OperationOptions & { dryRun?: boolean; graceMs?: number } = {}): Promise<GcReport> {
    const dryRun = options.dryRun ?? false;
    return this.withLock("gc", async () => {
      const removed = await sweepBlobs(this.db, this.blobs, {
        ...options,
        dryRun,
        graceMs: options.graceMs ?? 0,
      });
      const ingestsRemoved = dryRun ? 0 : await this.blobs.removeStaleIngests(this.staleIngestMs);
      const uploadsRemoved = await this.uploads.removeStale(dryRun);
      return {
        dryRun,
        removed,
        bytesFreed: removed.reduce((sum, b) => sum + b.size, 0),
        ingestsRemoved,
        uploadsRemoved,
      };
    });
  }
}
