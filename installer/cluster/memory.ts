import { createHash, randomUUID } from "node:crypto";
import {
  describeRef,
  refOf,
  type ApplyOptions,
  type ClusterClient,
  type ClusterObject,
  type ListOptions,
  type ObjectRef,
} from "./client.js";
import { clusterError } from "./errors.js";

const CLUSTER_SCOPED = new Set([
  "Namespace",
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
const REVISION_LABEL = "controller-revision-hash";

export interface MemoryClusterOptions {
  /** How long a started pod takes to become ready. */
  podReadyMs?: number;
}

type Path = string[];
interface Leaf {
  path: Path;
  /** The JSON of the value. */
  value: string;
}
type Leaves = Map<string, Leaf>;

interface Entry {
  object: ClusterObject;
  /** Server-side apply's field ownership: manager → the leaf paths (JSON of the path) it set. */
  owners: Map<string, Set<string>>;
}

interface InjectedFailure {
  verb: "apply" | "get" | "list" | "delete";
  kind: string;
  status: number;
  message: string;
}

/**
 * A cluster in memory that behaves like a kube-apiserver and the controllers the plane relies on:
 * server-side apply with field managers and conflicts, generations bumped on spec changes,
 * resourceVersions, finalizers, namespaces that must exist and finish terminating, watches; a StatefulSet
 * controller that creates pods (ready after `podReadyMs`), rolls them one at a time from the highest
 * ordinal when the template changes, and reports observedGeneration, ready/updated replicas and
 * current/update revisions. Failures are injected: an image whose pods never pull, an API error.
 */
export class MemoryCluster implements ClusterClient {
  private readonly objects = new Map<string, Entry>();
  private readonly watchers = new Map<string, Set<(object: ClusterObject | undefined) => void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly failingImages = new Map<string, string>();
  private readonly failures: InjectedFailure[] = [];
  private resourceVersion = 0;
  private readonly podReadyMs: number;
  /** Every request, as `verb Kind namespace/name`: tests read what the engine asked for. */
  readonly requests: string[] = [];

  constructor(options: MemoryClusterOptions = {}) {
    this.podReadyMs = options.podReadyMs ?? 0;
  }

  /** Pods with a container image containing `imagePart` stay waiting with `reason` and never get ready. */
  failImage(imagePart: string, reason = "ImagePullBackOff"): void {
    this.failingImages.set(imagePart, reason);
  }

  /** The image heals: its pods are started again, as kubelet's back-off retry would. */
  healImage(imagePart: string): void {
    this.failingImages.delete(imagePart);
    for (const entry of this.objects.values()) {
      if (entry.object.kind === "Pod" && this.failureOf(entry.object) === undefined)
        this.startPod(entry.object);
    }
  }

  /** The next `verb` on `kind` fails with the API server's `status`. */
  failNext(verb: InjectedFailure["verb"], kind: string, status: number, message = "injected failure"): void {
    this.failures.push({ verb, kind, status, message });
  }

  /** Stops the controllers' timers; the cluster keeps its objects. */
  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }

  apply(object: ClusterObject, options: ApplyOptions): Promise<ClusterObject> {
    return this.request("apply", object.kind, refOf(object), () => this.applySync(object, options));
  }

  get(ref: ObjectRef): Promise<ClusterObject | undefined> {
    return this.request("get", ref.kind, ref, () => {
      const entry = this.objects.get(keyOf(ref));
      return entry === undefined ? undefined : structuredClone(entry.object);
    });
  }

  list(apiVersion: string, kind: string, options: ListOptions = {}): Promise<ClusterObject[]> {
    const where = `${kind}${options.namespace === undefined ? "" : ` in ${options.namespace}`}`;
    return this.request("list", kind, where, () => {
      const selector = parseLabelSelector(options.labelSelector);
      return [...this.objects.values()]
        .map((entry) => entry.object)
        .filter(
          (object) =>
            object.apiVersion === apiVersion &&
            object.kind === kind &&
            (options.namespace === undefined || object.metadata.namespace === options.namespace) &&
            matchesLabels(object, selector),
        )
        .sort((a, b) => keyOf(refOf(a)).localeCompare(keyOf(refOf(b))))
        .map((object) => structuredClone(object));
    });
  }

  delete(ref: ObjectRef): Promise<boolean> {
    return this.request("delete", ref.kind, ref, () => {
      const entry = this.objects.get(keyOf(ref));
      if (entry === undefined) return false;
      if (ref.kind === "Namespace") this.terminateNamespace(entry.object);
      else this.remove(entry.object);
      return true;
    });
  }

  watch(
    ref: ObjectRef,
    onChange: (object: ClusterObject | undefined) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const key = keyOf(ref);
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      const listener = (object: ClusterObject | undefined): void => onChange(object);
      let listeners = this.watchers.get(key);
      if (listeners === undefined) this.watchers.set(key, (listeners = new Set()));
      listeners.add(listener);
      signal.addEventListener(
        "abort",
        () => {
          listeners.delete(listener);
          resolve();
        },
        { once: true },
      );
      const current = this.objects.get(key)?.object;
      onChange(current === undefined ? undefined : structuredClone(current));
    });
  }

  private async request<T>(
    verb: InjectedFailure["verb"],
    kind: string,
    ref: ObjectRef | string,
    run: () => T,
  ): Promise<T> {
    this.requests.push(`${verb} ${typeof ref === "string" ? ref : describeRef(ref)}`);
    // Answers come asynchronously, as over the network: callers must not rely on ordering within a tick.
    await new Promise((resolve) => setImmediate(resolve));
    const failure = this.failures.findIndex((f) => f.verb === verb && f.kind === kind);
    if (failure >= 0) {
      const [injected] = this.failures.splice(failure, 1);
      throw clusterError(injected!.status, ref, injected!.message);
    }
    return run();
  }

  private applySync(config: ClusterObject, options: ApplyOptions): ClusterObject {
    const ref = refOf(config);
    if (typeof config.metadata?.name !== "string" || config.metadata.name === "") {
      throw clusterError(422, ref, `${config.kind}: metadata.name: Required value`);
    }
    const namespaced = !CLUSTER_SCOPED.has(config.kind);
    if (namespaced !== (config.metadata.namespace !== undefined)) {
      throw clusterError(
        400,
        ref,
        namespaced ? "the object has no namespace" : `${config.kind} is cluster-scoped: no namespace`,
      );
    }
    if (namespaced) {
      const namespace = this.objects.get(
        keyOf({ apiVersion: "v1", kind: "Namespace", name: config.metadata.namespace! }),
      );
      if (namespace === undefined) {
        throw clusterError(404, ref, `namespaces "${config.metadata.namespace}" not found`);
      }
      const creating = !this.objects.has(keyOf(ref));
      if (creating && namespace.object.metadata.deletionTimestamp !== undefined) {
        throw clusterError(
          403,
          ref,
          `unable to create new content in namespace ${config.metadata.namespace} because it is being terminated`,
        );
      }
    }
    const key = keyOf(ref);
    const existing = this.objects.get(key);
    const applied = leavesOf(config);
    const current: Leaves = existing === undefined ? new Map<string, Leaf>() : leavesOf(existing.object);
    const owners = new Map(
      [...(existing?.owners ?? new Map<string, Set<string>>())].map(([m, p]) => [m, new Set(p)]),
    );

    const conflicts: string[] = [];
    for (const [id, { path, value }] of applied) {
      for (const [manager, paths] of owners) {
        if (manager !== options.fieldManager && paths.has(id) && current.get(id)?.value !== value) {
          conflicts.push(`conflict with "${manager}": .${path.join(".")}`);
        }
      }
    }
    if (conflicts.length > 0 && options.force !== true) {
      throw clusterError(
        409,
        ref,
        `Apply failed with ${conflicts.length} conflicts: ${conflicts.join(", ")}`,
      );
    }

    const merged: Leaves = new Map(current);
    const mine = owners.get(options.fieldManager) ?? new Set<string>();
    for (const id of mine) {
      const sharedWith = [...owners].some(
        ([manager, paths]) => manager !== options.fieldManager && paths.has(id),
      );
      if (!applied.has(id) && !sharedWith) merged.delete(id);
    }
    for (const [id, leaf] of applied) {
      for (const other of [...merged.keys()]) {
        if (other !== id && overlaps(merged.get(other)!.path, leaf.path)) merged.delete(other);
      }
      merged.set(id, leaf);
      for (const [manager, paths] of owners) {
        if (manager !== options.fieldManager && current.get(id)?.value !== leaf.value) paths.delete(id);
      }
    }
    owners.set(options.fieldManager, new Set(applied.keys()));

    const object = objectOf(merged);
    const changed = existing === undefined || specOf(existing.object) !== specOf(object);
    const previous = existing?.object.metadata;
    object.metadata = {
      ...object.metadata,
      uid: previous?.uid ?? randomUUID(),
      generation: (previous?.generation ?? 0) + (changed ? 1 : 0),
      resourceVersion: previous?.resourceVersion ?? "",
      ...(previous?.deletionTimestamp === undefined ? {} : { deletionTimestamp: previous.deletionTimestamp }),
    };
    if (existing?.object.status !== undefined) object.status = existing.object.status;
    else if (config.kind === "Namespace") object.status = { phase: "Active" };

    const same = existing !== undefined && JSON.stringify(existing.object) === JSON.stringify(object);
    if (options.dryRun === true) return structuredClone(same ? existing.object : object);
    if (same) {
      existing.owners = owners;
      return structuredClone(existing.object);
    }
    this.store(object, owners);
    // An apply that drops the last finalizer of an object being deleted lets the deletion finish.
    if (object.metadata.deletionTimestamp !== undefined && finalizersOf(object).length === 0) {
      const stored = structuredClone(object);
      this.remove(object);
      return stored;
    }
    if (object.kind === "StatefulSet") this.schedule(() => this.reconcile(ref));
    return structuredClone(this.objects.get(key)!.object);
  }

  /** Writes `object` with a new resourceVersion and tells its watchers. */
  private store(object: ClusterObject, owners?: Map<string, Set<string>>): void {
    const key = keyOf(refOf(object));
    object.metadata.resourceVersion = String(++this.resourceVersion);
    this.objects.set(key, {
      object,
      owners: owners ?? this.objects.get(key)?.owners ?? new Map<string, Set<string>>(),
    });
    this.notify(key, object);
  }

  /** Deletes the object, or with finalizers marks it deleted and keeps it until they are gone. */
  private remove(object: ClusterObject): void {
    const key = keyOf(refOf(object));
    if (finalizersOf(object).length > 0) {
      if (object.metadata.deletionTimestamp === undefined) {
        object.metadata.deletionTimestamp = new Date().toISOString();
        this.store(object);
      }
      return;
    }
    if (!this.objects.delete(key)) return;
    this.notify(key, undefined);
    if (object.metadata.namespace !== undefined) this.finishNamespace(object.metadata.namespace);
    if (object.kind === "StatefulSet") {
      for (const pod of this.podsOf(object)) this.remove(pod);
    }
    if (object.kind === "Pod") {
      const owner = ownerOf(object);
      if (owner !== undefined) this.schedule(() => this.reconcile(owner));
    }
  }

  private notify(key: string, object: ClusterObject | undefined): void {
    for (const listener of this.watchers.get(key) ?? []) {
      listener(object === undefined ? undefined : structuredClone(object));
    }
  }

  private schedule(run: () => void, ms = 0): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }

  private terminateNamespace(namespace: ClusterObject): void {
    if (namespace.metadata.deletionTimestamp !== undefined) return;
    namespace.metadata.deletionTimestamp = new Date().toISOString();
    namespace.status = { phase: "Terminating" };
    this.store(namespace);
    this.schedule(() => {
      for (const entry of [...this.objects.values()]) {
        if (entry.object.metadata.namespace === namespace.metadata.name) this.remove(entry.object);
      }
      this.finishNamespace(namespace.metadata.name);
    });
  }

  /** A terminating namespace goes once nothing is left in it (objects with finalizers hold it). */
  private finishNamespace(name: string): void {
    const namespace = this.objects.get(keyOf({ apiVersion: "v1", kind: "Namespace", name }))?.object;
    if (namespace?.metadata.deletionTimestamp === undefined) return;
    for (const entry of this.objects.values()) if (entry.object.metadata.namespace === name) return;
    this.remove(namespace);
  }

  private podsOf(statefulSet: ClusterObject): ClusterObject[] {
    return [...this.objects.values()]
      .map((entry) => entry.object)
      .filter((object) => object.kind === "Pod" && ownerOf(object)?.name === statefulSet.metadata.name)
      .filter((pod) => pod.metadata.namespace === statefulSet.metadata.namespace);
  }

  /** The StatefulSet controller's one pass: create, delete and roll pods, then write status. */
  private reconcile(ref: ObjectRef): void {
    const entry = this.objects.get(keyOf(ref));
    if (entry === undefined) return;
    const statefulSet = entry.object;
    const spec = statefulSet.spec as StatefulSetSpec;
    const replicas = spec.replicas ?? 1;
    const partition = spec.updateStrategy?.rollingUpdate?.partition ?? 0;
    const updateRevision = `${ref.name}-${createHash("sha256").update(JSON.stringify(spec.template)).digest("hex").slice(0, 10)}`;
    const byOrdinal = new Map(this.podsOf(statefulSet).map((pod) => [ordinalOf(pod), pod]));
    const parallel = spec.podManagementPolicy === "Parallel";

    for (const [ordinal, pod] of byOrdinal) {
      if (ordinal >= replicas) {
        this.remove(pod);
        byOrdinal.delete(ordinal);
      }
    }
    for (let ordinal = 0; ordinal < replicas; ordinal++) {
      if (byOrdinal.has(ordinal)) continue;
      const lowerReady = [...Array(ordinal).keys()].every((o) => isReady(byOrdinal.get(o)));
      if (!parallel && !lowerReady) break;
      const previous = statefulSet.status?.currentRevision as string | undefined;
      // A pod below the partition is recreated at the current revision, as the controller does.
      const revision = ordinal < partition && previous !== undefined ? previous : updateRevision;
      byOrdinal.set(ordinal, this.createPod(statefulSet, ordinal, revision));
    }
    const allReady = [...byOrdinal.values()].every(isReady) && byOrdinal.size === replicas;
    if (allReady) {
      const stale = [...byOrdinal.entries()]
        .filter(([ordinal, pod]) => ordinal >= partition && revisionOf(pod) !== updateRevision)
        .sort(([a], [b]) => b - a)[0];
      if (stale !== undefined) {
        this.remove(stale[1]);
        byOrdinal.set(stale[0], this.createPod(statefulSet, stale[0], updateRevision));
      }
    }

    const pods = [...byOrdinal.values()];
    const updated = pods.filter((pod) => revisionOf(pod) === updateRevision).length;
    const previousCurrent = statefulSet.status?.currentRevision as string | undefined;
    const currentRevision =
      updated === replicas && pods.length === replicas ? updateRevision : (previousCurrent ?? updateRevision);
    const status = {
      observedGeneration: statefulSet.metadata.generation,
      replicas: pods.length,
      readyReplicas: pods.filter(isReady).length,
      availableReplicas: pods.filter(isReady).length,
      currentReplicas: pods.filter((pod) => revisionOf(pod) === currentRevision).length,
      updatedReplicas: updated,
      currentRevision,
      updateRevision,
    };
    if (JSON.stringify(status) !== JSON.stringify(statefulSet.status)) {
      statefulSet.status = status;
      this.store(statefulSet);
    }
  }

  private createPod(statefulSet: ClusterObject, ordinal: number, revision: string): ClusterObject {
    const template = (statefulSet.spec as StatefulSetSpec).template;
    const name = `${statefulSet.metadata.name}-${ordinal}`;
    const pod: ClusterObject = {
      apiVersion: "v1",
      kind: "Pod",
      metadata: {
        name,
        namespace: statefulSet.metadata.namespace,
        labels: {
          ...(template.metadata?.labels ?? {}),
          [REVISION_LABEL]: revision,
          "statefulset.kubernetes.io/pod-name": name,
        },
        uid: randomUUID(),
        ownerReferences: [{ apiVersion: "apps/v1", kind: "StatefulSet", name: statefulSet.metadata.name }],
      } as ClusterObject["metadata"],
      spec: structuredClone(template.spec),
      status: { phase: "Pending", conditions: [{ type: "Ready", status: "False" }] },
    };
    this.store(pod, new Map());
    this.startPod(pod);
    return pod;
  }

  /** Pulls and starts the pod's containers: ready after podReadyMs, or stuck on an injected failure. */
  private startPod(pod: ClusterObject): void {
    const ref = refOf(pod);
    const reason = this.failureOf(pod);
    if (reason !== undefined) {
      const containers = ((pod.spec as PodSpec).containers ?? []).map((container) => ({
        name: container.name,
        image: container.image,
        ready: false,
        state: { waiting: { reason, message: `${reason}: ${container.image}` } },
      }));
      pod.status = {
        phase: "Pending",
        conditions: [{ type: "Ready", status: "False" }],
        containerStatuses: containers,
      };
      this.store(pod);
      return;
    }
    this.schedule(() => {
      const current = this.objects.get(keyOf(ref))?.object;
      if (
        current === undefined ||
        current.metadata.uid !== pod.metadata.uid ||
        this.failureOf(current) !== undefined
      )
        return;
      current.status = {
        phase: "Running",
        conditions: [{ type: "Ready", status: "True" }],
        containerStatuses: ((current.spec as PodSpec).containers ?? []).map((container) => ({
          name: container.name,
          image: container.image,
          ready: true,
          state: { running: { startedAt: new Date().toISOString() } },
        })),
      };
      this.store(current);
      const owner = ownerOf(current);
      if (owner !== undefined) this.reconcile(owner);
    }, this.podReadyMs);
  }

  private failureOf(pod: ClusterObject): string | undefined {
    for (const container of (pod.spec as PodSpec).containers ?? []) {
      for (const [part, reason] of this.failingImages) if (container.image.includes(part)) return reason;
    }
    return undefined;
  }
}

