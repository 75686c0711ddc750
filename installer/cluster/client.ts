/**
 * The one interface cluster code goes through. The real implementation talks to a kube-apiserver
 * through @kubernetes/client-node (kube.ts); tests and the demo use MemoryCluster (memory.ts), which
 * behaves like the API server and the controllers the plane relies on.
 */

export interface ObjectMetadata {
  name: string;
  namespace?: string | undefined;
  labels?: Record<string, string> | undefined;
  annotations?: Record<string, string> | undefined;
  /** Set by the API server: bumped on every change outside metadata and status. */
  generation?: number | undefined;
  resourceVersion?: string | undefined;
  uid?: string | undefined;
  deletionTimestamp?: string | undefined;
}

/** Any Kubernetes object, typed to what cluster code reads; the rest passes through untouched. */
export interface ClusterObject {
  apiVersion: string;
  kind: string;
  metadata: ObjectMetadata;
  status?: Record<string, unknown> | undefined;
  [field: string]: unknown;
}

/** What names one object. `namespace` is absent for cluster-scoped kinds (Namespace). */
export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string | undefined;
}

export interface ApplyOptions {
  /** Server-side apply's field manager: the fields this manager set are the ones it owns. */
  fieldManager: string;
  /** Take over fields another manager owns instead of failing with a conflict. */
  force?: boolean | undefined;
  /** Validate and merge on the server without persisting (dryRun=All). */
  dryRun?: boolean | undefined;
}

export interface ListOptions {
  namespace?: string | undefined;
  /** `key=value,key2=value2`: equality selectors only. */
  labelSelector?: string | undefined;
}

export interface DeleteOptions {
  /**
   * What happens to the objects it controls (a StatefulSet's pods): deleted after it (Background,
   * the default), or left running without an owner (Orphan), for a controller made again to adopt.
   */
  propagationPolicy?: "Background" | "Orphan" | "Foreground" | undefined;
}

export interface ClusterClient {
  /** Server-side apply: creates or updates `object`, returning it as the server stored it. */
  apply(object: ClusterObject, options: ApplyOptions): Promise<ClusterObject>;
  /** The object, or undefined when there is none. */
  get(ref: ObjectRef): Promise<ClusterObject | undefined>;
  list(apiVersion: string, kind: string, options?: ListOptions): Promise<ClusterObject[]>;
  /** Deletes (background propagation unless told otherwise); false when there was nothing to delete. */
  delete(ref: ObjectRef, options?: DeleteOptions): Promise<boolean>;
  /**
   * Calls `onChange` with the object's current state, then on every change (undefined once it is
   * gone), until `signal` aborts; resolves then. Rejects if the watch cannot be kept up.
   */
  watch(
    ref: ObjectRef,
    onChange: (object: ClusterObject | undefined) => void,
    signal: AbortSignal,
  ): Promise<void>;
}

export function refOf(object: ClusterObject): ObjectRef {
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    name: object.metadata.name,
    namespace: object.metadata.namespace,
  };
}

/** `Kind namespace/name` (or `Kind name`), as errors and progress name an object. */
export function describeRef(ref: ObjectRef): string {
  return `${ref.kind} ${ref.namespace === undefined ? "" : `${ref.namespace}/`}${ref.name}`;
}
