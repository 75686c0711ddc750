import { AirlockError } from "../../registry/oci/index.js";
import { KubeClusterClient, type ClusterClient } from "../cluster/index.js";
import { HostRoot, Systemd, type CommandRunner } from "../host/index.js";
import { siteAccess } from "../install/index.js";
import { k3sStepFor, type K3sUpgradeOptions } from "./k3s-step.js";
import type { K3sBinaryChange } from "./plan-k3s.js";
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
  /**
   * The store's blob files (store.blobs.path): a plan whose bundle carries another bin/k3s swaps in
   * the store's blob of it. Needed on a site running the k3s install set up.
   */
  blobPath?: ((digest: `sha256:${string}`) => string) | undefined;
  /** The host of the k3s server install set up: the one its cluster step recorded unless injected. */
  k3sHost?: K3sHost | undefined;
}

/** Where a k3s step acts: the host root install put k3s under, systemctl, and `k3s --version`'s runner. */
export interface K3sHost {
  host: HostRoot;
  systemd: Systemd;
  run?: CommandRunner | undefined;
}

/** The cluster a run acts on, and this host's k3s when install set it up (undefined for --kubeconfig). */
export interface RunSite {
  cluster: ClusterClient;
  imageAvailable: (ref: string) => Promise<boolean>;
  k3sHost: K3sHost | undefined;
}

const REQUEST_TIMEOUT_MS = 30_000;

/** The cluster client, image check and k3s host of `deps`, the install's where not injected. */
export function siteOf(deps: UpgradeDeps): RunSite {
  if (deps.cluster !== undefined && deps.imageAvailable !== undefined) {
    return { cluster: deps.cluster, imageAvailable: deps.imageAvailable, k3sHost: deps.k3sHost };
  }
  const access = siteAccess(deps.state);
  const host = access.k3sHostRoot === undefined ? undefined : new HostRoot(access.k3sHostRoot);
  return {
    k3sHost: deps.k3sHost ?? (host === undefined ? undefined : { host, systemd: new Systemd(host) }),
    cluster:
      deps.cluster ??
      KubeClusterClient.fromKubeconfig(access.kubeconfig, { requestTimeoutMs: REQUEST_TIMEOUT_MS }),
    imageAvailable: deps.imageAvailable ?? ((ref) => access.imageAvailable(ref)),
  };
}

/**
 * The k3s step of `plan` on `site`: undefined when the plan leaves k3s as it is or the plane runs on
 * a cluster Airlock did not install (--kubeconfig: its Kubernetes is never touched).
 */
export function k3sStepOf(
  deps: UpgradeDeps,
  site: RunSite,
  plan: { k3s?: K3sBinaryChange | undefined },
): K3sUpgradeOptions | undefined {
  if (plan.k3s === undefined || site.k3sHost === undefined) return undefined;
  if (deps.blobPath === undefined) {
    throw new AirlockError("INTERNAL", "the run was given no store to take the bundle's bin/k3s from", {
      where: "UpgradeDeps.blobPath",
      hint: "a bug: report it with the command that ran",
    });
  }
  return k3sStepFor(plan, deps.blobPath, site.k3sHost);
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