interface PodSpec {
  containers?: { name: string; image: string }[];
}

interface StatefulSetSpec {
  replicas?: number;
  podManagementPolicy?: string;
  updateStrategy?: { rollingUpdate?: { partition?: number } };
  template: { metadata?: { labels?: Record<string, string> }; spec: PodSpec };
}

/** Parses an equality-only label selector (`a=b,c=d`) into pairs; `==` is accepted as `=`. */
function parseLabelSelector(selector: string | undefined): [string, string][] {
  if (selector === undefined || selector.trim() === "") return [];
  return selector.split(",").map((term) => {
    const match = /^\s*([^=!\s]+)\s*==?\s*([^=\s]*)\s*$/.exec(term);
    if (match === null) throw new RangeError(`label selector term "${term}" is not key=value`);
    return [match[1]!, match[2]!];
  });
}

function matchesLabels(object: ClusterObject, selector: [string, string][]): boolean {
  const labels = object.metadata.labels ?? {};
  return selector.every(([key, value]) => labels[key] === value);
}

function keyOf(ref: ObjectRef): string {
  return `${ref.apiVersion}|${ref.kind}|${ref.namespace ?? ""}|${ref.name}`;
}

function ownerOf(pod: ClusterObject): ObjectRef | undefined {
  const owner = (pod.metadata as { ownerReferences?: { apiVersion: string; kind: string; name: string }[] })
    .ownerReferences?.[0];
  return owner === undefined
    ? undefined
    : { apiVersion: owner.apiVersion, kind: owner.kind, name: owner.name, namespace: pod.metadata.namespace };
}

