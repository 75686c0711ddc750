import { RELEASE_LABEL } from "../../manifests/index.js";
import { AirlockError, type Progress } from "../../registry/oci/index.js";
import { describeRef, refOf, type ClusterClient, type ClusterObject, type ObjectRef } from "./client.js";

export const FIELD_MANAGER = "airlock";
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
const MANAGED_BY = "airlock";

/**
 * The kinds the engine knows, in apply order: what others refer to goes first (a namespace before its
 * objects, secrets and config before the pods that mount them, services before the StatefulSet
 * naming one), disruption budgets last. Kinds not listed go after the listed ones, in the order
 * given. Pruning lists these by label, last first, all but Namespace: deleting one deletes
 * everything in it.
 */
const KINDS: [apiVersion: string, kind: string][] = [
  ["v1", "Namespace"],
  ["networking.k8s.io/v1", "NetworkPolicy"],
  ["v1", "ServiceAccount"],
  ["rbac.authorization.k8s.io/v1", "Role"],
  ["rbac.authorization.k8s.io/v1", "RoleBinding"],
  ["v1", "Secret"],
  ["v1", "ConfigMap"],
  ["v1", "Service"],
  ["apps/v1", "StatefulSet"],
  ["policy/v1", "PodDisruptionBudget"],
];

export interface ApplyReleaseOptions {
  /** The release name, the value of every object's `airlock.dev/release` label. */
  release: string;
  /** How long the workloads may take to roll out. Default 5 minutes. */
  timeoutMs?: number | undefined;
  /** Delete the release's objects that `objects` no longer has. Default true. */
  prune?: boolean | undefined;
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: Progress) => void) | undefined;
}

export interface AppliedObject {
  ref: ObjectRef;
  action: "created" | "configured" | "unchanged";
}

export interface ApplyReleaseResult {
  release: string;
  applied: AppliedObject[];
  pruned: ObjectRef[];
  durationMs: number;
}

/**
 * Applies a release's objects by server-side apply (field manager `airlock`, taking over fields
 * another manager changed), in dependency order, each labelled as the release's; waits until every
 * StatefulSet has rolled out; then deletes the release's objects the new set dropped. Re-running it
 * with the same objects changes nothing and reports every object unchanged.
 */
export async function applyRelease(
  client: ClusterClient,
  objects: ClusterObject[],
  options: ApplyReleaseOptions,
): Promise<ApplyReleaseResult> {
  const started = Date.now();
  const ordered = objects
    .map((object, index) => ({ object: labelled(object, options.release), index }))
    .sort((a, b) => rank(a.object) - rank(b.object) || a.index - b.index)
    .map(({ object }) => object);
  const applied: AppliedObject[] = [];
  for (const object of ordered) {
    options.signal?.throwIfAborted();
    const ref = refOf(object);
    const before = await client.get(ref);
    const after = await client.apply(object, { fieldManager: FIELD_MANAGER, force: true });
    applied.push({ ref, action: actionOf(before, after) });
    options.onProgress?.({
      phase: "apply",
      done: applied.length,
      total: ordered.length,
      unit: "items",
      item: describeRef(ref),
    });
  }
  const workloads = ordered.filter((object) => object.kind === "StatefulSet");
  for (const [index, workload] of workloads.entries()) {
    options.onProgress?.({
      phase: "rollout",
      done: index,
      total: workloads.length,
      unit: "items",
      item: describeRef(refOf(workload)),
    });
    await waitForRollout(client, refOf(workload), options);
  }
  const pruned = options.prune === false ? [] : await prune(client, ordered, options);
  return { release: options.release, applied, pruned, durationMs: Date.now() - started };
}

/**
 * What an apply did. A kind with a generation (a workload) changed if its generation or metadata did:
 * its controller writes status, and so a new resourceVersion, between any two requests. Other kinds
 * changed if their resourceVersion did.
 */
function actionOf(before: ClusterObject | undefined, after: ClusterObject): AppliedObject["action"] {
  if (before === undefined) return "created";
  const { generation, labels, annotations, resourceVersion } = before.metadata;
  if (generation !== undefined && after.metadata.generation !== undefined) {
    const same =
      generation === after.metadata.generation &&
      sameEntries(labels, after.metadata.labels) &&
      sameEntries(annotations, after.metadata.annotations);
    return same ? "unchanged" : "configured";
  }
  return resourceVersion === after.metadata.resourceVersion ? "unchanged" : "configured";
}

function sameEntries(a: Record<string, string> = {}, b: Record<string, string> = {}): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((key) => a[key] === b[key]);
}

function labelled(object: ClusterObject, release: string): ClusterObject {
  return {
    ...object,
    metadata: {
      ...object.metadata,
      labels: { ...object.metadata.labels, [MANAGED_BY_LABEL]: MANAGED_BY, [RELEASE_LABEL]: release },
    },
  };
}

function rank(object: ClusterObject): number {
  const at = KINDS.findIndex(([, kind]) => kind === object.kind);
  return at === -1 ? KINDS.length : at;
}

