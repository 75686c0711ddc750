export type RunState = "running" | "done" | "rolled-back" | "failed" | "interrupted";

/** An upgrade to a planned release, or a rollback to the previous one asked for by hand. */
export type RunKind = "upgrade" | "rollback";

/** One gate's verdict as recorded (the rollout's GateOutcome): times in ms since the epoch. */
export interface RunGate {
  /** `pre:plane`, `ready`, `healthz`, `routez`, `settle`, `http:<name>`, `job:<name>`, `final:…` */
  gate: string;
  /** The pod it judged; absent for gates on the whole plane. */
  pod?: string | undefined;
  passed: boolean;
  detail: string;
  startedAt: number;
  finishedAt: number;
}

/** One step of a run (`pre-gate`, `config`, `statefulset`, `roll msgbroker-1`, `finish`, `rollback`…). */
export interface RunStep {
  step: string;
  startedAt: number;
  finishedAt?: number | undefined;
  outcome?: "done" | "failed" | undefined;
  detail?: string | undefined;
}

export interface UpgradeRun {
  id: number;
  planId: number;
  kind: RunKind;
  /** The release deployed when the run started, and the one it deploys (for a rollback: returns to). */
  fromReleaseId: number | undefined;
  toReleaseId: number | undefined;
  startedAt: string;
  endedAt: string | undefined;
  state: RunState;
  currentStep: string | undefined;
  steps: RunStep[];
  gates: RunGate[];
  /** The StatefulSet partition last applied: where a resumed run picks up. */
  partition: number | undefined;
  /** How many times the run was taken up again after its process died. */
  resumed: number;
  rollbackReason: string | undefined;
  /** Why a run failed without rolling back (refused by a pre-gate, a rollback that did not finish). */
  failure: string | undefined;
  /** The window opening the run started in; absent for `--now` and `--at`. */
  window: { start: string; end: string } | undefined;
}

export interface RunRow {
  id: number;
  plan_id: number;
  kind: RunKind;
  from_release_id: number | null;
  to_release_id: number | null;
  started_at: string;
  ended_at: string | null;
  state: RunState;
  current_step: string | null;
  steps: string;
  gates: string;
  partition: number | null;
  resumed: number;
  rollback_reason: string | null;
  failure: string | null;
  window_start: string | null;
  window_end: string | null;
}

export function toRun(row: RunRow): UpgradeRun {
  return {
    id: row.id,
    planId: row.plan_id,
    kind: row.kind,
    fromReleaseId: row.from_release_id ?? undefined,
    toReleaseId: row.to_release_id ?? undefined,
    startedAt: row.started_at,
    endedAt: row.ended_at ?? undefined,
    state: row.state,
    currentStep: row.current_step ?? undefined,
    steps: JSON.parse(row.steps) as RunStep[],
    gates: JSON.parse(row.gates) as RunGate[],
    partition: row.partition ?? undefined,
    resumed: row.resumed,
    rollbackReason: row.rollback_reason ?? undefined,
    failure: row.failure ?? undefined,
    window:
      row.window_start === null || row.window_end === null
        ? undefined
        : { start: row.window_start, end: row.window_end },
  };
}

/**
 * What becomes of a run whose process died, read from its record alone:
 * - `abandon`: it changed nothing in the cluster (no step past the pre-gate began): it is recorded
 *   interrupted, its release never deployed, and its plan may run again;
 * - `rollback`: a rollback was under way, a gate had failed (the run had decided to go back), or it
 *   was a rollback by hand: the previous release is re-applied until every pod is back on it;
 * - `forward`: every gate recorded so far passed: the run goes on from the partition it last applied,
 *   the gates of the pod at that partition checked again (an interrupted gate has no verdict), and a
 *   gate that fails then rolls back as in any run.
 */
export type ResumeDecision =
  | { action: "abandon"; why: string }
  | { action: "rollback"; why: string }
  | { action: "forward"; partition: number | undefined; why: string };

export function resumeDecision(run: UpgradeRun): ResumeDecision {
  const began = run.steps.map((step) => step.step);
  if (run.kind === "rollback")
    return { action: "rollback", why: "it was a rollback: it is carried out again" };
  if (began.includes("rollback")) {
    return { action: "rollback", why: "it was rolling back: the rollback is carried out again" };
  }
  const failed = run.gates.find((gate) => !gate.passed);
  if (failed !== undefined) {
    const on = failed.pod === undefined ? "" : ` on ${failed.pod}`;
    return { action: "rollback", why: `${failed.gate} had failed${on}: it rolls back` };
  }
  if (began.every((step) => step === "pre-gate")) {
    return {
      action: "abandon",
      why: "it had changed nothing in the cluster: it is dropped, the plan may run again",
    };
  }
  const at = run.partition === undefined ? "" : ` from partition ${run.partition}`;
  return {
    action: "forward",
    partition: run.partition,
    why: `every gate so far passed: it goes on${at}, checking that pod's gates again`,
  };
}
