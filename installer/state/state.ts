import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { AirlockError, errnoCode } from "../../registry/oci/index.js";
import { openStateDb, type StateDb } from "./db.js";
import { EventLog } from "./events.js";
import { InstallRecords } from "./installs.js";
import { acquireWriterLock, currentHolder, type LockHolder, type LockName, type WriterLock } from "./lock.js";
import { PlanRecords } from "./plans.js";
import { ReleaseRecords } from "./releases.js";
import { RunRecords } from "./runs.js";
import { ScheduleRecords } from "./schedules.js";

export const STATE_FILE = "airlock.db";

export interface StateOptions {
  /** Who the events name when a call gives no actor: `cli`, `daemon`, a console user. */
  actor?: string;
  /** Injected for tests; the wall clock otherwise. */
  clock?: () => Date;
}

/** The installer's records in `<dataDir>/airlock.db`, beside the store's tables. */
export class State {
  readonly installs: InstallRecords;
  readonly releases: ReleaseRecords;
  readonly events: EventLog;
  readonly plans: PlanRecords;
  readonly schedules: ScheduleRecords;
  readonly runs: RunRecords;
  private readonly locks = new Set<WriterLock>();

  constructor(
    readonly db: StateDb,
    private readonly clock: () => Date,
    actor: string,
  ) {
    this.events = new EventLog(db, clock, actor);
    this.installs = new InstallRecords(db, this.events, clock);
    this.releases = new ReleaseRecords(db, this.events, clock);
    this.plans = new PlanRecords(db, this.events, clock);
    this.schedules = new ScheduleRecords(db, this.events, clock);
    this.runs = new RunRecords(db, this.events, clock);
  }

  /** Runs `fn` as one transaction (nested calls become savepoints): all of it is visible, or none. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  /** The site's one writer lock; `LOCK_HELD` naming the holder's PID and command when another has it. */
  lock(command: string): WriterLock {
    return this.take(command, "writer");
  }

  /** Held by `airlock serve` while it runs; `DAEMON_RUNNING` naming the running one's PID otherwise. */
  daemonLock(command: string): WriterLock {
    return this.take(command, "daemon");
  }

  private take(command: string, name: LockName): WriterLock {
    const lock = acquireWriterLock(this.db, command, this.clock, name);
    this.locks.add(lock);
    return {
      holder: lock.holder,
      release: () => {
        lock.release();
        this.locks.delete(lock);
      },
    };
  }

  lockHolder(name: LockName = "writer"): LockHolder | undefined {
    return currentHolder(this.db, name);
  }

  /** Releases any lock still held, then closes the database. */
  close(): void {
    for (const lock of this.locks) lock.release();
    this.locks.clear();
    if (this.db.open) this.db.close();
  }
}

/** Opens (creating and migrating as needed) the installer's state under a data dir. */
export function openState(dataDir: string, options: StateOptions = {}): State {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (error) {
    const code = errnoCode(error);
    throw new AirlockError("STATE_OPEN_FAILED", `cannot create the data dir: ${(error as Error).message}`, {
      where: dataDir,
      hint:
        code === "EACCES" || code === "EROFS"
          ? "run as a user who can write the data dir, or pass --data-dir"
          : "check --data-dir (or AIRLOCK_HOME) names a directory",
      cause: error,
    });
  }
  const db = openStateDb(join(dataDir, STATE_FILE));
  return new State(db, options.clock ?? (() => new Date()), options.actor ?? "airlock");
}
