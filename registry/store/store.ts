import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdir, readdir, rename, rm, stat, writeFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  AirlockError,
  Digester,
  childDescriptors,
  errnoCode,
  isIndexMediaType,
  isManifestMediaType,
  isNonDistributable,
  parseManifest,
  MAX_MANIFEST_BYTES,
  REF_NAME_ANNOTATION,
  type Digest,
  type Descriptor,
  type ParsedManifest,
} from "../oci/index.js";
import { FsBlobStore, type BlobIngest, type BlobStoreOptions, type BlobInfo } from "./blobs.js";
import { openDatabase, type Db } from "./db.js";
import { annotationsOf, linkedBlobs, RepositoryBlobs } from "./links.js";
import { acquireLock } from "./lock.js";

export type SignatureStatus = "verified" | "unchecked" | "unsigned";

export interface ImageRecord {
  ref: string;
  repository: string;
  tag: string;
  digest: Digest;
  mediaType: string;
  size: number;
  kind: "image" | "pack";
}

export interface FileRecord {
  path: string;
  digest: Digest;
  size: number;
  mode: number;
}

export interface ManifestRecord {
  repository: string;
  digest: Digest;
  mediaType: string;
  size: number;
  /** The manifest this one refers to (signatures, SBOMs), for the referrers API. */
  subject?: Digest | undefined;
  artifactType?: string | undefined;
  /** The manifest's own annotations, which the referrers API lists with it. */
  annotations?: Record<string, string> | undefined;
}

export interface BundleRecord {
  digest: Digest;
  name: string;
  version: string;
  upgradeFrom: string | undefined;
  baseDigest: Digest | undefined;
  created: string;
  signature: SignatureStatus;
  totalBytes: number;
  images: ImageRecord[];
  files: FileRecord[];
  /** Every manifest and index of every image, with the repository it is served under. */
  manifests: ManifestRecord[];
}

export interface StoredBundle extends Omit<BundleRecord, "manifests"> {
  id: number;
  importedAt: string;
}

export interface TagRecord {
  repository: string;
  tag: string;
  digest: Digest;
}

export interface Progress {
  phase: string;
  done: number;
  total: number;
  /** What done and total count; bytes unless said. */
  unit?: "bytes" | "items";
  item?: string;
}

export interface OperationOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: Progress) => void) | undefined;
}

export interface FsckReport {
  ok: boolean;
  blobs: number;
  bytes: number;
  corrupt: { digest: Digest; actual: Digest }[];
  missing: { digest: Digest; referencedBy: string }[];
  unreferenced: Digest[];
  staleIngests: number;
}

export interface GcReport {
  dryRun: boolean;
  removed: BlobInfo[];
  bytesFreed: number;
  ingestsRemoved: number;
  uploadsRemoved: number;
}

export interface StoreOptions extends BlobStoreOptions {
  /** Ingest files older than this are a crashed writer's and removed by gc. */
  staleIngestMs?: number;
  /** Registry upload sessions untouched for this long are abandoned and removed by gc. */
  staleUploadMs?: number;
}

/** A registry upload session: a file under `store/uploads/` and a row, both outliving the server. */
export interface UploadSession {
  id: string;
  repository: string;
  ingest: BlobIngest;
}

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

/**
 * The site's content store: an OCI image layout under `<dataDir>/store` for blobs, and SQLite
 * (`<dataDir>/airlock.db`) for what makes them visible: bundles, manifests per repository, tags.
 * A blob is visible only once a row references it, and rows are written in one transaction after
 * every blob they name is on disk.
 */
export class Store {
  readonly dataDir: string;
  readonly blobs: FsBlobStore;
  readonly db: Db;
  /** Which repositories each blob belongs to: a blob is served only under those. */
  private readonly repositoryBlobs: RepositoryBlobs;
  private readonly staleIngestMs: number;
  private readonly staleUploadMs: number;
  private readonly uploadsDir: string;

