import type { StateDb } from "./db.js";

export type EventOutcome = "started" | "ok" | "failed" | "refused" | "skipped";

export interface StateEvent {
  id: number;
  time: string;
  actor: string;
  action: string;
  /** What was acted on, as `kind/name`: `install/3`, `install/3/step/import`, `release/2`. */
  object: string;
  outcome: EventOutcome;
  detail: Record<string, unknown>;
}

export type NewEvent = Omit<StateEvent, "id" | "time" | "actor" | "detail"> & {
  actor?: string;
  detail?: Record<string, unknown>;
};

export interface EventFilter {
  /** Events at or after this ISO time. */
  since?: string;
  /** Events before this ISO time. */
  until?: string;
  action?: string;
  outcome?: EventOutcome;
  /** An exact object, or every object under a prefix ending in `/`. */
  object?: string;
  /** Events with an id above this one: for following the log. */
  afterId?: number;
  /** Events with an id below this one: for paging back through the log. */
  beforeId?: number;
  /** Newest first when set; oldest first otherwise. */
  newestFirst?: boolean;
  limit?: number;
}

interface EventRow extends Omit<StateEvent, "detail"> {
  detail: string;
}

/** The event log: append and read, nothing else (triggers refuse UPDATE and DELETE as well). */
export class EventLog {
  constructor(
    private readonly db: StateDb,
    private readonly clock: () => Date,
    private readonly defaultActor: string,
  ) {}

  append(event: NewEvent): StateEvent {
    const row = {
      time: this.clock().toISOString(),
      actor: event.actor ?? this.defaultActor,
      action: event.action,
      object: event.object,
      outcome: event.outcome,
      detail: event.detail ?? {},
    };
    const { lastInsertRowid } = this.db
      .prepare("INSERT INTO events (time, actor, action, object, outcome, detail) VALUES (?, ?, ?, ?, ?, ?)")
      .run(row.time, row.actor, row.action, row.object, row.outcome, JSON.stringify(row.detail));
    return { id: Number(lastInsertRowid), ...row };
  }

  list(filter: EventFilter = {}): StateEvent[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    const add = (clause: string, ...values: (string | number)[]): void => {
      where.push(clause);
      args.push(...values);
    };
    if (filter.since !== undefined) add("time >= ?", filter.since);
    if (filter.until !== undefined) add("time < ?", filter.until);
    if (filter.action !== undefined) add("action = ?", filter.action);
    if (filter.outcome !== undefined) add("outcome = ?", filter.outcome);
    if (filter.object?.endsWith("/") === true)
      add("substr(object, 1, ?) = ?", filter.object.length, filter.object);
    else if (filter.object !== undefined) add("object = ?", filter.object);
    if (filter.afterId !== undefined) add("id > ?", filter.afterId);
    if (filter.beforeId !== undefined) add("id < ?", filter.beforeId);
    const sql = [
      "SELECT id, time, actor, action, object, outcome, detail FROM events",
      where.length === 0 ? "" : `WHERE ${where.join(" AND ")}`,
      `ORDER BY id ${filter.newestFirst === true ? "DESC" : "ASC"}`,
      filter.limit === undefined ? "" : `LIMIT ${Math.max(0, Math.floor(filter.limit))}`,
    ].join(" ");
    const rows = this.db.prepare(sql).all(...args) as EventRow[];
    return rows.map((row) => ({ ...row, detail: JSON.parse(row.detail) as Record<string, unknown> }));
  }
}
