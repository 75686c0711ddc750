import Database from "better-sqlite3";
import { configureConnection } from "./sqlite.js";
import { AirlockError, parseManifest, type Digest } from "../oci/index.js";
import { annotationsOf, linkedBlobs } from "./links.js";

export type Db = Database.Database;

/** What a migration may need beyond the database: the store's blobs, read whole (manifests only). */
export interface MigrationContext {
  /** A blob's bytes, or undefined when the store lacks it. */
  readBlob(digest: Digest): Uint8Array | undefined;
}

type Migration = string | ((db: Db, context: MigrationContext) => void);

/**
 * Schema migrations, applied in order and tracked in `PRAGMA user_version`. Append only: a released
 * migration never changes, so every data dir can be brought forward from any earlier version.
 */
const MIGRATIONS: Migration[] = [
  `
  CREATE TABLE bundles (
    id INTEGER PRIMARY KEY,
    digest TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    upgrade_from TEXT,
    base_digest TEXT,
    created TEXT NOT NULL,
    imported_at TEXT NOT NULL,
    signature TEXT NOT NULL,
    total_bytes INTEGER NOT NULL
  );
  CREATE TABLE bundle_images (
    bundle_id INTEGER NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
    ref TEXT NOT NULL,
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    kind TEXT NOT NULL,
    PRIMARY KEY (bundle_id, ref)
  );
  CREATE TABLE bundle_files (
    bundle_id INTEGER NOT NULL REFERENCES bundles(id) ON DELETE CASCADE,
    path TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    mode INTEGER NOT NULL,
    PRIMARY KEY (bundle_id, path)
  );
  CREATE TABLE manifests (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (repository, digest)
  );
  CREATE TABLE tags (
    repository TEXT NOT NULL,
    tag TEXT NOT NULL,
    digest TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (repository, tag)
  );
  `,
  `
  CREATE TABLE locks (
    name TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    purpose TEXT NOT NULL,
    acquired_at TEXT NOT NULL
  );
  `,
  `
  ALTER TABLE manifests ADD COLUMN subject TEXT;
  ALTER TABLE manifests ADD COLUMN artifact_type TEXT;
  ALTER TABLE manifests ADD COLUMN from_bundle INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX manifests_by_subject ON manifests (repository, subject);
  `,
  `
  CREATE TABLE uploads (
    id TEXT PRIMARY KEY,
    repository TEXT NOT NULL,
    started_at TEXT NOT NULL
  );
  `,
  linkBlobsToRepositories,
];

/**
 * Blobs belong to repositories: a blob is served under a repository only when it was pushed to,
 * mounted into, or imported with it. Existing data dirs get the links every stored manifest implies
 * (its config and layers, an index's child manifests), and the annotations the referrers API lists.
 * A manifest whose bytes are missing or damaged links nothing; fsck reports it.
 */
function linkBlobsToRepositories(db: Db, context: MigrationContext): void {
  db.exec(`
    CREATE TABLE repository_blobs (
      repository TEXT NOT NULL,
      digest TEXT NOT NULL,
      PRIMARY KEY (repository, digest)
    ) WITHOUT ROWID;
    ALTER TABLE manifests ADD COLUMN annotations TEXT;
  `);
  const link = db.prepare("INSERT OR IGNORE INTO repository_blobs (repository, digest) VALUES (?, ?)");
  const annotate = db.prepare("UPDATE manifests SET annotations = ? WHERE repository = ? AND digest = ?");
  const rows = db.prepare("SELECT repository, digest, media_type AS mediaType FROM manifests").all() as {
    repository: string;
    digest: Digest;
    mediaType: string;
  }[];
  for (const row of rows) {
    const bytes = context.readBlob(row.digest);
    if (bytes === undefined) continue;
    let parsed;
    try {
      parsed = parseManifest(bytes, row.mediaType, row.digest);
    } catch {
      continue;
    }
    for (const digest of linkedBlobs(parsed)) link.run(row.repository, digest);
    const annotations = annotationsOf(parsed);
    if (annotations !== undefined) annotate.run(JSON.stringify(annotations), row.repository, row.digest);
  }
}

export const SCHEMA_VERSION = MIGRATIONS.length;

export function openDatabase(path: string, context: MigrationContext): Db {
  const db = new Database(path);
  configureConnection(db);
  migrate(db, path, context);
  return db;
}

function migrate(db: Db, path: string, context: MigrationContext): void {
  const current = db.pragma("user_version", { simple: true }) as number;
  if (current > MIGRATIONS.length) {
    db.close();
    throw new AirlockError(
      "STATE_TOO_NEW",
      `the state database is at schema ${current}, newer than this airlock knows (${MIGRATIONS.length})`,
      { where: path, hint: "use the airlock version that last wrote this data dir, or a newer one" },
    );
  }
  for (let version = current; version < MIGRATIONS.length; version++) {
    db.transaction(() => {
      const migration = MIGRATIONS[version]!;
      if (typeof migration === "string") db.exec(migration);
      else migration(db, context);
      db.pragma(`user_version = ${version + 1}`);
    })();
  }
}
