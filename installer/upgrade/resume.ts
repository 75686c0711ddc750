import type { ClusterObject } from "../cluster/index.js";
import { resumeDecision, type ResumeDecision, type UpgradeRun } from "../state/index.js";
import type { K3sUpgradeOptions } from "./k3s-step.js";
import { readPlan, type UpgradePlan } from "./plan.js";
import { k3sToRestore, MANUAL_ROLLBACK_REASON } from "./rollback-last.js";
import { k3sStepOf, siteOf, type RunSite, type UpgradeDeps } from "./run-deps.js";
import { carryOut, giveBackPlan, returnTo, type RunReport } from "./run-settle.js";
import { GateFailure } from "./run-types.js";

export interface ResumeReport extends RunReport {
  /** What the record said to do, and why (see resumeDecision). */
  decision: ResumeDecision;
}

/** Why a run rolls back when it is taken up again: its recorded reason, else its failed gate. */
function rollbackReason(run: UpgradeRun): string {
  if (run.rollbackReason !== undefined) return run.rollbackReason;
  if (run.kind === "rollback") return MANUAL_ROLLBACK_REASON;
  const failed = run.gates.find((gate) => !gate.passed);
  return failed === undefined
    ? "the run was interrupted while rolling back"
    : new GateFailure(failed.gate, failed.pod, failed.detail).message;
}

/**
 * The k3s step a run rolled forward again takes up, when its record shows the step began: finished
 * from what the host holds (see k3sOnResume), or only kept for a rollback when it had finished.
 */
function resumedK3sStep(
  deps: UpgradeDeps,
  site: RunSite,
  run: UpgradeRun,
  plan: UpgradePlan,
): K3sUpgradeOptions | undefined {
  const steps = run.steps.filter((step) => step.step === "k3s");
  const k3s = steps.length === 0 ? undefined : k3sStepOf(deps, site, plan);
  return k3s && { ...k3s, stepDone: steps.some((step) => step.outcome === "done") };
}

function abandon(deps: UpgradeDeps, run: UpgradeRun, decision: ResumeDecision): RunReport {
  const { state } = deps;
  return state.transaction((): RunReport => {
    if (run.toReleaseId !== undefined)
      state.releases.fail(run.toReleaseId, "interrupted before it changed anything");
    giveBackPlan(state, run, decision.why);
    const ended = state.runs.finish(run.id, { state: "interrupted", failure: decision.why });
    return { run: ended, outcome: "abandoned", status: `interrupted: ${decision.why}`, durationMs: 0 };
  });
}

/**
 * Takes up the run a dead process left running (the caller holds the writer lock, so its holder is
 * gone), as its record says (resumeDecision): dropped when it had changed nothing; rolled forward
 * from the partition it last applied, that pod's gates checked again, when every gate so far passed;
 * rolled back when it was rolling back, a gate had failed, or it was a rollback by hand. Every step
 * goes on the same run's record, counted as resumed. Undefined when no run is unfinished.
 */
export async function resumeInterruptedRun(deps: UpgradeDeps): Promise<ResumeReport | undefined> {
  const { state } = deps;
  const interrupted = state.runs.unfinished()[0];
  if (interrupted === undefined) return undefined;
  const decision = resumeDecision(interrupted);
  const run = state.runs.resumed(interrupted.id, { ...decision });
  deps.onProgress?.({ kind: "resume", run: run.id, decision });
  if (decision.action === "abandon") return { ...abandon(deps, run, decision), decision };
  const site = siteOf(deps);
  const from = state.releases.get(run.fromReleaseId!);
  const to = state.releases.get(run.toReleaseId!);
  if (decision.action === "forward") {
    const plan = readPlan(state, run.planId);
    const objects = {
      previous: from.objects as ClusterObject[],
      next: to.objects as ClusterObject[],
      declaredGates: plan.declaredGates,
      k3s: resumedK3sStep(deps, site, run, plan),
    };
    // Without a recorded partition nothing rolled yet: from the top, past the pre-gate.
    const resumeAt = decision.partition ?? Number.MAX_SAFE_INTEGER;
    return { ...(await carryOut(deps, site, run, objects, resumeAt)), decision };
  }
  // An upgrade goes back to the release it started from; a rollback by hand to the one it returned to.
  const target = run.kind === "rollback" ? to : from;
  const report = await returnTo(
    deps,
    site,
    run,
    { id: target.id, version: target.version, objects: target.objects as ClusterObject[] },
    rollbackReason(run),
    await k3sToRestore(state, site, run),
  );
  return { ...report, decision };
}
