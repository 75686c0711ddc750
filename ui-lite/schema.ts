import type { StateDb } from "../installer/state/index.js";
import { AirlockError } from "../registry/oci/index.js";

/** The console's own track in `airlock.db`'s `schema_migrations`, beside the store's and the installer's. */
export const UI_COMPONENT = "ui";

/** Append only: a released migration never changes. */
const UI_MIGRATIONS: string[] = [
  `
  CREATE TABLE ui_users (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash TEXT NOT NULL,
    -- a one-time password: every page but the password form is closed until it is changed
    must_change INTEGER NOT NULL CHECK (must_change IN (0, 1)),
    created_at TEXT NOT NULL,
    password_changed_at TEXT NOT NULL
  );
  CREATE TABLE ui_sessions (
    -- sha256 of the cookie's token: a copy of the database opens no session
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES ui_users(id) ON DELETE CASCADE,
    csrf_token TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen_at TEXT NOT NULL
  );
  CREATE INDEX ui_sessions_by_user ON ui_sessions (user_id);
  CREATE TABLE ui_login_failures (
    -- 'user:<name>' or 'address:<ip>'
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_failure_at TEXT NOT NULL,
    locked_until TEXT
  );
  `,
  `
  CREATE TABLE ui_uploads (
    -- random, and the only name the partial file on disk has: the client's file name is shown, never a path
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    size INTEGER NOT NULL CHECK (size > 0),
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('receiving', 'importing', 'done', 'failed')),
    -- JSON: the import's result, or the refusing error's code, message and hint
    outcome TEXT
  );
  `,
];

export const UI_SCHEMA_VERSION = UI_MIGRATIONS.length;

function uiVersion(db: StateDb): number {
  const row = db.prepare("SELECT version FROM schema_migrations WHERE component = ?").get(UI_COMPONENT) as
    { version: number } | undefined;
  return row?.version ?? 0;
}

/**
 * Brings the console's tables forward on the installer's connection (which made `schema_migrations`),
 * one migration per `BEGIN IMMEDIATE` transaction with the version re-read inside it, as the
 * installer's own track does, so two processes opening one data dir apply each migration once.
 */
export function migrateUi(db: StateDb): void {
  for (;;) {
    const applied = db
      .transaction(() => {
        const version = uiVersion(db);
        if (version > UI_MIGRATIONS.length) {
          throw new AirlockError(
            "STATE_TOO_NEW",
            `the console's tables are at schema ${version}, newer than this airlock knows (${UI_SCHEMA_VERSION})`,
            { hint: "use the airlock version that last wrote this data dir, or a newer one" },
          );
        }
        if (version === UI_MIGRATIONS.length) return false;
        db.exec(UI_MIGRATIONS[version]!);
        db.prepare(
          `INSERT INTO schema_migrations (component, version) VALUES (?, ?)
           ON CONFLICT (component) DO UPDATE SET version = excluded.version`,
        ).run(UI_COMPONENT, version + 1);
        return true;
      })
      .immediate();
    if (!applied) return;
  }
}
