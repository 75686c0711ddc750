import { KubeClusterClient, type ClusterClient } from "../cluster/index.js";
import { siteAccess } from "../install/index.js";
import type { RunRecords, State, UpgradeRun } from "../state/index.js";
import type { ResumeDecision } from "../state/index.js";
import type { Clock, GateConfig, GateOutcome, HttpProber, RunRecorder } from "./run-types.js";

/** What a run reports as it goes, for a CLI to print one line each (the library never prints). */
export type RunProgress =
  | { kind: "step"; step: string; outcome: "started" | "done" | "failed"; ms?: number; detail?: string }
  | { kind: "gate"; gate: GateOutcome }
  | { kind: "partition"; statefulSet: string; partition: number }
  | { kind: "rolled-back"; reason: string }
  | { kind: "resume"; run: number; decision: ResumeDecision };

/**
 * What executing a run needs. The caller holds the site's writer lock. The cluster and the image
 * check default to the install's own: its recorded kubeconfig and a HEAD by digest against the site
 * registry it runs (with its CA and the pull account); tests inject a MemoryCluster and a prober.
 */
export interface UpgradeDeps {
  state: State;
  cluster?: ClusterClient | undefined;
  imageAvailable?: ((ref: string) => Promise<boolean>) | undefined;
  clock?: Clock | undefined;
  probe?: HttpProber | undefined;
  gates?: Partial<GateConfig> | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: RunProgress) => void) | undefined;
}

const REQUEST_TIMEOUT_MS = 30_000;

/** The cluster client and image check of `deps`, the install's where not injected. */
export function siteOf(deps: UpgradeDeps): {
  cluster: ClusterClient;
  imageAvailable: (ref: string) => Promise<boolean>;
} {
  if (deps.cluster !== undefined && deps.imageAvailable !== undefined) {
    return { cluster: deps.cluster, imageAvailable: deps.imageAvailable };
  }
  const access = siteAccess(deps.state);
  return {
    cluster:
      deps.cluster ??
      KubeClusterClient.fromKubeconfig(access.kubeconfig, { requestTimeoutMs: REQUEST_TIMEOUT_MS }),
    imageAvailable: deps.imageAvailable ?? ((ref) => access.imageAvailable(ref)),
  };
}

/** Writes every step, gate, partition move and rollback to the run's row as it happens, then reports it. */
export class StateRunRecorder implements RunRecorder {
  private readonly started = new Map<string, number>();

  constructor(
    private readonly runs: RunRecords,
    readonly run: UpgradeRun,
    private readonly onProgress?: ((progress: RunProgress) => void) | undefined,
  ) {}

  stepStarted(step: string, at: number): void {
    this.runs.stepStarted(this.run.id, step, at);
    this.started.set(step, at);
    this.onProgress?.({ kind: "step", step, outcome: "started" });
  }

  stepFinished(step: string, at: number, outcome: "done" | "failed", detail?: string): void {
    this.runs.stepFinished(this.run.id, step, at, outcome, detail);
    const ms = at - (this.started.get(step) ?? at);
    this.onProgress?.({ kind: "step", step, outcome, ms, ...(detail === undefined ? {} : { detail }) });
  }

  gate(outcome: GateOutcome): void {
    this.runs.gate(this.run.id, outcome);
    this.onProgress?.({ kind: "gate", gate: outcome });
  }

  partitionMoved(statefulSet: string, partition: number): void {
    this.runs.partitionMoved(this.run.id, statefulSet, partition);
    this.onProgress?.({ kind: "partition", statefulSet, partition });
  }

  rolledBack(reason: string): void {
    this.runs.rolledBack(this.run.id, reason);
    this.onProgress?.({ kind: "rolled-back", reason });
  }
}
