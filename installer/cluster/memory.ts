import { randomUUID } from "node:crypto";
import {
  describeRef,
  refOf,
  type ApplyOptions,
  type ClusterClient,
  type ClusterObject,
  type DeleteOptions,
  type ListOptions,
  type ObjectRef,
} from "./client.js";
import { clusterError } from "./errors.js";
import { admit, refuseImmutableChanges } from "./memory-validation.js";
import {
  dependentsOf,
  finalizersOf,
  keyOf,
  matchesLabels,
  objectOf,
  orphansOf,
  ownerOf,
  parseLabelSelector,
  specOf,
} from "./memory-objects.js";
import { mergeApplied } from "./memory-apply.js";
import { admitJob, reconcileJob } from "./memory-jobs.js";
import { SimulatedNode } from "./memory-pods.js";
import { nodeObject, ServiceNamesFeed } from "./memory-services.js";
import { reconcileStatefulSet, type StatefulSetHost } from "./memory-statefulset.js";
import type { ClusterNode, PodContext, PodStatus } from "./node-api.js";

export interface MemoryClusterOptions {
  /** How long a started pod takes to become ready, when there is no node. */
  podReadyMs?: number;
  /**
   * A node that runs the pods for real (a containerd one, in tests and the demo): pods' status is
   * then what it reports, and a deleted pod stays terminating until the node has stopped it.
   */
  node?: ClusterNode;
  /** The name of the one Node object, registered Ready as a kubelet would; default `airlock-node`. */
  nodeName?: string;
}

type OwnedMetadata = ClusterObject["metadata"] & { ownerReferences?: unknown[] | undefined };

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
 * controller that creates pods, rolls them one at a time from the highest ordinal when the template
 * changes, and reports observedGeneration, ready/updated replicas and current/update revisions. Pods
 * run on the given node, or are simulated (ready after `podReadyMs`). Failures are injected: an image
 * whose simulated pods never pull, an API error.
 */
export class MemoryCluster implements ClusterClient {
  private readonly objects = new Map<string, Entry>();
  private readonly watchers = new Map<string, Set<(object: ClusterObject | undefined) => void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly failures: InjectedFailure[] = [];
  private resourceVersion = 0;
  private readonly simulated: SimulatedNode;
  private readonly node: ClusterNode | undefined;
  private readonly controllerHost: StatefulSetHost;
  private readonly serviceNames: ServiceNamesFeed;
  /** Every request, as `verb Kind namespace/name`: tests read what the engine asked for. */
  readonly requests: string[] = [];

  constructor(options: MemoryClusterOptions = {}) {
    this.simulated = new SimulatedNode(options.podReadyMs ?? 0);
    this.node = options.node;
    this.serviceNames = new ServiceNamesFeed(options.node);
    this.controllerHost = {
      get: (ref) => this.objects.get(keyOf(ref))?.object,
      owned: (statefulSet, kind) =>
        dependentsOf(this.stored(), statefulSet).filter((object) => object.kind === kind),
      orphansOf: (statefulSet) => orphansOf(this.stored(), statefulSet),
      write: (object) => this.store(object),
      createPod: (pod) => {
        this.store(pod, new Map());
        this.startPod(pod);
      },
      deletePod: (pod) => {
        this.remove(pod);
        return !this.objects.has(keyOf(refOf(pod)));
      },
      ensureClaim: (claim) => {
        if (!this.objects.has(keyOf(refOf(claim)))) this.store(claim, new Map());
      },
      writeStatus: (statefulSet, status) => {
        statefulSet.status = status;
        this.store(statefulSet);
      },
    };
    // Registered by the node's kubelet once it runs: a node double given here is already started.
    this.store(nodeObject(options.nodeName ?? "airlock-node", this.node?.nodeReport?.()), new Map());
  }

  /** Simulated pods with a container image containing `imagePart` stay waiting with `reason`, never ready. */
  failImage(imagePart: string, reason = "ImagePullBackOff"): void {
    this.simulated.failImage(imagePart, reason);
  }

  /** The image heals: its simulated pods are started again, as kubelet's back-off retry would. */
  healImage(imagePart: string): void {
    this.simulated.healImage(imagePart);
    for (const entry of this.objects.values()) {
      const { kind, status } = entry.object;
      const ended = status?.phase === "Succeeded" || status?.phase === "Failed";
      if (kind === "Pod" && !ended && this.simulated.failureOf(entry.object) === undefined)
        this.startPod(entry.object);
    }
  }

  /** The next `verb` on `kind` fails with the API server's `status`. */
  failNext(verb: InjectedFailure["verb"], kind: string, status: number, message = "injected failure"): void {
    this.failures.push({ verb, kind, status, message });
  }

