import Database from "better-sqlite3";
import { existsSync } from "node:fs";
import { AirlockError } from "../../registry/oci/index.js";
import { configureConnection } from "../../registry/store/index.js";
import { INSTALLER_MIGRATIONS } from "./migrations.js";

export type StateDb = Database.Database;

/** The store owns `airlock.db`'s `user_version`; the installer's tables keep their own count here. */
export const COMPONENT = "installer";

export const INSTALLER_SCHEMA_VERSION = INSTALLER_MIGRATIONS.length;

const MIGRATIONS_TABLE = `CREATE TABLE IF NOT EXISTS schema_migrations (
  component TEXT PRIMARY KEY,
  version INTEGER NOT NULL
)`;

/** The schema version a component's tables are at in `airlock.db` (0 before its first migration). */
export function componentVersion(db: StateDb, component: string): number {
  const table = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'")
    .get();
  if (table === undefined) return 0;
  const row = db.prepare("SELECT version FROM schema_migrations WHERE component = ?").get(component) as
    { version: number } | undefined;
  return row?.version ?? 0;
}

export function installerVersion(db: StateDb): number {
  return componentVersion(db, COMPONENT);
}

function tooNew(component: string, version: number, known: number, where: string | undefined): AirlockError {
  return new AirlockError(
    "STATE_TOO_NEW",
    `the ${component}'s tables in the database are at schema ${version}, newer than this airlock knows (${known})`,
    { where, hint: "use the airlock version that last wrote this data dir, or a newer one" },
  );
}

/**
 * Brings one component's tables forward (the installer's, the console's), one migration per
 * `BEGIN IMMEDIATE` transaction: the version is re-read inside it, so two processes opening a fresh
 * data dir at once apply each migration once.
 */
export function migrateComponent(
  db: StateDb,
  component: string,
  migrations: readonly string[],
  where?: string,
): void {
  db.exec(MIGRATIONS_TABLE);
  for (;;) {
    const applied = db
      .transaction(() => {
        const version = componentVersion(db, component);
        if (version > migrations.length) throw tooNew(component, version, migrations.length, where);
        if (version === migrations.length) return false;
        db.exec(migrations[version]!);
        db.prepare(
          `INSERT INTO schema_migrations (component, version) VALUES (?, ?)
           ON CONFLICT (component) DO UPDATE SET version = excluded.version`,
        ).run(component, version + 1);
        return true;
      })
      .immediate();
    if (!applied) return;
  }
}

function openFailed(path: string, error: unknown): AirlockError {
  return new AirlockError(
    "STATE_OPEN_FAILED",
    `cannot open the state database: ${(error as Error).message}`,
    {
      where: path,
      hint: "check --data-dir (or AIRLOCK_HOME) names a writable directory on a local filesystem",
      cause: error,
    },
  );
}

export function openStateDb(path: string): StateDb {
  let db: StateDb;
  try {
    db = new Database(path);
    configureConnection(db);
  } catch (error) {
    throw openFailed(path, error);
  }
  try {
    migrateComponent(db, COMPONENT, INSTALLER_MIGRATIONS, path);
  } catch (error) {
    db.close();
    throw error instanceof AirlockError ? error : openFailed(path, error);
  }
  return db;
}

/** A read-only connection for looking without writing (preflight); undefined when there is no database. */
export function openStateDbReadOnly(path: string): StateDb | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma("busy_timeout = 10000");
    return db;
  } catch (error) {
    throw openFailed(path, error);
  }
}