  private constructor(dataDir: string, blobs: FsBlobStore, db: Db, options: StoreOptions) {
    this.dataDir = dataDir;
    this.blobs = blobs;
    this.db = db;
    this.repositoryBlobs = new RepositoryBlobs(db);
    this.staleIngestMs = options.staleIngestMs ?? 60 * 60 * 1000;
    this.staleUploadMs = options.staleUploadMs ?? 24 * 60 * 60 * 1000;
    this.uploadsDir = join(blobs.root, "uploads");
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
    const row = this.db.prepare("SELECT * FROM bundles WHERE digest = ?").get(digest) as
      BundleRow | undefined;
    return row === undefined ? undefined : this.bundleFromRow(row);
  }

  listBundles(): StoredBundle[] {
    const rows = this.db.prepare("SELECT * FROM bundles ORDER BY imported_at, id").all() as BundleRow[];
    return rows.map((row) => this.bundleFromRow(row));
  }

  private bundleFromRow(row: BundleRow): StoredBundle {
    const images = this.db
      .prepare(
        "SELECT ref, repository, tag, digest, media_type AS mediaType, size, kind FROM bundle_images WHERE bundle_id = ? ORDER BY ref",
      )
      .all(row.id) as ImageRecord[];
    const files = this.db
      .prepare("SELECT path, digest, size, mode FROM bundle_files WHERE bundle_id = ? ORDER BY path")
      .all(row.id) as FileRecord[];
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
      images,
      files,
    };
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
  listReferrers(
    repository: string,
    digest: Digest,
  ): (ManifestRecord & { artifactType: string | undefined })[] {
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

  async startUpload(repository: string): Promise<UploadSession> {
    const id = randomBytes(16).toString("hex");
    const ingest = await this.blobs.namedIngest(join(this.uploadsDir, id), "create");
    this.db
      .prepare("INSERT INTO uploads (id, repository, started_at) VALUES (?, ?, ?)")
      .run(id, repository, new Date().toISOString());
    return { id, repository, ingest };
  }

  /** Reopens an upload session another server process (or an earlier run) started; undefined if none. */
  async resumeUpload(id: string): Promise<UploadSession | undefined> {
    const row = this.db.prepare("SELECT repository FROM uploads WHERE id = ?").get(id) as
      { repository: string } | undefined;
    if (row === undefined) return undefined;
    try {
      return {
        id,
        repository: row.repository,
        ingest: await this.blobs.namedIngest(join(this.uploadsDir, id), "resume"),
      };
    } catch (error) {
      if (errnoCode(error) !== "ENOENT") throw error;
      this.endUpload(id);
      return undefined;
    }
  }

  /** Forgets an upload session; its file is the ingest's to commit or abort. */
  endUpload(id: string): void {
    this.db.prepare("DELETE FROM uploads WHERE id = ?").run(id);
  }

  /** Upload sessions untouched for `staleUploadMs`, and files whose row is gone. */
  private async removeStaleUploads(dryRun: boolean): Promise<number> {
    const known = new Set(
      (this.db.prepare("SELECT id FROM uploads").all() as { id: string }[]).map((row) => row.id),
    );
    let removed = 0;
    for (const name of await readdir(this.uploadsDir).catch(() => [] as string[])) {
      const file = await stat(join(this.uploadsDir, name)).catch(() => undefined);
      if (file === undefined || (known.has(name) && Date.now() - file.mtimeMs < this.staleUploadMs)) continue;
      removed++;
      if (dryRun) continue;
      this.endUpload(name);
      await rm(join(this.uploadsDir, name), { force: true });
    }
    return removed;
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

  /**
   * Every blob a visible row needs: bundle metadata and files, the closure of every manifest, and
   * every blob linked to a repository.
   * `missing` collects references that do not resolve, with what referenced them.
   */
  async reachableBlobs(missing?: FsckReport["missing"]): Promise<Set<Digest>> {
    const reachable = new Set<Digest>();
    const report = (digest: Digest, referencedBy: string): void => {
      missing?.push({ digest, referencedBy });
    };
    const mark = async (digest: Digest, referencedBy: string): Promise<boolean> => {
      if (reachable.has(digest)) return false;
      reachable.add(digest);
      if ((await this.blobs.stat(digest)) === undefined) {
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
        parsed = parseManifest(await this.blobs.readSmall(digest, MAX_MANIFEST_BYTES), mediaType, digest);
      } catch (error) {
        // gc must not guess what a damaged manifest references; fsck reports it (its hash fails) and goes on.
        if (missing === undefined) throw error;
        return;
      }
      for (const child of childDescriptors(parsed)) {
        if (!isNonDistributable(child)) await walk(child.digest, child.mediaType, digest);
      }
    };
    for (const bundle of this.db.prepare("SELECT digest, name, version FROM bundles").all() as BundleRow[]) {
      await mark(bundle.digest, `bundle ${bundle.name} ${bundle.version}`);
    }
    for (const file of this.db.prepare("SELECT path, digest FROM bundle_files").all() as FileRecord[]) {
      await mark(file.digest, `bundle file ${file.path}`);
    }
    for (const row of this.db
      .prepare("SELECT repository, digest, media_type AS mediaType FROM manifests")
      .all() as ManifestRecord[]) {
      await walk(row.digest, row.mediaType, `repository ${row.repository}`);
    }
    // After the walks: a linked blob that is a manifest has been walked already, as a manifest row.
    for (const link of this.db.prepare("SELECT repository, digest FROM repository_blobs").all() as {
      repository: string;
      digest: Digest;
    }[]) {
      await mark(link.digest, `repository ${link.repository}`);
    }
    for (const tag of this.listTags()) {
      if (!reachable.has(tag.digest)) report(tag.digest, `tag ${tag.repository}:${tag.tag}`);
    }
    return reachable;
  }

  /** Re-hashes every blob and resolves every reference. */
  async fsck(options: OperationOptions = {}): Promise<FsckReport> {
    const missing: FsckReport["missing"] = [];
    const reachable = await this.reachableBlobs(missing);
    const all: Digest[] = [];
    for await (const digest of this.blobs.list()) all.push(digest);
    const corrupt: FsckReport["corrupt"] = [];
    let bytes = 0;
    for (const [i, digest] of all.entries()) {
      options.signal?.throwIfAborted();
      options.onProgress?.({ phase: "fsck", done: i, total: all.length, unit: "items", item: digest });
      const digester = new Digester(digest.startsWith("sha512:") ? "sha512" : "sha256");
      for await (const chunk of this.blobs.chunks(digest)) digester.update(chunk);
      bytes += digester.size;
      const actual = digester.digest();
      if (actual !== digest) corrupt.push({ digest, actual });
    }
    options.onProgress?.({ phase: "fsck", done: all.length, total: all.length, unit: "items" });
    const staleIngests = (await readdir(this.blobs.ingestDir)).length;
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

  /**
   * Removes blobs no visible row needs, ingest files of crashed writers and abandoned uploads.
   * `graceMs` keeps unreferenced blobs younger than that: a registry push stores its blobs before the
   * manifest that references them, and collecting in between would fail the push.
   */
  async gc(options: OperationOptions & { dryRun?: boolean; graceMs?: number } = {}): Promise<GcReport> {
    const dryRun = options.dryRun ?? false;
    const graceMs = options.graceMs ?? 0;
    return this.withLock("gc", async () => {
      const reachable = await this.reachableBlobs();
      const removed: BlobInfo[] = [];
      for await (const digest of this.blobs.list()) {
        options.signal?.throwIfAborted();
        if (reachable.has(digest)) continue;
        const file = await stat(this.blobs.path(digest)).catch(() => undefined);
        if (file === undefined || Date.now() - file.mtimeMs < graceMs) continue;
        const info = { digest, size: file.size };
        if (!dryRun) await this.blobs.delete(digest);
        removed.push(info);
      }
      const ingestsRemoved = dryRun ? 0 : await this.blobs.removeStaleIngests(this.staleIngestMs);
      const uploadsRemoved = await this.removeStaleUploads(dryRun);
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
