import { STATEFULSET_MUTABLE, type ClusterObject } from "../cluster/index.js";
import { isJsonMap, type FieldChange, type JsonMap } from "./json-diff.js";

/**
 * What applying an object's change does to what runs: nothing; new config only (no pod restarts by
 * itself); the workload's pods restarted one at a time; its replica count changed; or a change the
 * API server refuses in place, so the object must be deleted and created again. An object new to
 * the release is created, one it drops is deleted.
 */
export type Disruption =
  | { kind: "none" }
  | { kind: "config-only" }
  | { kind: "rolling-restart"; pods: number; scale?: { from: number; to: number } }
  | { kind: "scale"; from: number; to: number }
  | { kind: "recreate"; fields: string[]; reason: string }
  | { kind: "create" }
  | { kind: "delete" };

/** A disruption as the CLI and the console say it: `rolling restart of 2 pods`, `scale 2 → 3`. */
export function disruptionText(disruption: Disruption): string {
  switch (disruption.kind) {
    case "rolling-restart":
      return `rolling restart of ${disruption.pods} pods`;
    case "scale":
      return `scale ${disruption.from} → ${disruption.to}`;
    case "recreate":
      return `recreate (${disruption.fields.join(", ")})`;
    default:
      return disruption.kind;
  }
}

/** A StatefulSet's spec fields the API server lets an update change; the rest are fixed at creation. */
const STATEFULSET_MUTABLE_FIELDS = new Set(STATEFULSET_MUTABLE);
const CONFIG_KINDS = new Set(["ConfigMap", "Secret", "Service", "PodDisruptionBudget", "NetworkPolicy"]);
const WORKLOAD_KINDS = new Set(["StatefulSet", "Deployment"]);

function specOf(object: ClusterObject): JsonMap {
  return isJsonMap(object.spec) ? object.spec : {};
}

function topField(path: string): string {
  return /^[A-Za-z0-9_$]+/.exec(path)?.[0] ?? path;
}

function below(path: string, prefix: string): boolean {
  return path === prefix || path.startsWith(`${prefix}.`) || path.startsWith(`${prefix}[`);
}

/** The changed paths (of `changes`, on `current` → `incoming`) the API server refuses to update in place. */
export function immutableChanges(
  current: ClusterObject,
  incoming: ClusterObject,
  changes: FieldChange[],
): string[] {
  const paths = changes.map((change) => change.path);
  switch (incoming.kind) {
    case "StatefulSet":
      return paths.filter(
        (path) => below(path, "spec") && !STATEFULSET_MUTABLE_FIELDS.has(topField(path.slice(5))),
      );
    case "Deployment":
      return paths.filter((path) => below(path, "spec.selector"));
    case "Service": {
      const before = specOf(current).clusterIP;
      const after = specOf(incoming).clusterIP;
      return after !== undefined && before !== after ? ["spec.clusterIP"] : [];
    }
    case "PersistentVolumeClaim":
      return paths.filter((path) => below(path, "spec") && !below(path, "spec.resources"));
    case "ConfigMap":
    case "Secret":
      if (current.immutable !== true) return [];
      return paths.filter((path) =>
        ["data", "stringData", "binaryData", "immutable"].some((field) => below(path, field)),
      );
    default:
      return [];
  }
}

function replicasOf(object: ClusterObject): number {
  const replicas = specOf(object).replicas;
  return typeof replicas === "number" ? replicas : 1;
}

function partitionOf(object: ClusterObject): number {
  const strategy = specOf(object).updateStrategy;
  const rolling = isJsonMap(strategy) ? strategy.rollingUpdate : undefined;
  const partition = isJsonMap(rolling) ? rolling.partition : undefined;
  return typeof partition === "number" ? partition : 0;
}

function workloadDisruption(current: ClusterObject, incoming: ClusterObject, paths: string[]): Disruption {
  const from = replicasOf(current);
  const to = replicasOf(incoming);
  const scale = from === to ? undefined : { from, to };
  if (paths.some((path) => below(path, "spec.template"))) {
    // The pods that exist and that the rollout reaches: a partition holds back the ordinals below it.
    const held = incoming.kind === "StatefulSet" ? partitionOf(incoming) : 0;
    const pods = Math.max(0, Math.min(from, to) - held);
    return scale === undefined ? { kind: "rolling-restart", pods } : { kind: "rolling-restart", pods, scale };
  }
  return scale === undefined ? { kind: "none" } : { kind: "scale", ...scale };
}

/** How a changed object's fields (on `current` → `incoming`) disrupt what runs. */
export function classifyChange(
  current: ClusterObject,
  incoming: ClusterObject,
  changes: FieldChange[],
): Disruption {
  const refused = immutableChanges(current, incoming, changes);
  if (refused.length > 0) {
    return {
      kind: "recreate",
      fields: refused,
      reason: `the API server refuses to change ${refused.join(", ")} of a ${incoming.kind} in place`,
    };
  }
  // Labels and annotations on the object itself restart nothing; those in a pod template do, below.
  const paths = changes.map((change) => change.path).filter((path) => !below(path, "metadata"));
  if (paths.length === 0) return { kind: "none" };
  if (WORKLOAD_KINDS.has(incoming.kind)) return workloadDisruption(current, incoming, paths);
  if (CONFIG_KINDS.has(incoming.kind)) return { kind: "config-only" };
  // A kind the planner does not know: its change is taken to touch config, not pods.
  return incoming.kind === "Namespace" ? { kind: "none" } : { kind: "config-only" };
}

/** The names of the ConfigMaps and Secrets a workload's pod template mounts or reads env from. */
export function referencedConfig(workload: ClusterObject): { configMaps: Set<string>; secrets: Set<string> } {
  const configMaps = new Set<string>();
  const secrets = new Set<string>();
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      value.forEach(visit);
      return;
    }
    if (!isJsonMap(value)) return;
    for (const [key, child] of Object.entries(value)) {
      const name = isJsonMap(child) ? (child.name ?? child.secretName) : undefined;
      if (
        typeof name === "string" &&
        (key === "configMap" || key === "configMapRef" || key === "configMapKeyRef")
      ) {
        configMaps.add(name);
      }
      if (typeof name === "string" && (key === "secret" || key === "secretRef" || key === "secretKeyRef")) {
        secrets.add(name);
      }
      visit(child);
    }
  };
  visit(specOf(workload).template);
  return { configMaps, secrets };
}
