import type { ClusterObject, ObjectRef } from "./client.js";

/**
 * The seam between MemoryCluster's controllers and a node that runs pods (a kubelet's part). Without
 * a node, MemoryCluster simulates pods with timers; with one, pods' status is what the node reports.
 */

export interface ContainerStateWaiting {
  reason: string;
  message?: string | undefined;
}

export interface ContainerStateTerminated {
  exitCode: number;
  reason: string;
  message?: string | undefined;
  startedAt?: string | undefined;
  finishedAt: string;
}

export interface ContainerState {
  waiting?: ContainerStateWaiting | undefined;
  running?: { startedAt: string } | undefined;
  terminated?: ContainerStateTerminated | undefined;
}

export interface ContainerStatus {
  name: string;
  image: string;
  imageID?: string | undefined;
  ready: boolean;
  started: boolean;
  restartCount: number;
  state: ContainerState;
  lastState: ContainerState;
}

export interface PodCondition {
  type: "Ready" | "ContainersReady" | "Initialized" | "PodScheduled";
  status: "True" | "False";
  reason?: string | undefined;
  message?: string | undefined;
}

export interface PodStatus {
  phase: "Pending" | "Running" | "Succeeded" | "Failed";
  conditions: PodCondition[];
  containerStatuses: ContainerStatus[];
  podIP?: string | undefined;
  hostIP?: string | undefined;
  startTime?: string | undefined;
}

export interface PodContext {
  /** The object (a ConfigMap or Secret the pod refers to) as the API server holds it now. */
  get(ref: ObjectRef): ClusterObject | undefined;
  /** The pod's status as the node sees it; MemoryCluster stores it, unless the pod is gone. */
  report(status: PodStatus): void;
}

/** What a kubelet reports of its node on the Node object. */
export interface NodeReport {
  addresses: { type: "InternalIP" | "Hostname"; address: string }[];
  nodeInfo: Record<string, string>;
}

export interface ClusterNode {
  /** Starts running the pod (pull, create, start, probe, restart); returns at once. */
  runPod(pod: ClusterObject, context: PodContext): void;
  /**
   * Stops the pod as a kubelet does on deletion (preStop hook, SIGTERM, `graceSeconds`, SIGKILL) and
   * removes what it created for it; resolves once it is gone. Never rejects.
   */
  stopPod(pod: ClusterObject, graceSeconds: number): Promise<void>;
  /**
   * The cluster's Service names and the pod IPs each resolves to (as CoreDNS would answer), the whole
   * set each time it changes: the node keeps its pods' name resolution to it.
   */
  setServiceNames?(names: ReadonlyMap<string, readonly string[]>): void;
  /** What its Node object reports (addresses, runtime); without it the node reports its name only. */
  nodeReport?(): NodeReport;
}
