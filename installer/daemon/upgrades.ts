import type { Logger } from "../../registry/oci/index.js";
import type { State, UpgradeRun } from "../state/index.js";
import {
  nextDueAt,
  resumeInterruptedRun,
  rollbackLastRelease,
  startDueUpgrade,
  type GateConfig,
  type RunProgress,
  type UpgradeDeps,
} from "../upgrade/index.js";
import type { UpgradeActions } from "./scheduler.js";

/** What the daemon's upgrades are made of. */
export interface UpgradeContext {
  state: State;
  logger: Logger;
  /** The store's blob files: where a k3s step takes the new bundle's bin/k3s from. */
  blobPath: NonNullable<UpgradeDeps["blobPath"]>;
  /** The gate timings of its runs (`airlock serve --pod-timeout/--settle`); the library's defaults otherwise. */
  gates?: Partial<GateConfig> | undefined;
}

/** The scheduler's actions, and the console's rollback as the scheduler starts it (see runAside). */
export interface DaemonUpgrades {
  actions: UpgradeActions;
  startRollback(signal: AbortSignal): { value: number | undefined; done: Promise<string | undefined> };
}

function progressLine(progress: RunProgress): string {
  switch (progress.kind) {
    case "step":
      return `upgrade: ${progress.step} ${progress.outcome}${progress.detail === undefined ? "" : `: ${progress.detail}`}`;
    case "gate":
      return `upgrade: gate ${progress.gate.gate}${progress.gate.pod === undefined ? "" : ` on ${progress.gate.pod}`} ${progress.gate.passed ? "passed" : "failed"}`;
    case "partition":
      return `upgrade: ${progress.statefulSet} partition ${progress.partition}`;
    case "rolled-back":
      return `upgrade: rolled back: ${progress.reason}`;
    case "resume":
      return `upgrade: run ${progress.run} taken up again: ${progress.decision.action}`;
  }
}

function runLine(run: UpgradeRun): string {
  const why = run.failure ?? run.rollbackReason;
  return `run ${run.id} of plan ${run.planId}: ${run.state}${why === undefined ? "" : ` (${why})`}`;
}

/**
 * The upgrade library's runs for the daemon: resume an interrupted run, start the due one, roll
 * back by hand; each step, gate and partition move logged as it happens, the run's record in the
 * state as the CLI's `upgrade run` keeps it.
 */
export function libraryUpgrades({ state, logger, blobPath, gates }: UpgradeContext): DaemonUpgrades {
  const deps = (signal: AbortSignal): UpgradeDeps => ({
    state,
    gates,
    signal,
    blobPath,
    onProgress: (progress) => logger.info({ progress: progress.kind }, progressLine(progress)),
  });
  return {
    actions: {
      async resumeInterrupted(signal) {
        const report = await resumeInterruptedRun(deps(signal));
        return report === undefined ? undefined : `resumed run ${report.run.id}: ${report.status}`;
      },
      nextDueAt: (now) => nextDueAt(state, now),
      async startDue(now, signal) {
        // A run left unfinished (a failed action) is due at once: finish or undo it first.
        const resumed = await resumeInterruptedRun(deps(signal));
        if (resumed !== undefined) return `resumed run ${resumed.run.id}: ${resumed.status}`;
        const started = await startDueUpgrade(deps(signal), now);
        if (started === undefined) return undefined;
        if (started.run !== undefined) return runLine(started.run);
        return `plan ${started.planId}: its schedule is used up, refused: ${started.refusal ?? ""}`;
      },
    },
    startRollback(signal) {
      const done = rollbackLastRelease(deps(signal)).then((report) => runLine(report.run));
      // The run's row is written before the rollback's first wait: it is there once the call returns.
      const recorded = state.runs.unfinished().find((run) => run.kind === "rollback");
      return { value: recorded?.id, done };
    },
  };
}
