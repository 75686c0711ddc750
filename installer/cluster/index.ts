/**
 * The cluster: one client interface (a real kube-apiserver through @kubernetes/client-node, or an
 * in-memory cluster that behaves like one), and the apply engine that puts a release's objects on it
 * and waits until they run.
 */
export { describeRef, refOf } from "./client.js";
export type {
  ApplyOptions,
  ClusterClient,
  ClusterObject,
  DeleteOptions,
  ListOptions,
  ObjectMetadata,
  ObjectRef,
} from "./client.js";
export { KubeClusterClient } from "./kube.js";
export { ClusterInvalidError } from "./errors.js";
export type { InvalidCause } from "./errors.js";
export { MemoryCluster } from "./memory.js";
export { STATEFULSET_MUTABLE } from "./memory-validation.js";
export type { MemoryClusterOptions } from "./memory.js";
export { serveClusterApi, clusterApiKubeconfig } from "./memory-apiserver.js";
export type {
  ClusterApiServerOptions,
  ObservedRequest,
  RunningClusterApiServer,
} from "./memory-apiserver.js";
export type {
  ClusterNode,
  ContainerState,
  ContainerStatus,
  NodeReport,
  PodCondition,
  PodContext,
  PodStatus,
} from "./node-api.js";
export { applyRelease, waitForRollout, rolledOut, FIELD_MANAGER, MANAGED_BY_LABEL } from "./apply.js";
export type { AppliedObject, ApplyReleaseOptions, ApplyReleaseResult } from "./apply.js";
