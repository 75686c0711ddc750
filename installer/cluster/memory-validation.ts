import { isDeepStrictEqual } from "node:util";
import { refOf, type ClusterObject, type ObjectRef } from "./client.js";
import { clusterError, invalidError, type InvalidCause } from "./errors.js";
import { CLUSTER_SCOPED } from "./memory-objects.js";

/**
 * What the in-memory API server refuses before it stores an applied object: `admit` for where it
 * goes, `refuseImmutableChanges` for an update.
 *
 * The update validation kube-apiserver 1.32 runs before it stores a change: the fields it refuses to
 * change in place, with the messages it gives (pkg/apis/core/validation and pkg/apis/apps/validation).
 * Values are printed as Go's %#v prints them, as 1.32 does (JSON came in 1.34).
 */

/**
 * A StatefulSet's spec fields an update may change (1.32's list, in its words and order): what
 * MemoryCluster refuses beyond them, and what the upgrade planner calls a recreate.
 */
export const STATEFULSET_MUTABLE: readonly string[] = [
  "replicas",
  "ordinals",
  "template",
  "updateStrategy",
  "persistentVolumeClaimRetentionPolicy",
  "minReadySeconds",
];
export const STATEFULSET_FORBIDDEN = `updates to statefulset spec for fields other than ${STATEFULSET_MUTABLE.slice(
  0,
  -1,
)
  .map((field) => `'${field}'`)
  .join(", ")} and '${STATEFULSET_MUTABLE.at(-1)!}' are forbidden`;
const SET_IMMUTABLE = "field is immutable when `immutable` is set";
const PVC_FORBIDDEN = "spec is immutable after creation except resources.requests for bound claims";

type Json = Record<string, unknown>;

function specOf(object: ClusterObject): Json {
  const spec = object.spec;
  return spec !== null && typeof spec === "object" ? (spec as Json) : {};
}

function without(map: Json, keys: readonly string[]): Json {
  return Object.fromEntries(Object.entries(map).filter(([key]) => !keys.includes(key)));
}

const forbidden = (field: string, detail: string): InvalidCause => ({
  reason: "FieldValueForbidden",
  field,
  message: `Forbidden: ${detail}`,
});
const immutable = (field: string, value: string, detail = "field is immutable"): InvalidCause => ({
  reason: "FieldValueInvalid",
  field,
  message: `Invalid value: ${value}: ${detail}`,
});

/** Go's %#v of a string map: keys sorted, `map[string]string{"a":"b", "c":"d"}`. */
function goStringMap(map: unknown): string {
  const entries = Object.entries((map ?? {}) as Record<string, string>).sort(([a], [b]) => (a < b ? -1 : 1));
  return `map[string]string{${entries.map(([key, value]) => `${JSON.stringify(key)}:${JSON.stringify(value)}`).join(", ")}}`;
}

/** Go's %#v of a metav1.LabelSelector. */
function goLabelSelector(selector: unknown): string {
  const { matchLabels, matchExpressions } = (selector ?? {}) as {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: string; values?: string[] }[];
  };
  const labels = matchLabels === undefined ? "map[string]string(nil)" : goStringMap(matchLabels);
  const expressions =
    matchExpressions === undefined
      ? "[]v1.LabelSelectorRequirement(nil)"
      : `[]v1.LabelSelectorRequirement{${matchExpressions
          .map(
            (e) =>
              `v1.LabelSelectorRequirement{Key:${JSON.stringify(e.key)}, Operator:${JSON.stringify(e.operator)}, Values:${e.values === undefined ? "[]string(nil)" : `[]string{${e.values.map((v) => JSON.stringify(v)).join(", ")}}`}}`,
          )
          .join(", ")}}`;
  return `v1.LabelSelector{MatchLabels:${labels}, MatchExpressions:${expressions}}`;
}

function statefulSetCauses(current: ClusterObject, next: ClusterObject): InvalidCause[] {
  const same = isDeepStrictEqual(
    without(specOf(current), STATEFULSET_MUTABLE),
    without(specOf(next), STATEFULSET_MUTABLE),
  );
  return same ? [] : [forbidden("spec", STATEFULSET_FORBIDDEN)];
}

function deploymentCauses(current: ClusterObject, next: ClusterObject): InvalidCause[] {
  const selector = specOf(next).selector;
  return isDeepStrictEqual(specOf(current).selector, selector)
    ? []
    : [immutable("spec.selector", goLabelSelector(selector))];
}

/**
 * A Service keeps the cluster IP it was given: one the server allocated (none is written here, as
 * there is no allocator), or the `None` of a headless one. An apply that leaves the field out keeps
 * it, as the server's patchAllocatedValues does; ExternalName Services have none.
 */
