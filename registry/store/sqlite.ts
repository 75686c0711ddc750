import type Database from "better-sqlite3";

const BUSY_TIMEOUT_MS = 10_000;
const WAL_RETRY_MS = 10;

/** Blocks this thread for `ms`: better-sqlite3 is synchronous, so its retries are too. */
function pause(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * The connection settings every airlock.db connection uses: WAL, full sync, foreign keys, and a busy
 * timeout set first. Switching a fresh database to WAL can answer SQLITE_BUSY at once, without the
 * busy handler, when another process opens it at the same moment (two `airlock` commands on a new
 * data dir), so that one pragma is retried up to the busy timeout.
 */
export function configureConnection(db: Database.Database): void {
  db.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  const deadline = Date.now() + BUSY_TIMEOUT_MS;
  for (;;) {
    try {
      db.pragma("journal_mode = WAL");
      break;
    } catch (error) {
      if ((error as { code?: string }).code !== "SQLITE_BUSY" || Date.now() > deadline) throw error;
      pause(WAL_RETRY_MS);
    }
  }
  db.pragma("synchronous = FULL");
  db.pragma("foreign_keys = ON");
}
