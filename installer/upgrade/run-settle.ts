import { AirlockError } from "../../registry/oci/index.js";
import type { ClusterClient, ClusterObject } from "../cluster/index.js";
import type { State, UpgradeRun } from "../state/index.js";
import type { K3sRestoreOptions, K3sUpgradeOptions } from "./k3s-step.js";
import { rollbackRelease } from "./rollback.js";
import { StateRunRecorder, type UpgradeDeps } from "./run-deps.js";
import { runUpgrade } from "./run.js";
import { DATA_NOT_ROLLED_BACK, type DeclaredGate, type K3sOutcome, type UpgradeResult } from "./run-types.js";

/** How a run ended, as `upgrade run`/`rollback` print it and the daemon logs it. */
export interface RunReport {
  /** The run's record as it ended. */
  run: UpgradeRun;
  outcome: "upgraded" | "rolled-back" | "refused" | "abandoned";
  /** `upgraded 4.4.0 → 4.5.0`, `rolled back: ready failed on msgbroker-1: …`, `refused: …`. */
  status: string;
  /** Said whenever the plane went back: data written since is not rolled back. */
  notice?: string | undefined;
  /** The k3s an upgrade replaced before the plane (the new bundle carried another bin/k3s). */
  k3s?: K3sOutcome | undefined;
  durationMs: number;
}

/** The plan's status once a run gave it back untouched: scheduled again if its schedule is still on. */
export function giveBackPlan(state: State, run: UpgradeRun, why: string): void {
  const schedule = state.schedules.started(run.planId, undefined);
  state.plans.setStatus(run.planId, schedule === undefined ? "planned" : "scheduled", { run: run.id, why });
}

/** Records what runUpgrade returned: the new release deployed, or failed and the plan rolled back or given back. */
export function settleUpgrade(state: State, run: UpgradeRun, result: UpgradeResult): RunReport {
  const target = run.toReleaseId!;
  return state.transaction((): RunReport => {
    const { durationMs } = result;
    if (result.outcome === "upgraded") {
      const release = state.releases.deploy(target);
      state.plans.setStatus(run.planId, "done", { run: run.id });
      const ended = state.runs.finish(run.id, { state: "done" });
      const from =
        run.fromReleaseId === undefined ? "" : `${state.releases.get(run.fromReleaseId).version} → `;
      const k3s = result.k3s === undefined ? "" : `, k3s ${result.k3s.from} → ${result.k3s.to}`;
      const status = `upgraded ${from}${release.version}${k3s}`;
      return { run: ended, outcome: "upgraded", status, k3s: result.k3s, durationMs };
    }
    if (result.outcome === "rolled-back") {
      state.releases.fail(target, result.reason);
      state.plans.setStatus(run.planId, "rolled-back", { run: run.id, reason: result.reason });
      const ended = state.runs.finish(run.id, { state: "rolled-back", rollbackReason: result.reason });
      return {
        run: ended,
        outcome: "rolled-back",
        status: `rolled back: ${result.reason}`,
        notice: result.notice,
        durationMs,
      };
    }
    state.releases.fail(target, result.reason);
    // Nothing changed: the plan may run again once the pre-gate's cause is fixed, scheduled anew:
    // the schedule that started this run is used up, keeping why.
    const schedule = state.schedules.forRun(run.id);
    if (schedule !== undefined) state.schedules.refuse(schedule.id, `refused: ${result.reason}`);
    state.plans.setStatus(run.planId, "planned", { run: run.id, refused: result.reason });
    const ended = state.runs.finish(run.id, { state: "failed", failure: `refused: ${result.reason}` });
    return { run: ended, outcome: "refused", status: `refused: ${result.reason}`, durationMs };
  });
}

/**
 * A run that threw (the API server failed, the process was told to stop) is left running at its
 * recorded step, with an event, for resumeInterruptedRun to finish or roll back; the error says so.
 */
