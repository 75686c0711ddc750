import { migrateComponent, type StateDb } from "../installer/state/index.js";

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

/** Brings the console's tables forward on the installer's connection, on the console's own track. */
export function migrateUi(db: StateDb): void {
  migrateComponent(db, UI_COMPONENT, UI_MIGRATIONS);
}
