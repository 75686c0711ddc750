import { AirlockError } from "../../registry/oci/index.js";
import type { StateDb } from "./db.js";
import type { EventLog } from "./events.js";

export type RunState = "running" | "done" | "rolled-back" | "failed" | "interrupted";

/** One gate's verdict as recorded (the rollout's GateOutcome): times in ms since the epoch. */
export interface RunGate {
  gate: string;
  pod?: string | undefined;
  passed: boolean;
  detail: string;
  startedAt: number;
  finishedAt: number;
}

export interface UpgradeRun {
  id: number;
  planId: number;
  startedAt: string;
  endedAt: string | undefined;
  state: RunState;
  currentStep: string | undefined;
  gates: RunGate[];
  rollbackReason: string | undefined;
  /** The window opening the run started in; absent for `--now` and `--at`. */
  window: { start: string; end: string } | undefined;
}

interface RunRow {
  id: number;
  plan_id: number;
  started_at: string;
  ended_at: string | null;
  state: RunState;
  current_step: string | null;
  gates: string;
  rollback_reason: string | null;
  window_start: string | null;
  window_end: string | null;
}

function toRun(row: RunRow): UpgradeRun {
  return {
    id: row.id,
    planId: row.plan_id,
    startedAt: row.started_at,
    endedAt: row.ended_at ?? undefined,
    state: row.state,
    currentStep: row.current_step ?? undefined,
    gates: JSON.parse(row.gates) as RunGate[],
    rollbackReason: row.rollback_reason ?? undefined,
    window:
      row.window_start === null || row.window_end === null
        ? undefined
        : { start: row.window_start, end: row.window_end },
  };
}

/** Upgrade runs: created running, moved step by step, finished once; each change with its event. */
export class RunRecords {
  constructor(
    private readonly db: StateDb,
    private readonly events: EventLog,
    private readonly clock: () => Date,
  ) {}

  create(run: { planId: number; window?: { start: Date; end: Date } | undefined }): UpgradeRun {
    return this.db.transaction(() => {
      const { lastInsertRowid } = this.db
        .prepare(
          `INSERT INTO upgrade_runs (plan_id, started_at, state, window_start, window_end)
           VALUES (?, ?, 'running', ?, ?)`,
        )
        .run(
          run.planId,
          this.clock().toISOString(),
          run.window?.start.toISOString() ?? null,
          run.window?.end.toISOString() ?? null,
        );
      const id = Number(lastInsertRowid);
      this.events.append({
        action: "upgrade.run.start",
        object: `run/${id}`,
        outcome: "started",
        detail: { plan: run.planId },
      });
      return this.get(id);
    })();
  }

  get(id: number): UpgradeRun {
    const row = this.db.prepare("SELECT * FROM upgrade_runs WHERE id = ?").get(id) as RunRow | undefined;
    if (row === undefined) {
      throw new AirlockError("STATE_NOT_FOUND", `no upgrade run ${id}`, {
        hint: "list the runs with `airlock upgrade history`",
      });
    }
    return toRun(row);
  }

  /** Newest first. */
  list(): UpgradeRun[] {
    return (this.db.prepare("SELECT * FROM upgrade_runs ORDER BY id DESC").all() as RunRow[]).map(toRun);
  }

  private running(id: number): UpgradeRun {
    const run = this.get(id);
    if (run.state !== "running") {
      throw new AirlockError("STATE_CONFLICT", `upgrade run ${id} has ended (${run.state})`, {
        where: `run/${id}`,
        hint: "a finished run is not changed: start a new run from a new plan",
      });
    }
    return run;
  }

  /** Records the step the run is on, and any gate verdicts reached since the last call. */
  updateStep(id: number, step: string, gates: RunGate[] = []): UpgradeRun {
    return this.db.transaction(() => {
      const run = this.running(id);
      this.db
        .prepare("UPDATE upgrade_runs SET current_step = ?, gates = ? WHERE id = ?")
        .run(step, JSON.stringify([...run.gates, ...gates]), id);
      this.events.append({
        action: "upgrade.run.step",
        object: `run/${id}`,
        outcome: gates.some((gate) => !gate.passed) ? "failed" : "ok",
        detail: {
          step,
          gates: gates.map((gate) => `${gate.gate}${gate.pod === undefined ? "" : ` ${gate.pod}`}`),
        },
      });
      return this.get(id);
    })();
  }

  /** Ends the run: done, rolled back (with why), failed or interrupted. */
  finish(
    id: number,
    end: { state: Exclude<RunState, "running">; rollbackReason?: string | undefined },
  ): UpgradeRun {
    return this.db.transaction(() => {
      this.running(id);
      this.db
        .prepare("UPDATE upgrade_runs SET state = ?, ended_at = ?, rollback_reason = ? WHERE id = ?")
        .run(end.state, this.clock().toISOString(), end.rollbackReason ?? null, id);
      this.events.append({
        action: "upgrade.run.finish",
        object: `run/${id}`,
        outcome: end.state === "done" ? "ok" : "failed",
        detail: {
          state: end.state,
          ...(end.rollbackReason === undefined ? {} : { reason: end.rollbackReason }),
        },
      });
      return this.get(id);
    })();
  }
}
