import { AirlockError } from "../../registry/oci/index.js";
import type { ClusterObject } from "../cluster/index.js";
import type { State } from "../state/index.js";
import { loadPlanForRun } from "./plan.js";
import { k3sStepOf, siteOf, type UpgradeDeps } from "./run-deps.js";
import { carryOut, type RunReport } from "./run-settle.js";

export interface ExecuteOptions {
  /** The window opening a scheduled run starts in: recorded with the run. */
  window?: { start: Date; end: Date } | undefined;
}

/** Refuses to start while a run is unfinished: it is resumed (or undone) first, never run over. */
export function refuseUnfinished(state: State): void {
  const unfinished = state.runs.unfinished()[0];
  if (unfinished === undefined) return;
  throw new AirlockError(
    "UPGRADE_INTERRUPTED",
    `upgrade run ${unfinished.id} (plan ${unfinished.planId}) did not finish: it stopped at ${unfinished.currentStep ?? "its start"}`,
    {
      where: `run/${unfinished.id}`,
      hint: "finish or undo it first: `airlock upgrade run --resume` (airlock serve does on start)",
    },
  );
}

/**
 * Runs a stored plan now: refuses a stale or spent plan (with the re-plan hint) and a site with an
 * unfinished run, records the run and the new release (pending) in one transaction, rolls the plane
 * with every step, gate and partition move written to the run's row before the next begins, then
 * records the outcome: the new release deployed and the old one superseded; or the new one failed,
 * the plane back on the old one and the run rolled back with its reason; or, refused by a pre-gate,
 * nothing changed and the plan runnable again. The caller holds the writer lock.
 */
export async function executePlan(
  deps: UpgradeDeps,
  planId: number,
  options: ExecuteOptions = {},
): Promise<RunReport> {
  const { state } = deps;
  refuseUnfinished(state);
  const { plan, previous, next } = loadPlanForRun(state, planId);
  const site = siteOf(deps);
  const k3s = k3sStepOf(deps, site, plan);
  const valuesGiven = state.plans.get(planId).valuesGiven;
  const run = state.transaction(() => {
    const created = state.runs.create({
      planId,
      fromReleaseId: previous.id,
      window: options.window,
    });
    const release = state.releases.record({
      bundleDigest: plan.to.bundleDigest,
      bundleName: previous.bundleName,
      version: plan.to.version,
      valuesGiven,
      valuesEffective: next.valuesEffective,
      objects: next.objects,
      upgradeId: created.id,
      ...(previous.installId === undefined ? {} : { installId: previous.installId }),
    });
    state.plans.setStatus(planId, "running", { run: created.id });
    state.schedules.started(planId, created.id);
    return state.runs.setTarget(created.id, release.id);
  });
  return carryOut(deps, site, run, {
    previous: previous.objects as ClusterObject[],
    next: next.objects as ClusterObject[],
    declaredGates: plan.declaredGates,
    k3s,
  });
}
