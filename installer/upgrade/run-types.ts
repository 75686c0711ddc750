import type { ClusterObject } from "../cluster/index.js";
import type { RunGate } from "../state/index.js";
import type { K3sUpgradeOptions } from "./k3s-step.js";

/** One gate's verdict, with when it started and ended: what the run's record keeps of it. */
export type GateOutcome = RunGate;

/**
 * Where a run reports its progress as it goes; the state's upgrade_runs repository implements it so
 * that every step, gate and partition move is on record before the next one starts.
 */
export interface RunRecorder {
  stepStarted(step: string, at: number): void | Promise<void>;
  stepFinished(step: string, at: number, outcome: "done" | "failed", detail?: string): void | Promise<void>;
  gate(outcome: GateOutcome): void | Promise<void>;
  partitionMoved(statefulSet: string, partition: number, at: number): void | Promise<void>;
  rolledBack(reason: string, at: number): void | Promise<void>;
}

/** Time as the run sees it: tests inject one so settle delays and polls do not wait for real. */
export interface Clock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/** A GET answered: the status and the body as text. Rejects when nothing answered. */
export type HttpProber = (url: string, signal: AbortSignal) => Promise<{ status: number; body: string }>;

/** A probe the bundle declares: GET `url` must answer `status` (200 unless given). */
export interface DeclaredHttpGate {
  name: string;
  url: string;
  status?: number | undefined;
  /** How long it may take to answer so; the gates' brokerTimeoutMs unless given. */
  timeoutMs?: number | undefined;
}

/**
 * A Job the bundle declares: each time the gate runs, a Job made from `job` (a batch/v1 Job; its
 * name gets a fresh suffix, its namespace defaults to the plane's) must succeed within `timeoutMs`
 * (the gates' brokerTimeoutMs unless given). A Job that succeeded or ran out of time is deleted;
 * a failed one is left for its logs.
 */
export interface DeclaredJobGate {
  name: string;
  job: ClusterObject;
  timeoutMs?: number | undefined;
}

export type DeclaredGate = DeclaredHttpGate | DeclaredJobGate;

export interface GateConfig {
  /** How long a pod may take to be Ready on its revision. Default 5 minutes. */
  podReadyTimeoutMs: number;
  /** `/healthz` must answer 200 this many polls in a row. Default 3. */
  healthyPolls: number;
  /** Between polls. Default 1 s. */
  pollIntervalMs: number;
  /** How long `/healthz` and `/routez` may take to pass once the pod is Ready. Default 60 s. */
  brokerTimeoutMs: number;
  /** After a pod's gates pass, before the next pod. Default 10 s. */
  settleMs: number;
  /** The new release's certificates must stay valid this many days. Default 30. */
  certificateMinDays: number;
}

export const DEFAULT_GATES: GateConfig = {
  podReadyTimeoutMs: 300_000,
  healthyPolls: 3,
  pollIntervalMs: 1_000,
  brokerTimeoutMs: 60_000,
  settleMs: 10_000,
  certificateMinDays: 30,
};

/** What the gates need besides the cluster. */
export interface GateContext {
  config: GateConfig;
  clock: Clock;
  probe: HttpProber;
  recorder: RunRecorder;
  declared: DeclaredGate[];
  signal?: AbortSignal | undefined;
}

export interface UpgradeOptions {
  /** The deployed release's recorded objects: what a rollback returns to. */
  previous: ClusterObject[];
  /** The new release's rendered objects. */
  next: ClusterObject[];
  recorder: RunRecorder;
  /** Whether the registry holds `ref` (a HEAD by digest). */
  imageAvailable: (ref: string) => Promise<boolean>;
  /** Disk headroom on the node: a problem, or undefined when there is room. */
  diskHeadroom?: (() => Promise<string | undefined>) | undefined;
  /** Replaces the certificate check on the release's Secrets: a problem, or undefined. */
  certificatesValid?: ((minDays: number) => Promise<string | undefined>) | undefined;
  gates?: Partial<GateConfig> | undefined;
  declaredGates?: DeclaredGate[] | undefined;
  probe?: HttpProber | undefined;
  clock?: Clock | undefined;
  signal?: AbortSignal | undefined;
  /**
   * Takes up a run whose process died at this StatefulSet partition: no pre-gate, the release applied
   * again with the partition here, and the pods from this ordinal down gated (again) and rolled.
   */
  resumeAt?: number | undefined;
  /**
   * The new bundle's k3s, when it carries one (bin/k3s) and this host runs the k3s server Airlock
   * installed: the run then upgrades k3s first (pre-gate `pre:k3s`, step `k3s`) and restores it on
   * a rollback. Absent, k3s is not touched.
   */
  k3s?: K3sUpgradeOptions | undefined;
}

/** Said in every result that touched the plane: a rollback returns objects, not data. */
export const DATA_NOT_ROLLED_BACK =
  "data written since the upgrade started (broker state on its volumes) is not rolled back";

/** k3s as a run left it: the versions it went from and to (`to` is the running one only if upgraded). */
export interface K3sOutcome {
  from: string;
  to: string;
}

export type UpgradeResult =
  | { outcome: "upgraded"; durationMs: number; k3s?: K3sOutcome | undefined }
  | { outcome: "refused"; reason: string; durationMs: number }
  | { outcome: "rolled-back"; reason: string; notice: string; durationMs: number };

/** A gate that did not pass: its name, the pod, and why. */
export class GateFailure extends Error {
  constructor(
    readonly gate: string,
    readonly pod: string | undefined,
    readonly reason: string,
  ) {
    super(`${gate} failed${pod === undefined ? "" : ` on ${pod}`}: ${reason}`);
    this.name = "GateFailure";
  }
}
