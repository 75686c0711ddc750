import { AirlockError } from "../../registry/oci/index.js";
import type { StateDb } from "./db.js";
import type { EventLog } from "./events.js";

/** When a plan may run: in one of its windows (outside the freezes), at an instant, or now. */
export interface UpgradeSchedule {
  id: number;
  planId: number;
  /** Window specs as given (`Sat 02:00-04:00 Europe/Berlin`), validated before they were stored. */
  windows: string[];
  /** Freeze specs as given (`2026-12-20..2027-01-06 Europe/Berlin`). */
  freezes: string[];
  /** ISO instant of an `--at` start. */
  at: string | undefined;
  now: boolean;
  /** Roll back rather than overrun the window's end. */
  hardDeadline: boolean;
  createdAt: string;
  cancelledAt: string | undefined;
  /** The run it started: a schedule starts one run, and is not due once it has. */
  runId: number | undefined;
  /** When its run was refused before it changed anything, and why: the schedule is used up. */
  refused: { at: string; reason: string } | undefined;
}

export type NewUpgradeSchedule = Pick<
  UpgradeSchedule,
  "planId" | "windows" | "freezes" | "now" | "hardDeadline"
> & {
  at?: string | undefined;
};

interface ScheduleRow {
  id: number;
  plan_id: number;
  windows: string;
  freezes: string;
  at: string | null;
  now: number;
  hard_deadline: number;
  created_at: string;
  cancelled_at: string | null;
  run_id: number | null;
  refused_at: string | null;
  refused_reason: string | null;
}

function toSchedule(row: ScheduleRow): UpgradeSchedule {
  return {
    id: row.id,
    planId: row.plan_id,
    windows: JSON.parse(row.windows) as string[],
    freezes: JSON.parse(row.freezes) as string[],
    at: row.at ?? undefined,
    now: row.now === 1,
    hardDeadline: row.hard_deadline === 1,
    createdAt: row.created_at,
    cancelledAt: row.cancelled_at ?? undefined,
    runId: row.run_id ?? undefined,
    refused: row.refused_at === null ? undefined : { at: row.refused_at, reason: row.refused_reason ?? "" },
  };
}

function describe(schedule: UpgradeSchedule): string {
  if (schedule.now) return "now";
  if (schedule.at !== undefined) return `at ${schedule.at}`;
  return schedule.windows.join("; ");
}

/** Schedules: at most one active (neither cancelled nor refused) per plan, a unique partial index holding it. */
export class ScheduleRecords {
  constructor(
    private readonly db: StateDb,
    private readonly events: EventLog,
    private readonly clock: () => Date,
  ) {}

