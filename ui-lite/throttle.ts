import type { StateDb } from "../installer/state/index.js";

/** Failures answered at once; each one after these waits twice as long as the last before the next try. */
export const FREE_FAILURES = 3;
/** Failures that lock the account or address. */
export const LOCK_FAILURES = 5;
export const LOCK_MS = 15 * 60_000;
const FIRST_BACKOFF_MS = 2_000;

export type LoginVerdict = { allowed: true } | { allowed: false; locked: boolean; retryAt: Date };

interface FailureRow {
  failures: number;
  last_failure_at: string;
  locked_until: string | null;
}

/**
 * Login back-off and lock, per account (`user:<name>`, counted for names that do not exist too, so the
 * answer tells nothing) and per address (`address:<ip>`), in `ui_login_failures` so a restart keeps them.
 */
export class LoginThrottle {
  constructor(
    private readonly db: StateDb,
    private readonly clock: () => Date,
  ) {}

  private read(key: string): FailureRow | undefined {
    const row = this.db
      .prepare("SELECT failures, last_failure_at, locked_until FROM ui_login_failures WHERE key = ?")
      .get(key) as FailureRow | undefined;
    // A count whose last failure is a lock's length old is forgotten.
    if (row !== undefined && row.locked_until === null) {
      if (this.clock().getTime() - Date.parse(row.last_failure_at) > LOCK_MS) return undefined;
    }
    if (row?.locked_until != null && Date.parse(row.locked_until) <= this.clock().getTime()) return undefined;
    return row;
  }

  private verdictOf(key: string): LoginVerdict {
    const row = this.read(key);
    if (row === undefined) return { allowed: true };
    if (row.locked_until !== null)
      return { allowed: false, locked: true, retryAt: new Date(row.locked_until) };
    if (row.failures < FREE_FAILURES) return { allowed: true };
    const wait = FIRST_BACKOFF_MS * 2 ** (row.failures - FREE_FAILURES);
    const retryAt = new Date(Date.parse(row.last_failure_at) + wait);
    return retryAt.getTime() <= this.clock().getTime()
      ? { allowed: true }
      : { allowed: false, locked: false, retryAt };
  }

  /** Whether a login may be tried now: the stricter of the account's and the address's verdicts. */
  check(user: string, address: string): LoginVerdict {
    const verdicts = [this.verdictOf(`user:${user}`), this.verdictOf(`address:${address}`)];
    const refused = verdicts.filter((verdict) => !verdict.allowed);
    if (refused.length === 0) return { allowed: true };
    return refused.reduce((a, b) => (a.retryAt >= b.retryAt ? a : b));
  }

  /** Counts a failed login against both keys; true when it locked either. */
  fail(user: string, address: string): boolean {
    const now = this.clock();
    let locked = false;
    for (const key of [`user:${user}`, `address:${address}`]) {
      const failures = (this.read(key)?.failures ?? 0) + 1;
      const lockedUntil = failures >= LOCK_FAILURES ? new Date(now.getTime() + LOCK_MS).toISOString() : null;
      locked ||= lockedUntil !== null;
      this.db
        .prepare(
          `INSERT INTO ui_login_failures (key, failures, last_failure_at, locked_until) VALUES (?, ?, ?, ?)
           ON CONFLICT (key) DO UPDATE SET failures = excluded.failures,
             last_failure_at = excluded.last_failure_at, locked_until = excluded.locked_until`,
        )
        .run(key, failures, now.toISOString(), lockedUntil);
    }
    return locked;
  }

  /** A good login clears its account's count; the address's runs on, or one account could clear it for all. */
  succeed(user: string): void {
    this.db.prepare("DELETE FROM ui_login_failures WHERE key = ?").run(`user:${user}`);
  }
}
