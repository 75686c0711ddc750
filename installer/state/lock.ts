import { readFileSync } from "node:fs";
import { AirlockError, errnoCode } from "../../registry/oci/index.js";
import type { StateDb } from "./db.js";

/**
 * The locks of a site, rows of one table: `writer`, the one writer (install, upgrade, the daemon's
 * runs take it while they act), and `daemon`, held by `airlock serve` for as long as it runs.
 */
export type LockName = "writer" | "daemon";

export interface LockHolder {
  pid: number;
  /** The holder's start time in clock ticks since boot (`/proc/PID/stat` field 22): tells a reused PID apart. */
  startTicks: number | undefined;
  command: string;
  acquiredAt: string;
}

export interface WriterLock {
  readonly holder: LockHolder;
  release(): void;
}

/** A process's start time from `/proc/PID/stat`; undefined when it is gone (or there is no /proc). */
export function processStartTicks(pid: number): number | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may hold spaces and parentheses: count fields after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[19]);
  return Number.isInteger(ticks) ? ticks : undefined;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return errnoCode(error) === "EPERM";
  }
}

/** True while the process that took the lock still runs: same PID and, where /proc tells, same start. */
export function holderAlive(holder: LockHolder): boolean {
  if (!pidAlive(holder.pid)) return false;
  if (holder.startTicks === undefined) return true;
  const ticks = processStartTicks(holder.pid);
  return ticks === undefined || ticks === holder.startTicks;
}

export function lockHeldError(holder: LockHolder, where: string, name: LockName = "writer"): AirlockError {
  if (name === "daemon") {
    return new AirlockError(
      "DAEMON_RUNNING",
      `airlock serve already runs on this data dir: process ${holder.pid} (${holder.command}) since ${holder.acquiredAt}`,
      {
        where,
        hint: `stop process ${holder.pid} first (\`systemctl stop\` its unit), or serve another --data-dir`,
      },
    );
  }
  return new AirlockError(
    "LOCK_HELD",
    `another airlock is changing this site: process ${holder.pid} (${holder.command}) since ${holder.acquiredAt}`,
    { where, hint: `wait for process ${holder.pid} to finish, then run this again` },
  );
}

interface LockRow {
  pid: number;
  start_ticks: number | null;
  command: string;
  acquired_at: string;
}

function readHolder(db: StateDb, name: LockName): LockHolder | undefined {
  const row = db
    .prepare("SELECT pid, start_ticks, command, acquired_at FROM writer_lock WHERE name = ?")
    .get(name) as LockRow | undefined;
  if (row === undefined) return undefined;
  return {
    pid: row.pid,
    startTicks: row.start_ticks ?? undefined,
    command: row.command,
    acquiredAt: row.acquired_at,
  };
}

/** Who holds the lock now, if a live process does. */
export function currentHolder(db: StateDb, name: LockName = "writer"): LockHolder | undefined {
  const holder = readHolder(db, name);
  return holder !== undefined && holderAlive(holder) ? holder : undefined;
}

/**
 * Takes the site's writer lock or fails at once with `LOCK_HELD` naming the holder. Checked and written
 * in one `BEGIN IMMEDIATE` transaction, which SQLite serialises across processes, so of two racers
 * exactly one wins. A holder that died (SIGKILL, power loss) or whose PID now names another process
 * is stale and taken over. The lock goes with `release()`, or when this process exits.
 */
export function acquireWriterLock(
  db: StateDb,
  command: string,
  clock: () => Date,
  name: LockName = "writer",
): WriterLock {
  const where = `${db.name} (${name} lock)`;
  const self: LockHolder = {
    pid: process.pid,
    startTicks: processStartTicks(process.pid),
    command,
    acquiredAt: clock().toISOString(),
  };
  db.transaction(() => {
    const holder = readHolder(db, name);
    if (holder !== undefined && holderAlive(holder)) throw lockHeldError(holder, where, name);
    db.prepare(
      `INSERT INTO writer_lock (name, pid, start_ticks, command, acquired_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (name) DO UPDATE SET pid = excluded.pid, start_ticks = excluded.start_ticks,
         command = excluded.command, acquired_at = excluded.acquired_at`,
    ).run(name, self.pid, self.startTicks ?? null, self.command, self.acquiredAt);
  }).immediate();

  let held = true;
  const release = (): void => {
    if (!held) return;
    held = false;
    process.off("exit", release);
    if (db.open) db.prepare("DELETE FROM writer_lock WHERE name = ? AND pid = ?").run(name, self.pid);
  };
  process.once("exit", release);
  return { holder: self, release };
}