  /**
   * What a node's kubelet posts when it (re)starts: its Node's node info (a restarted k3s reports
   * its new kubeletVersion) and whether it is Ready.
   */
  postNodeStatus(name: string, status: { ready: boolean; nodeInfo?: Record<string, string> }): void {
    const node = this.objects.get(keyOf({ apiVersion: "v1", kind: "Node", name }))?.object;
    if (node === undefined) throw new RangeError(`there is no Node ${name}`);
    const current = node.status as { conditions: { type: string; status: string }[]; nodeInfo: object };
    node.status = {
      ...current,
      conditions: current.conditions.map((condition) =>
        condition.type === "Ready" ? { ...condition, status: status.ready ? "True" : "False" } : condition,
      ),
      nodeInfo: { ...current.nodeInfo, ...status.nodeInfo },
    };
    this.store(node);
  }

  /** Stops the controllers' timers; the cluster keeps its objects. */
  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    this.simulated.close();
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

  delete(ref: ObjectRef, options: DeleteOptions = {}): Promise<boolean> {
    return this.request("delete", ref.kind, ref, () => {
      const entry = this.objects.get(keyOf(ref));
      if (entry === undefined) return false;
      // The garbage collector's part of an orphaning delete: dependents lose their owner and stay.
      if (options.propagationPolicy === "Orphan") {
        for (const dependent of dependentsOf(this.stored(), entry.object)) {
          delete (dependent.metadata as OwnedMetadata).ownerReferences;
          this.store(dependent);
        }
      }
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
    admit(config, ref, (at) => this.objects.get(keyOf(at))?.object);
    if (config.kind === "Job") admitJob(config, ref);
    const key = keyOf(ref);
    const existing = this.objects.get(key);
    const { merged, owners } = mergeApplied(config, existing, options);
    const object = objectOf(merged);
    // Validated as an update before anything is stored, dry runs too.
    if (existing !== undefined) refuseImmutableChanges(existing.object, object);
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
    if (object.kind === "StatefulSet" || object.kind === "Job") this.schedule(() => this.reconcile(ref));
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
    if (object.kind === "Pod" || object.kind === "Service") this.serviceNames.update(this.objects.values());
  }

  /**
   * Deletes the object, or with finalizers marks it deleted and keeps it until they are gone. A pod on
   * a node terminates first: marked deleted while the node stops it, gone once it has.
   */
  private remove(object: ClusterObject): void {
    if (finalizersOf(object).length > 0 || (object.kind === "Pod" && this.node !== undefined)) {
      if (object.metadata.deletionTimestamp === undefined) {
        object.metadata.deletionTimestamp = new Date().toISOString();
        this.store(object);
        if (object.kind === "Pod" && this.node !== undefined) this.terminatePod(this.node, object);
      }
      return;
    }
    this.forget(object);
  }

  private terminatePod(node: ClusterNode, pod: ClusterObject): void {
    const grace = (pod.spec as { terminationGracePeriodSeconds?: number }).terminationGracePeriodSeconds;
    void node.stopPod(pod, grace ?? 30).then(() => {
      const current = this.objects.get(keyOf(refOf(pod)))?.object;
      if (current !== undefined && current.metadata.uid === pod.metadata.uid) this.forget(current);
    });
  }

  /** The object goes: its watchers hear it, and what depended on it follows. */
  private forget(object: ClusterObject): void {
    const key = keyOf(refOf(object));
    if (!this.objects.delete(key)) return;
    this.notify(key, undefined);
    if (object.kind === "Pod" || object.kind === "Service") this.serviceNames.update(this.objects.values());
    if (object.metadata.namespace !== undefined) this.finishNamespace(object.metadata.namespace);
    for (const dependent of dependentsOf(this.stored(), object)) this.remove(dependent);
    if (object.kind === "Pod") {
      const owner = ownerOf(object);
      if (owner !== undefined) this.schedule(() => this.reconcile(owner));
    }
  }

  /** The controller of a StatefulSet or Job takes one pass over it. */
  private reconcile(ref: ObjectRef): void {
    if (ref.kind === "Job") reconcileJob(this.controllerHost, ref);
    else reconcileStatefulSet(this.controllerHost, ref);
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

  private stored(): ClusterObject[] {
    return [...this.objects.values()].map((entry) => entry.object);
  }

  /** Starts the pod on the node, or simulates it. */
  private startPod(pod: ClusterObject): void {
    (this.node ?? this.simulated).runPod(structuredClone(pod), this.contextOf(pod));
  }

  /** What the node reads of the cluster for one pod, and where its reports go. */
  private contextOf(pod: ClusterObject): PodContext {
    const key = keyOf(refOf(pod));
    return {
      get: (ref) => {
        const found = this.objects.get(keyOf(ref))?.object;
        return found === undefined ? undefined : structuredClone(found);
      },
      report: (status: PodStatus) => {
        const current = this.objects.get(key)?.object;
        if (current === undefined || current.metadata.uid !== pod.metadata.uid) return;
        current.status = structuredClone(status) as unknown as Record<string, unknown>;
        this.store(current);
        const owner = ownerOf(current);
        if (owner !== undefined) this.reconcile(owner);
      },
    };
  }
}