function finalizersOf(object: ClusterObject): string[] {
  return (object.metadata as { finalizers?: string[] }).finalizers ?? [];
}

function ordinalOf(pod: ClusterObject): number {
  return Number(pod.metadata.name.slice(pod.metadata.name.lastIndexOf("-") + 1));
}

function revisionOf(pod: ClusterObject): string | undefined {
  return pod.metadata.labels?.[REVISION_LABEL];
}

function isReady(pod: ClusterObject | undefined): boolean {
  const conditions = (pod?.status?.conditions ?? []) as { type: string; status: string }[];
  return conditions.some((condition) => condition.type === "Ready" && condition.status === "True");
}

/** Everything but metadata and status, as the generation sees it. */
function specOf(object: ClusterObject): string {
  const { metadata: _metadata, status: _status, ...rest } = object;
  return JSON.stringify(rest);
}

/** The object's fields as leaf paths (arrays are atomic, as for the plane's lists), minus server-set ones. */
function leavesOf(object: ClusterObject): Leaves {
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

function objectOf(leaves: Leaves): ClusterObject {
  const root: Record<string, unknown> = {};
  for (const { path, value } of leaves.values()) {
    let at = root;
    for (const key of path.slice(0, -1)) at = (at[key] ??= {}) as Record<string, unknown>;
    at[path[path.length - 1]!] = JSON.parse(value) as unknown;
  }
  return root as unknown as ClusterObject;
}

/** One path is an ancestor of the other: setting one replaces the other. */
function overlaps(a: Path, b: Path): boolean {
  if (a.length === b.length) return false;
  const [short, long] = a.length < b.length ? [a, b] : [b, a];
  return short.every((key, i) => long[i] === key);
}
