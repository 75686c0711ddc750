import type { ClusterObject, ObjectRef } from "./client.js";

/** The in-memory API server's object helpers: keys, labels, owners, and the leaf form server-side apply works on. */

export const CLUSTER_SCOPED = new Set([
  "Namespace",
  "Node",
  "ClusterRole",
  "ClusterRoleBinding",
  "CustomResourceDefinition",
  "PersistentVolume",
  "PriorityClass",
  "StorageClass",
]);
/** Metadata the server sets; an applied configuration's values for them are ignored. */
const SERVER_METADATA = [
  "uid",
  "resourceVersion",
  "generation",
  "creationTimestamp",
  "deletionTimestamp",
  "managedFields",
];
export const REVISION_LABEL = "controller-revision-hash";

type Path = string[];
export interface Leaf {
  path: Path;
  /** The JSON of the value. */
  value: string;
}
export type Leaves = Map<string, Leaf>;

/** Parses an equality-only label selector (`a=b,c=d`) into pairs; `==` is accepted as `=`. */
export function parseLabelSelector(selector: string | undefined): [string, string][] {
  if (selector === undefined || selector.trim() === "") return [];
  return selector.split(",").map((term) => {
    const match = /^\s*([^=!\s]+)\s*==?\s*([^=\s]*)\s*$/.exec(term);
    if (match === null) throw new RangeError(`label selector term "${term}" is not key=value`);
    return [match[1]!, match[2]!];
  });
}

export function matchesLabels(object: ClusterObject, selector: [string, string][]): boolean {
  const labels = object.metadata.labels ?? {};
  return selector.every(([key, value]) => labels[key] === value);
}

export function keyOf(ref: ObjectRef): string {
  return `${ref.apiVersion}|${ref.kind}|${ref.namespace ?? ""}|${ref.name}`;
}

export function ownerOf(pod: ClusterObject): ObjectRef | undefined {
  const owner = (pod.metadata as { ownerReferences?: { apiVersion: string; kind: string; name: string }[] })
    .ownerReferences?.[0];
  return owner === undefined
    ? undefined
    : { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, namespace: pod.metadata.namespace };
}

export function finalizersOf(object: ClusterObject): string[] {
  return (object.metadata as { finalizers?: string[] }).finalizers ?? [];
}

export function ordinalOf(pod: ClusterObject): number {
  return Number(pod.metadata.name.slice(pod.metadata.name.lastIndexOf("-") + 1));
}

export function revisionOf(pod: ClusterObject): string | undefined {
  return pod.metadata.labels?.[REVISION_LABEL];
}

export function isReady(pod: ClusterObject | undefined): boolean {
  const conditions = (pod?.status?.conditions ?? []) as { type: string; status: string }[];
  return conditions.some((condition) => condition.type === "Ready" && condition.status === "True");
}

/** Everything but metadata and status, as the generation sees it. */
export function specOf(object: ClusterObject): string {
  const { metadata: _metadata, status: _status, ...rest } = object;
  return JSON.stringify(rest);
}

/** The object's fields as leaf paths (arrays are atomic, as for the plane's lists), minus server-set ones. */
export function leavesOf(object: ClusterObject): Leaves {
  const out: Leaves = new Map();
  const walk = (value: unknown, path: Path): void => {
    if (
      value !== null &&
      typeof value === "object" &&
      !Array.isArray(value) &&
      Object.keys(value).length > 0
    ) {
      for (const [key, child] of Object.entries(value)) walk(child, [...path, key]);
      return;
    }
    out.set(JSON.stringify(path), { path, value: JSON.stringify(value) });
  };
  const { status: _status, metadata, ...rest } = object;
  const kept = Object.fromEntries(Object.entries(metadata).filter(([key]) => !SERVER_METADATA.includes(key)));
  walk({ ...rest, metadata: kept }, []);
  return out;
}

export function objectOf(leaves: Leaves): ClusterObject {
  const root: Record<string, unknown> = {};
  for (const { path, value } of leaves.values()) {
    let at = root;
    for (const key of path.slice(0, -1)) at = (at[key] ??= {}) as Record<string, unknown>;
    at[path[path.length - 1]!] = JSON.parse(value) as unknown;
  }
  return root as unknown as ClusterObject;
}

/** One path is an ancestor of the other: setting one replaces the other. */
export function overlaps(a: Path, b: Path): boolean {
  if (a.length === b.length) return false;
  const [short, long] = a.length < b.length ? [a, b] : [b, a];
  return short.every((key, i) => long[i] === key);
}

/** What `owner` controls among `objects` (its pods, its revisions), by the ownerReference its controller set. */
export function dependentsOf(objects: ClusterObject[], owner: ClusterObject): ClusterObject[] {
  return objects.filter((object) => {
    const ref = ownerOf(object);
    return (
      ref?.kind === owner.kind &&
      ref.name === owner.metadata.name &&
      ref.namespace === owner.metadata.namespace
    );
  });
}

/** Pods and revisions in the StatefulSet's namespace that no controller owns and its selector matches. */
export function orphansOf(objects: ClusterObject[], statefulSet: ClusterObject): ClusterObject[] {
  const selector = (statefulSet.spec as { selector?: { matchLabels?: Record<string, string> } }).selector;
  const pairs = Object.entries(selector?.matchLabels ?? {});
  if (pairs.length === 0) return [];
  return objects.filter(
    (object) =>
      (object.kind === "Pod" || object.kind === "ControllerRevision") &&
      object.metadata.namespace === statefulSet.metadata.namespace &&
      object.metadata.deletionTimestamp === undefined &&
      ownerOf(object) === undefined &&
      matchesLabels(object, pairs),
  );
}
