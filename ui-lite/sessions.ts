import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import type { StateDb } from "../installer/state/index.js";
import type { ConsoleUser, UserRecords } from "./users.js";

export interface SessionLimits {
  /** A session unused this long is over. */
  idleMs: number;
  /** A session this old is over, however busy. */
  absoluteMs: number;
}

export const DEFAULT_SESSION_LIMITS: SessionLimits = { idleMs: 30 * 60_000, absoluteMs: 12 * 3_600_000 };

/**
 * A session's last-seen time is written at most this often: each write is a durable commit (an fsync),
 * which would otherwise be the costliest part of every page. So a session may end up to this much before
 * its idle limit, never after it.
 */
export const SESSION_TOUCH_MS = 60_000;

export interface ConsoleSession {
  user: ConsoleUser;
  /** The per-session token every state-changing request must carry (form field or header). */
  csrfToken: string;
  createdAt: string;
}

interface SessionRow {
  user_id: number;
  csrf_token: string;
  created_at: string;
  last_seen_at: string;
}

const hashToken = (token: string): string => createHash("sha256").update(token).digest("hex");

export function randomToken(): string {
  return randomBytes(32).toString("base64url");
}

/** Compares two tokens in constant time; a missing one never matches. */
export function tokensMatch(given: unknown, expected: string): boolean {
  if (typeof given !== "string") return false;
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Sessions in `ui_sessions`, keyed by the hash of the cookie's token. */
export class SessionRecords {
  constructor(
    private readonly db: StateDb,
    private readonly users: UserRecords,
    private readonly clock: () => Date,
    private readonly limits: SessionLimits = DEFAULT_SESSION_LIMITS,
  ) {}

  /** A new session; the returned token goes in the cookie and nowhere else. */
  open(user: ConsoleUser): { token: string; session: ConsoleSession } {
    const token = randomToken();
    const csrfToken = randomToken();
    const now = this.clock().toISOString();
    this.db
      .prepare(
        "INSERT INTO ui_sessions (token_hash, user_id, csrf_token, created_at, last_seen_at) VALUES (?, ?, ?, ?, ?)",
      )
      .run(hashToken(token), user.id, csrfToken, now, now);
    return { token, session: { user, csrfToken, createdAt: now } };
  }

  /** The live session of a token, its idle clock restarted; an expired one is removed and undefined. */
  resume(token: string): ConsoleSession | undefined {
    const key = hashToken(token);
    const row = this.db
      .prepare("SELECT user_id, csrf_token, created_at, last_seen_at FROM ui_sessions WHERE token_hash = ?")
      .get(key) as SessionRow | undefined;
    if (row === undefined) return undefined;
    const now = this.clock();
    const idle = now.getTime() - Date.parse(row.last_seen_at);
    const age = now.getTime() - Date.parse(row.created_at);
    const user = this.users.byId(row.user_id);
    if (idle > this.limits.idleMs || age > this.limits.absoluteMs || user === undefined) {
      this.close(token);
      return undefined;
    }
    if (idle >= SESSION_TOUCH_MS || idle < 0) {
      this.db
        .prepare("UPDATE ui_sessions SET last_seen_at = ? WHERE token_hash = ?")
        .run(now.toISOString(), key);
    }
    return { user, csrfToken: row.csrf_token, createdAt: row.created_at };
  }

  close(token: string): void {
    this.db.prepare("DELETE FROM ui_sessions WHERE token_hash = ?").run(hashToken(token));
  }
}