/** The release's objects in the applied namespaces that the applied set no longer has, deleted last-first. */
async function prune(
  client: ClusterClient,
  objects: ClusterObject[],
  options: ApplyReleaseOptions,
): Promise<ObjectRef[]> {
  const keep = new Set(objects.map((object) => describeRef(refOf(object))));
  const namespaces = [...new Set(objects.flatMap((object) => object.metadata.namespace ?? []))];
  const labelSelector = `${MANAGED_BY_LABEL}=${MANAGED_BY},${RELEASE_LABEL}=${options.release}`;
  const pruned: ObjectRef[] = [];
  for (const [apiVersion, kind] of KINDS.filter(([, kind]) => kind !== "Namespace").reverse()) {
    for (const namespace of namespaces) {
      options.signal?.throwIfAborted();
      for (const found of await client.list(apiVersion, kind, { namespace, labelSelector })) {
        const ref = refOf(found);
        if (keep.has(describeRef(ref))) continue;
        if (await client.delete(ref)) pruned.push(ref);
        options.onProgress?.({
          phase: "prune",
          done: pruned.length,
          total: pruned.length,
          unit: "items",
          item: describeRef(ref),
        });
      }
    }
  }
  return pruned;
}

interface StatefulSetState {
  spec?: { replicas?: number; selector?: { matchLabels?: Record<string, string> } };
  status?: {
    observedGeneration?: number;
    replicas?: number;
    readyReplicas?: number;
    updatedReplicas?: number;
    currentRevision?: string;
    updateRevision?: string;
  };
}

/** Rolled out as `kubectl rollout status` judges a StatefulSet: the controller saw this generation and every replica is updated and ready. */
export function rolledOut(object: ClusterObject): boolean {
  const { spec, status } = object as ClusterObject & StatefulSetState;
  const replicas = spec?.replicas ?? 1;
  return (
    status !== undefined &&
    (status.observedGeneration ?? 0) >= (object.metadata.generation ?? 0) &&
    (status.replicas ?? 0) === replicas &&
    (status.readyReplicas ?? 0) === replicas &&
    (status.updatedReplicas ?? 0) === replicas &&
    status.currentRevision === status.updateRevision
  );
}

/**
 * Waits, by watching it, until the StatefulSet has rolled out; fails with ROLLOUT_TIMEOUT after
 * `timeoutMs`, naming how far it got and why its pods are not ready.
 */
export async function waitForRollout(
  client: ClusterClient,
  ref: ObjectRef,
  options: { timeoutMs?: number | undefined; signal?: AbortSignal | undefined } = {},
): Promise<ClusterObject> {
  const timeoutMs = options.timeoutMs ?? 300_000;
  options.signal?.throwIfAborted();
  const watching = new AbortController();
  let last: ClusterObject | undefined;
  let timedOut = false;
  let onAbort: () => void = () => undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<ClusterObject>((resolve, reject) => {
      timer = setTimeout(() => {
        timedOut = true;
        reject(new Error("rollout timeout"));
      }, timeoutMs);
      onAbort = () => reject(options.signal!.reason as Error);
      options.signal?.addEventListener("abort", onAbort, { once: true });
      const onChange = (object: ClusterObject | undefined): void => {
        last = object;
        if (object === undefined) {
          reject(
            new AirlockError(
              "ROLLOUT_OBJECT_GONE",
              `${describeRef(ref)} was deleted while its rollout was awaited`,
              {
                where: describeRef(ref),
                hint: "something else deleted it: apply the release again",
              },
            ),
          );
        } else if (rolledOut(object)) resolve(object);
      };
      client.watch(ref, onChange, watching.signal).catch(reject);
    });
  } catch (error) {
    if (!timedOut) throw error;
    throw new AirlockError(
      "ROLLOUT_TIMEOUT",
      `${describeRef(ref)} did not roll out within ${Math.round(timeoutMs / 1000)} s: ${await stuckReason(client, ref, last)}`,
      {
        where: describeRef(ref),
        hint: `look at its pods (kubectl -n ${ref.namespace ?? "default"} describe pods): an image the site registry lacks, or a crash at start, keeps them from getting ready`,
      },
    );
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
    watching.abort();
  }
}

/** How far the rollout got, and what the pods that are not ready are waiting on. */
async function stuckReason(
  client: ClusterClient,
  ref: ObjectRef,
  last: ClusterObject | undefined,
): Promise<string> {
  const { spec, status } = (last ?? {}) as StatefulSetState;
  const replicas = spec?.replicas ?? 1;
  const progress = `${status?.readyReplicas ?? 0} of ${replicas} ready, ${status?.updatedReplicas ?? 0} updated`;
  const selector = Object.entries(spec?.selector?.matchLabels ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
  if (selector === "") return progress;
  const pods = await client
    .list("v1", "Pod", { namespace: ref.namespace, labelSelector: selector })
    .catch(() => []);
  const waiting = pods.flatMap((pod) => {
    const statuses = (pod.status?.containerStatuses ?? []) as {
      name: string;
      state?: { waiting?: { reason?: string; message?: string } };
    }[];
    // A running pod that is not ready says why in its Ready condition (a failing readiness probe).
    const unready = (
      (pod.status?.conditions ?? []) as { type: string; status: string; message?: string }[]
    ).find(
      (condition) =>
        condition.type === "Ready" && condition.status === "False" && condition.message !== undefined,
    );
    if (
      statuses.every((container) => container.state?.waiting?.reason === undefined) &&
      unready !== undefined
    ) {
      return [`${pod.metadata.name}: ${unready.message}`];
    }
    return statuses.flatMap((container) => {
      const reason = container.state?.waiting?.reason;
      return reason === undefined
        ? []
        : [
            `${pod.metadata.name}/${container.name}: ${reason}${container.state?.waiting?.message === undefined ? "" : ` (${container.state.waiting.message})`}`,
          ];
    });
  });
  return waiting.length === 0 ? progress : `${progress}; ${waiting.join("; ")}`;
}
