import { describeRef, type ClusterObject, type ObjectRef } from "../cluster/index.js";
import { AirlockError } from "../../registry/oci/index.js";
import { classifyChange, referencedConfig, type Disruption } from "./disruption.js";
import { diffJson, isJsonMap, type FieldChange, type JsonMap } from "./json-diff.js";

export interface ObjectDiff {
  ref: ObjectRef;
  change: "added" | "removed" | "changed" | "unchanged";
  /** For a changed object: its changed fields. A Secret's values never appear (see diffReleases). */
  fields: FieldChange[];
  disruption: Disruption;
  /** What the operator should know beyond the disruption (a mounted config no pod restart picks up). */
  notes: string[];
}

/** Fields the API server sets, which say nothing about what the release asks for. */
const SERVER_METADATA = [
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "managedFields",
  "selfLink",
  "deletionTimestamp",
  "deletionGracePeriodSeconds",
];
const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";
const SECRET_VALUE_FIELDS = ["data", "stringData"];
const WORKLOAD_KINDS = new Set(["StatefulSet", "Deployment"]);
export const CHANGED = "<changed>";
export const UNCHANGED = "<unchanged>";

function checkedObject(value: unknown, side: string, index: number): ClusterObject {
  const metadata = isJsonMap(value) ? value.metadata : undefined;
  if (
    !isJsonMap(value) ||
    typeof value.kind !== "string" ||
    typeof value.apiVersion !== "string" ||
    !isJsonMap(metadata) ||
    typeof metadata.name !== "string"
  ) {
    throw new AirlockError("PLAN_OBJECT_INVALID", `${side} object ${index} is not a Kubernetes object`, {
      where: `${side} objects[${index}]`,
      hint: "each object needs apiVersion, kind and metadata.name: the recorded release may be damaged",
    });
  }
  return value as ClusterObject;
}

/** The object as the release asks for it: no status, no server-set metadata. */
function asRequested(object: ClusterObject): ClusterObject {
  const { status: _status, ...rest } = object;
  const metadata: JsonMap = { ...object.metadata };
  for (const field of SERVER_METADATA) delete metadata[field];
  if (isJsonMap(metadata.annotations)) {
    const { [LAST_APPLIED]: _applied, ...annotations } = metadata.annotations;
    if (Object.keys(annotations).length === 0) delete metadata.annotations;
    else metadata.annotations = annotations;
  }
  return { ...rest, metadata: metadata as unknown as ClusterObject["metadata"] };
}

function keyOf(object: ClusterObject): string {
  // The group, not its version: moving policy/v1beta1 → policy/v1 is the same object.
  const group = object.apiVersion.includes("/") ? object.apiVersion.split("/")[0] : "";
  return `${group}/${object.kind}/${object.metadata.namespace ?? ""}/${object.metadata.name}`;
}

function entry(
  object: ClusterObject,
  change: ObjectDiff["change"],
  fields: FieldChange[],
  disruption: Disruption,
): ObjectDiff {
  const { apiVersion, kind, metadata } = object;
  const ref: ObjectRef =
    metadata.namespace === undefined
      ? { apiVersion, kind, name: metadata.name }
      : { apiVersion, kind, name: metadata.name, namespace: metadata.namespace };
  return { ref, change, fields, disruption, notes: [] };
}

/** A Secret's value maps as `<changed>`/`<unchanged>` per key: which keys changed, never what they hold. */
function redactedMap(mine: unknown, theirs: unknown): JsonMap | undefined {
  if (!isJsonMap(mine)) return undefined;
  const other = isJsonMap(theirs) ? theirs : {};
  return Object.fromEntries(
    Object.keys(mine)
      .sort()
      .map((key) => [key, other[key] === mine[key] ? UNCHANGED : CHANGED]),
  );
}