function serviceCauses(current: ClusterObject, next: ClusterObject): InvalidCause[] {
  const [before, after] = [specOf(current), specOf(next)];
  if (before.type === "ExternalName" || after.type === "ExternalName") return [];
  if (after.clusterIP === undefined || after.clusterIP === "") return [];
  const [was, is] = [before.clusterIP ?? "<allocated>", after.clusterIP];
  if (was === "None" && is === "None") return [];
  return was === is
    ? []
    : [immutable("spec.clusterIPs[0]", `[]string{${JSON.stringify(is)}}`, "may not change once set")];
}

/** A bound claim's spec, but for its storage request (and a volume name set once, by the binder). */
function claimCauses(current: ClusterObject, next: ClusterObject): InvalidCause[] {
  const comparable = (object: ClusterObject, volumeName: unknown): Json => {
    const spec = structuredClone(specOf(object));
    const requests = (spec.resources as { requests?: Json } | undefined)?.requests;
    if (requests !== undefined) delete requests.storage;
    if (volumeName !== undefined) spec.volumeName = volumeName;
    return spec;
  };
  const boundTo = specOf(current).volumeName;
  const [before, after] = [
    comparable(current, undefined),
    comparable(next, boundTo ?? specOf(next).volumeName),
  ];
  if (isDeepStrictEqual(before, after)) return [];
  const lines = [...new Set([...Object.keys(before), ...Object.keys(after)])]
    .sort()
    .flatMap((key) =>
      isDeepStrictEqual(before[key], after[key])
        ? []
        : [
            `-\t${key}: ${JSON.stringify(before[key] ?? null)},`,
            `+\t${key}: ${JSON.stringify(after[key] ?? null)},`,
          ],
    );
  return [
    forbidden("spec", `${PVC_FORBIDDEN}\n  core.PersistentVolumeClaimSpec{\n${lines.join("\n")}\n  }\n`),
  ];
}

/** A Secret's or ConfigMap's content once it is marked immutable; a Secret's type always. */
function contentCauses(current: ClusterObject, next: ClusterObject): InvalidCause[] {
  const causes: InvalidCause[] = [];
  if (current.immutable === true) {
    if (next.immutable !== true) causes.push(forbidden("immutable", SET_IMMUTABLE));
    // A Secret's stringData is folded into data before validation: both are its data.
    const data = (object: ClusterObject): unknown =>
      current.kind === "Secret" ? { ...(object.data ?? {}), ...(object.stringData ?? {}) } : object.data;
    if (!isDeepStrictEqual(data(current), data(next))) causes.push(forbidden("data", SET_IMMUTABLE));
    if (current.kind === "ConfigMap" && !isDeepStrictEqual(current.binaryData, next.binaryData)) {
      causes.push(forbidden("binaryData", SET_IMMUTABLE));
    }
  }
  if (current.kind === "Secret" && (current.type ?? "Opaque") !== (next.type ?? "Opaque")) {
    causes.push(immutable("type", JSON.stringify(next.type ?? "Opaque")));
  }
  return causes;
}

const BY_KIND: Partial<Record<string, (current: ClusterObject, next: ClusterObject) => InvalidCause[]>> = {
  StatefulSet: statefulSetCauses,
  Deployment: deploymentCauses,
  Service: serviceCauses,
  PersistentVolumeClaim: claimCauses,
  Secret: contentCauses,
  ConfigMap: contentCauses,
};

/** Throws the API server's 422 Invalid when `next` changes what `current` fixed at creation. */
export function refuseImmutableChanges(current: ClusterObject, next: ClusterObject): void {
  const causes = BY_KIND[next.kind]?.(current, next) ?? [];
  if (causes.length > 0) throw invalidError(refOf(next), causes);
}

/** No namespace (or one on a cluster-scoped kind), a missing namespace, or one terminating for a new object. */
export function admit(
  config: ClusterObject,
  ref: ObjectRef,
  lookup: (ref: ObjectRef) => ClusterObject | undefined,
): void {
  const namespaced = !CLUSTER_SCOPED.has(config.kind);
  if (namespaced !== (config.metadata.namespace !== undefined)) {
    throw clusterError(
      400,
      ref,
      namespaced ? "the object has no namespace" : `${config.kind} is cluster-scoped: no namespace`,
    );
  }
  if (!namespaced) return;
  const namespace = lookup({ apiVersion: "v1", kind: "Namespace", name: config.metadata.namespace! });
  if (namespace === undefined) {
    throw clusterError(404, ref, `namespaces "${config.metadata.namespace}" not found`);
  }
  if (lookup(ref) === undefined && namespace.metadata.deletionTimestamp !== undefined) {
    throw clusterError(
      403,
      ref,
      `unable to create new content in namespace ${config.metadata.namespace} because it is being terminated`,
    );
  }
}
