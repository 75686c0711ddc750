import { AirlockError } from "../../registry/oci/index.js";
import type { StateDb } from "./db.js";
import type { EventLog } from "./events.js";
import {
  toRun,
  type RunGate,
  type RunKind,
  type RunRow,
  type RunState,
  type RunStep,
  type UpgradeRun,
} from "./run-row.js";

export { resumeDecision } from "./run-row.js";
export type { ResumeDecision, RunGate, RunKind, RunState, RunStep, UpgradeRun } from "./run-row.js";

export interface NewRun {
  planId: number;
  kind?: RunKind | undefined;
  fromReleaseId?: number | undefined;
  toReleaseId?: number | undefined;
  window?: { start: Date; end: Date } | undefined;
}

/**
 * Upgrade runs: created running, moved step by step, finished once; each change one transaction with
 * its event, so what a run did is on record before it does the next thing.
 */
export class RunRecords {
  constructor(
    private readonly db: StateDb,
    private readonly events: EventLog,
    private readonly clock: () => Date,
  ) {}

  create(run: NewRun): UpgradeRun {
    return this.db.transaction(() => {
      const { lastInsertRowid } = this.db
        .prepare(
          `INSERT INTO upgrade_runs (plan_id, kind, from_release_id, to_release_id, started_at, state,
             window_start, window_end)
           VALUES (?, ?, ?, ?, ?, 'running', ?, ?)`,
        )
        .run(
          run.planId,
          run.kind ?? "upgrade",
          run.fromReleaseId ?? null,
          run.toReleaseId ?? null,
          this.clock().toISOString(),
          run.window?.start.toISOString() ?? null,
          run.window?.end.toISOString() ?? null,
        );
      const id = Number(lastInsertRowid);
      this.events.append({
        action: run.kind === "rollback" ? "upgrade.rollback.start" : "upgrade.run.start",
        object: `run/${id}`,
        outcome: "started",
        detail: { plan: run.planId, from: run.fromReleaseId, to: run.toReleaseId },
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

  /** The runs still marked running, oldest first: with no live writer, each was interrupted. */
  unfinished(): UpgradeRun[] {
    const rows = this.db
      .prepare("SELECT * FROM upgrade_runs WHERE state = 'running' ORDER BY id")
      .all() as RunRow[];
    return rows.map(toRun);
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

  private update(id: number, assignments: string, ...values: (string | number | null)[]): void {
    this.db.prepare(`UPDATE upgrade_runs SET ${assignments} WHERE id = ?`).run(...values, id);
  }

  /** The release the run deploys, once recorded (it names the run, so it comes after it). */
  setTarget(id: number, toReleaseId: number): UpgradeRun {
    this.update(id, "to_release_id = ?", toReleaseId);
    return this.get(id);
  }

  /** Records the step the run is on, and any gate verdicts reached since the last call. */
  updateStep(id: number, step: string, gates: RunGate[] = []): UpgradeRun {
    return this.db.transaction(() => {
      const run = this.running(id);
      this.update(id, "current_step = ?, gates = ?", step, JSON.stringify([...run.gates, ...gates]));
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

  stepStarted(id: number, step: string, at: number): void {
    this.db.transaction(() => {
      const run = this.running(id);
      const steps: RunStep[] = [...run.steps, { step, startedAt: at }];
      this.update(id, "current_step = ?, steps = ?", step, JSON.stringify(steps));
      this.events.append({
        action: "upgrade.run.step",
        object: `run/${id}`,
        outcome: "started",
        detail: { step },
      });
    })();
  }

  /** Ends the latest unfinished entry of `step` (steps nest: a recreate inside the StatefulSet's). */
  stepFinished(id: number, step: string, at: number, outcome: "done" | "failed", detail?: string): void {
    this.db.transaction(() => {
      const run = this.running(id);
      const index = run.steps.findLastIndex((entry) => entry.step === step && entry.finishedAt === undefined);
      const startedAt = run.steps[index]?.startedAt ?? at;
      const steps = run.steps.map((entry, position) =>
        position === index
          ? { ...entry, finishedAt: at, outcome, ...(detail === undefined ? {} : { detail }) }
          : entry,
      );
      this.update(id, "steps = ?", JSON.stringify(steps));
      this.events.append({
        action: "upgrade.run.step",
        object: `run/${id}`,
        outcome: outcome === "done" ? "ok" : "failed",
        detail: { step, ms: at - startedAt, ...(detail === undefined ? {} : { detail }) },
      });
    })();
  }

  gate(id: number, gate: RunGate): void {
    this.db.transaction(() => {
      const run = this.running(id);
      this.update(id, "gates = ?", JSON.stringify([...run.gates, gate]));
      this.events.append({
        action: "upgrade.run.gate",
        object: `run/${id}`,
        outcome: gate.passed ? "ok" : "failed",
        detail: { gate: gate.gate, pod: gate.pod, ms: gate.finishedAt - gate.startedAt, detail: gate.detail },
      });
    })();
  }

  partitionMoved(id: number, statefulSet: string, partition: number): void {
    this.db.transaction(() => {
      this.running(id);
      this.update(id, "partition = ?", partition);
      this.events.append({
        action: "upgrade.run.partition",
        object: `run/${id}`,
        outcome: "ok",
        detail: { statefulSet, partition },
      });
    })();
  }

  rolledBack(id: number, reason: string): void {
    this.db.transaction(() => {
      this.running(id);
      this.update(id, "rollback_reason = ?", reason);
      this.events.append({
        action: "upgrade.run.rollback",
        object: `run/${id}`,
        outcome: "ok",
        detail: { reason },
      });
    })();
  }

  /** A run taken up again after its process died: counted, with what the resume does and why. */
  resumed(id: number, detail: Record<string, unknown>): UpgradeRun {
    return this.db.transaction(() => {
      this.running(id);
      this.update(id, "resumed = resumed + 1");
      this.events.append({ action: "upgrade.run.resume", object: `run/${id}`, outcome: "started", detail });
      return this.get(id);
    })();
  }

  /** Ends the run: done, rolled back (with why), failed (with why) or interrupted. */
  finish(
    id: number,
    end: {
      state: Exclude<RunState, "running">;
      rollbackReason?: string | undefined;
      failure?: string | undefined;
    },
  ): UpgradeRun {
    return this.db.transaction(() => {
      const run = this.running(id);
      this.update(
        id,
        "state = ?, ended_at = ?, rollback_reason = ?, failure = ?",
        end.state,
        this.clock().toISOString(),
        end.rollbackReason ?? run.rollbackReason ?? null,
        end.failure ?? null,
      );
      this.events.append({
        action: "upgrade.run.finish",
        object: `run/${id}`,
        outcome: end.state === "done" ? "ok" : "failed",
        detail: {
          state: end.state,
          ...(end.rollbackReason === undefined ? {} : { reason: end.rollbackReason }),
          ...(end.failure === undefined ? {} : { failure: end.failure }),
        },
      });
      return this.get(id);
    })();
  }
}