  /** Refused with SCHEDULE_OVERLAP when the plan has an active schedule: cancel that one first. */
  create(schedule: NewUpgradeSchedule): UpgradeSchedule {
    return this.db.transaction(() => {
      const active = this.activeFor(schedule.planId);
      if (active !== undefined) {
        throw new AirlockError(
          "SCHEDULE_OVERLAP",
          `plan ${schedule.planId} is already scheduled (${describe(active)}), and one plan runs once`,
          {
            where: `plan/${schedule.planId}`,
            hint: `cancel it first with \`airlock upgrade cancel ${schedule.planId}\`, then schedule again`,
          },
        );
      }
      const now = this.clock().toISOString();
      const { lastInsertRowid } = this.db
        .prepare(
          `INSERT INTO upgrade_schedules (plan_id, windows, freezes, at, now, hard_deadline, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(
          schedule.planId,
          JSON.stringify(schedule.windows),
          JSON.stringify(schedule.freezes),
          schedule.at ?? null,
          schedule.now ? 1 : 0,
          schedule.hardDeadline ? 1 : 0,
          now,
        );
      const id = Number(lastInsertRowid);
      const created = this.get(id);
      this.events.append({
        action: "upgrade.schedule",
        object: `plan/${schedule.planId}/schedule/${id}`,
        outcome: "ok",
        detail: { when: describe(created), freezes: schedule.freezes, hardDeadline: schedule.hardDeadline },
      });
      return created;
    })();
  }

  get(id: number): UpgradeSchedule {
    const row = this.db.prepare("SELECT * FROM upgrade_schedules WHERE id = ?").get(id) as
      ScheduleRow | undefined;
    if (row === undefined) {
      throw new AirlockError("STATE_NOT_FOUND", `no upgrade schedule ${id}`, {
        hint: "list the active schedules with `airlock upgrade windows`",
      });
    }
    return toSchedule(row);
  }

  activeFor(planId: number): UpgradeSchedule | undefined {
    const row = this.db
      .prepare(
        "SELECT * FROM upgrade_schedules WHERE plan_id = ? AND cancelled_at IS NULL AND refused_at IS NULL",
      )
      .get(planId) as ScheduleRow | undefined;
    return row === undefined ? undefined : toSchedule(row);
  }

  /** The schedules neither cancelled, refused nor started, oldest first. */
  active(): UpgradeSchedule[] {
    const rows = this.db
      .prepare(
        `SELECT * FROM upgrade_schedules WHERE cancelled_at IS NULL AND refused_at IS NULL AND run_id IS NULL
         ORDER BY id`,
      )
      .all() as ScheduleRow[];
    return rows.map(toSchedule);
  }

  /** The refused schedules, newest first, at most `limit`. */
  refusedRecently(limit = 5): UpgradeSchedule[] {
    const rows = this.db
      .prepare(
        "SELECT * FROM upgrade_schedules WHERE refused_at IS NOT NULL ORDER BY refused_at DESC, id DESC LIMIT ?",
      )
      .all(limit) as ScheduleRow[];
    return rows.map(toSchedule);
  }

  /** The schedule that started `runId`, if a schedule did. */
  forRun(runId: number): UpgradeSchedule | undefined {
    const row = this.db.prepare("SELECT * FROM upgrade_schedules WHERE run_id = ?").get(runId) as
      ScheduleRow | undefined;
    return row === undefined ? undefined : toSchedule(row);
  }

  /**
   * Uses schedule `id` up: its run was refused before it changed anything (why: `reason`). It is
   * not due again, and no longer holds its plan's active slot. An event says so.
   */
  refuse(id: number, reason: string): UpgradeSchedule {
    return this.db.transaction(() => {
      const schedule = this.get(id);
      this.db
        .prepare("UPDATE upgrade_schedules SET refused_at = ?, refused_reason = ? WHERE id = ?")
        .run(this.clock().toISOString(), reason, id);
      this.events.append({
        action: "upgrade.schedule.refuse",
        object: `plan/${schedule.planId}/schedule/${id}`,
        outcome: "failed",
        detail: {
          when: describe(schedule),
          reason,
          ...(schedule.runId === undefined ? {} : { run: schedule.runId }),
        },
      });
      return this.get(id);
    })();
  }

  /**
   * Marks the plan's schedule as having started `runId` (undefined when the plan has none); `runId`
   * undefined gives it back, when a run was dropped before it changed anything.
   */
  started(planId: number, runId: number | undefined): UpgradeSchedule | undefined {
    const active = this.activeFor(planId);
    if (active === undefined) return undefined;
    this.db.prepare("UPDATE upgrade_schedules SET run_id = ? WHERE id = ?").run(runId ?? null, active.id);
    return this.get(active.id);
  }

  /** Cancels the plan's active schedule; undefined when it has none. */
  cancel(planId: number): UpgradeSchedule | undefined {
    return this.db.transaction(() => {
      const active = this.activeFor(planId);
      if (active === undefined) return undefined;
      this.db
        .prepare("UPDATE upgrade_schedules SET cancelled_at = ? WHERE id = ?")
        .run(this.clock().toISOString(), active.id);
      this.events.append({
        action: "upgrade.schedule.cancel",
        object: `plan/${planId}/schedule/${active.id}`,
        outcome: "ok",
        detail: { when: describe(active) },
      });
      return this.get(active.id);
    })();
  }
}