export function leftAtSafePoint(state: State, run: UpgradeRun, error: unknown): AirlockError {
  const at = state.runs.get(run.id);
  const message = (error as Error).message;
  state.events.append({
    action: "upgrade.run.interrupt",
    object: `run/${run.id}`,
    outcome: "failed",
    detail: { step: at.currentStep, partition: at.partition, error: message },
  });
  if (error instanceof AirlockError && error.code === "ROLLBACK_FAILED") return error;
  return new AirlockError(
    "UPGRADE_RUN_INTERRUPTED",
    `upgrade run ${run.id} stopped at ${at.currentStep ?? "its start"}${at.partition === undefined ? "" : ` (partition ${at.partition})`}: ${message}`,
    {
      where: `run/${run.id}`,
      hint: "the run is recorded where it stopped: `airlock upgrade run --resume` finishes it or rolls it back (airlock serve does on start)",
      cause: error,
    },
  );
}

export interface RunTarget {
  cluster: ClusterClient;
  imageAvailable: (ref: string) => Promise<boolean>;
}

/** Rolls the plane (k3s first, when given) from `previous` to `next` under `run`'s record (from `resumeAt` when resuming), then settles it. */
export async function carryOut(
  deps: UpgradeDeps,
  site: RunTarget,
  run: UpgradeRun,
  objects: {
    previous: ClusterObject[];
    next: ClusterObject[];
    declaredGates: DeclaredGate[];
    k3s: K3sUpgradeOptions | undefined;
  },
  resumeAt?: number,
): Promise<RunReport> {
  const recorder = new StateRunRecorder(deps.state.runs, run, deps.onProgress);
  let result: UpgradeResult;
  try {
    result = await runUpgrade(site.cluster, {
      ...objects,
      recorder,
      imageAvailable: site.imageAvailable,
      gates: deps.gates,
      probe: deps.probe,
      clock: deps.clock,
      signal: deps.signal,
      resumeAt,
    });
  } catch (error) {
    throw leftAtSafePoint(deps.state, run, error);
  }
  return settleUpgrade(deps.state, run, result);
}

/**
 * Puts `target`'s objects back under `run`'s record (then the kept k3s, when given) and makes it the deployed release again (the one
 * left marked rolled-back when it had been deployed, failed when it never was).
 */
export async function returnTo(
  deps: UpgradeDeps,
  site: RunTarget,
  run: UpgradeRun,
  target: { id: number; version: string; objects: ClusterObject[] },
  reason: string,
  k3s?: K3sRestoreOptions,
): Promise<RunReport> {
  const recorder = new StateRunRecorder(deps.state.runs, run, deps.onProgress);
  const started = (deps.clock ?? { now: Date.now }).now();
  try {
    await rollbackRelease(site.cluster, target.objects, {
      recorder,
      reason,
      gates: deps.gates,
      probe: deps.probe,
      clock: deps.clock,
      signal: deps.signal,
      k3s,
    });
  } catch (error) {
    throw leftAtSafePoint(deps.state, run, error);
  }
  const durationMs = (deps.clock ?? { now: Date.now }).now() - started;
  return deps.state.transaction((): RunReport => {
    const state = deps.state;
    if (state.releases.current()?.id !== target.id) state.releases.deploy(target.id, { rollback: true });
    const left = run.kind === "rollback" ? run.fromReleaseId : run.toReleaseId;
    if (left !== undefined && state.releases.get(left).status === "pending")
      state.releases.fail(left, reason);
    state.plans.setStatus(run.planId, "rolled-back", { run: run.id, reason });
    const ended = state.runs.finish(run.id, { state: "rolled-back", rollbackReason: reason });
    const status =
      run.kind === "rollback"
        ? `rolled back to release ${target.id} (${target.version})`
        : `rolled back: ${reason}`;
    return { run: ended, outcome: "rolled-back", status, notice: DATA_NOT_ROLLED_BACK, durationMs };
  });
}