/** Field changes of a Secret: its value maps compared whole, and shown redacted. */
function secretChanges(current: ClusterObject, incoming: ClusterObject): FieldChange[] {
  const strip = (object: ClusterObject): JsonMap => {
    const copy: JsonMap = { ...object };
    for (const field of SECRET_VALUE_FIELDS) delete copy[field];
    return copy;
  };
  const changes = diffJson(strip(current), strip(incoming));
  for (const field of SECRET_VALUE_FIELDS) {
    const before = redactedMap(current[field], incoming[field]);
    const after = redactedMap(incoming[field], current[field]);
    if (diffJson(current[field], incoming[field]).length === 0) continue;
    const change: FieldChange = {
      path: field,
      change: before === undefined ? "added" : after === undefined ? "removed" : "changed",
    };
    if (before !== undefined) change.current = before;
    if (after !== undefined) change.incoming = after;
    changes.push(change);
  }
  return changes.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function changesOf(current: ClusterObject, incoming: ClusterObject): FieldChange[] {
  return incoming.kind === "Secret" || current.kind === "Secret"
    ? secretChanges(current, incoming)
    : diffJson(current, incoming);
}

interface Workload {
  diff: ObjectDiff;
  object: ClusterObject;
}

/** Notes for a changed ConfigMap or Secret that workloads read: whether their pods pick it up. */
function configNotes(diff: ObjectDiff, workloads: Workload[]): string[] {
  if (diff.change !== "changed" || (diff.ref.kind !== "ConfigMap" && diff.ref.kind !== "Secret")) return [];
  return workloads.flatMap(({ diff: workload, object }) => {
    if (object.metadata.namespace !== diff.ref.namespace) return [];
    const { configMaps, secrets } = referencedConfig(object);
    if (!(diff.ref.kind === "ConfigMap" ? configMaps : secrets).has(diff.ref.name)) return [];
    const restarts =
      workload.disruption.kind === "rolling-restart" || workload.disruption.kind === "recreate";
    return restarts
      ? [`${describeRef(workload.ref)} reads it and restarts its pods in this upgrade, which then load it`]
      : [
          `${describeRef(workload.ref)} reads it, but its pod template does not change: no pod restarts, and a running process sees the new content only if it re-reads its files`,
        ];
  });
}

/**
 * The release's objects, installed against incoming, object by object: added, removed, changed
 * (with the changed fields, current vs incoming) or unchanged, and what each change disrupts.
 * Server-set metadata and status are ignored; a Secret's `data`/`stringData` show only which keys
 * are `<changed>` or `<unchanged>`, never a value. Incoming objects in their order, then the removed.
 */
export function diffReleases(
  currentObjects: readonly unknown[],
  incomingObjects: readonly unknown[],
): ObjectDiff[] {
  const current = currentObjects.map((object, index) => asRequested(checkedObject(object, "current", index)));
  const incoming = incomingObjects.map((object, index) =>
    asRequested(checkedObject(object, "incoming", index)),
  );
  const currentByKey = new Map(current.map((object) => [keyOf(object), object]));
  const incomingByKey = new Map(incoming.map((object) => [keyOf(object), object]));
  const diffs: ObjectDiff[] = incoming.map((object) => {
    const before = currentByKey.get(keyOf(object));
    if (before === undefined) return entry(object, "added", [], { kind: "create" });
    const fields = changesOf(before, object);
    if (fields.length === 0) return entry(object, "unchanged", fields, { kind: "none" });
    return entry(object, "changed", fields, classifyChange(before, object, fields));
  });
  for (const object of current) {
    if (!incomingByKey.has(keyOf(object))) diffs.push(entry(object, "removed", [], { kind: "delete" }));
  }
  const workloads = incoming.flatMap((object, index): Workload[] => {
    const diff = diffs[index];
    return diff !== undefined && WORKLOAD_KINDS.has(object.kind) ? [{ diff, object }] : [];
  });
  for (const diff of diffs) diff.notes.push(...configNotes(diff, workloads));
  return diffs;
}
