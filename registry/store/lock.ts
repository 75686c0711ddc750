import { resolve } from "node:path";
import { AirlockError, errnoCode } from "../oci/index.js";
import type { Db } from "./db.js";

export function processAlive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === "EPERM";
  }
}

/** Locks this process holds, by database and name: SQLite rows can't tell two callers of one pid apart. */
const held = new Map<string, string>();

interface LockRow {
  pid: number;
  purpose: string;
}

function busy(where: string, pid: number, purpose: string): AirlockError {
  return new AirlockError("STORE_LOCKED", `the store is busy: process ${pid} is running ${purpose}`, {
    where,
    hint: "wait for it to finish and run this again",
  });
}

/**
 * A named lock as a row in the state database, checked and taken inside one `BEGIN IMMEDIATE`
 * transaction: SQLite serialises that across processes, so two contenders can never both win, even
 * when both find a dead owner's row. A row whose owner died (SIGKILL, power loss) is taken over, so
 * a crash never wedges the store; a row naming this process's pid that this process does not hold
 * is a previous incarnation's (pid reuse after a restart) and is taken over too.
 */
export function acquireLock(db: Db, name: string, purpose: string): () => void {
  const where = `${resolve(db.name)} (lock ${name})`;
  const key = `${resolve(db.name)}#${name}`;
  const holder = held.get(key);
  if (holder !== undefined) throw busy(where, process.pid, holder);
  db.transaction(() => {
    const row = db.prepare("SELECT pid, purpose FROM locks WHERE name = ?").get(name) as LockRow | undefined;
    if (row !== undefined && row.pid !== process.pid && processAlive(row.pid))
      throw busy(where, row.pid, row.purpose);
    db.prepare(
      `INSERT INTO locks (name, pid, purpose, acquired_at) VALUES (?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, purpose = excluded.purpose, acquired_at = excluded.acquired_at`,
    ).run(name, process.pid, purpose, new Date().toISOString());
  }).immediate();
  held.set(key, purpose);
  return () => {
    db.prepare("DELETE FROM locks WHERE name = ? AND pid = ?").run(name, process.pid);
    held.delete(key);
  };
}
