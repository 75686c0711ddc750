/**
 * Upgrades: maintenance windows and freezes (when a run may start), the version path a bundle
 * allows, the plan's diff between the installed release and the next one, and carrying runs out:
 * executePlan (recorded step by step), rollbackLastRelease, resumeInterruptedRun after a crash, and
 * the scheduler's startDueUpgrade and nextDueAt.
 */
export { parseWindow } from "./window-spec.js";
export type { MaintenanceWindow } from "./window-spec.js";
export { parseFreeze, parseAt } from "./instant-spec.js";
export type { Freeze } from "./instant-spec.js";
export { nextOccurrences, canStartAt } from "./windows.js";
export type { FitOptions, StartDecision, WindowOccurrence } from "./windows.js";
export { checkUpgradePath } from "./path.js";
export type { BundleVersion, UpgradePath, UpgradePathOptions } from "./path.js";
export { diffReleases, CHANGED, UNCHANGED } from "./diff.js";
export type { ObjectDiff } from "./diff.js";
export { disruptionText } from "./disruption.js";
export type { Disruption } from "./disruption.js";
export { planDigest, canonicalJson } from "./json-diff.js";
export type { FieldChange } from "./json-diff.js";
export { diffValues } from "./values-diff.js";
export type { ValueChange, ValuesDiff } from "./values-diff.js";
export { planUpgrade, readPlan, loadPlanForRun, planInputsDigest } from "./plan.js";
export type { PlanForRun, PlanUpgradeOptions, UpgradePlan } from "./plan.js";
export type { K3sBinaryChange } from "./plan-k3s.js";
export { runUpgrade } from "./run.js";
export { rollbackRelease } from "./rollback.js";
export type { RollbackOptions, RollbackResult } from "./rollback.js";
export { SYSTEM_CLOCK, httpGet } from "./run-context.js";
export { declaredGatesOf } from "./gates-declared.js";
export { DEFAULT_GATES, DATA_NOT_ROLLED_BACK, GateFailure } from "./run-types.js";
export type {
  Clock,
  DeclaredGate,
  DeclaredHttpGate,
  DeclaredJobGate,
  GateConfig,
  GateOutcome,
  HttpProber,
  RunRecorder,
  K3sOutcome,
  UpgradeOptions,
  UpgradeResult,
} from "./run-types.js";
export { k3sStepFor } from "./k3s-step.js";
export type { K3sChange, K3sRestoreOptions, K3sUpgradeOptions } from "./k3s-step.js";
export {
  scheduleUpgrade,
  cancelUpgrade,
  upcomingWindows,
  estimatedRunMs,
  START_MARGIN_MS,
} from "./plan-schedule.js";
export type { ScheduleRequest, ScheduledUpgrade, ScheduleView } from "./plan-schedule.js";
export { executePlan, refuseUnfinished } from "./execute.js";
export type { ExecuteOptions } from "./execute.js";
export { rollbackLastRelease, releasesToSwap, MANUAL_ROLLBACK_REASON } from "./rollback-last.js";
export { resumeInterruptedRun } from "./resume.js";
export type { ResumeReport } from "./resume.js";
export { startDueUpgrade, nextDueAt } from "./due.js";
export type { DueStart } from "./due.js";
export { StateRunRecorder } from "./run-deps.js";
export type { RunProgress, UpgradeDeps } from "./run-deps.js";
export type { RunReport } from "./run-settle.js";
export { formatWallClock } from "./zoned-time.js";
