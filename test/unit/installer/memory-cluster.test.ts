/**
 * The in-memory cluster behaves as the API server and the StatefulSet controller do where the apply
 * engine depends on it: namespaces, server-side apply ownership, generations, rollouts, failures.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  MemoryCluster,
  rolledOut,
  type ClusterObject,
  type ObjectRef,
} from "../../../installer/cluster/index.js";
import type { ClusterNode, PodContext } from "../../../installer/cluster/index.js";

const clusters: MemoryCluster[] = [];
afterEach(() => {
  for (const cluster of clusters.splice(0)) cluster.close();
});

function newCluster(podReadyMs = 0): MemoryCluster {
  const cluster = new MemoryCluster({ podReadyMs });
  clusters.push(cluster);
  return cluster;
}

const namespace: ClusterObject = { apiVersion: "v1", kind: "Namespace", metadata: { name: "plane" } };

function configMap(data: Record<string, string>, labels: Record<string, string> = {}): ClusterObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "settings", namespace: "plane", labels },
    data,
  };
}

function statefulSet(image: string, replicas = 2): ClusterObject {
  const labels = { app: "broker" };
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: "broker", namespace: "plane" },
    spec: {
      replicas,
      serviceName: "broker",
      podManagementPolicy: "Parallel",
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { partition: 0 } },
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: "broker", image }] } },
    },
  };
}

const manager = { fieldManager: "airlock" };
const stsRef = { apiVersion: "apps/v1", kind: "StatefulSet", name: "broker", namespace: "plane" };

/** Resolves with the first state of `ref` that `done` accepts (undefined: gone), by watching it. */
function until(
  cluster: MemoryCluster,
  ref: ObjectRef,
  done: (object: ClusterObject | undefined) => boolean,
): Promise<ClusterObject | undefined> {
  const watching = new AbortController();
  return new Promise((resolve, reject) => {
    cluster
      .watch(
        ref,
        (object) => {
          if (done(object)) {
            watching.abort();
            resolve(object);
          }
        },
        watching.signal,
      )
      .catch(reject);
  });
}

/** The StatefulSet's first state that `done` accepts. */
async function stsUntil(
  cluster: MemoryCluster,
  done: (object: ClusterObject) => boolean,
): Promise<ClusterObject> {
  return (await until(cluster, stsRef, (object) => object !== undefined && done(object)))!;
}

describe("MemoryCluster", () => {
  it("refuses a namespaced object before its namespace exists, and a new one in a namespace being deleted", async () => {
    const cluster = newCluster();
    await expect(cluster.apply(configMap({ a: "1" }), manager)).rejects.toMatchObject({
      code: "CLUSTER_NOT_FOUND",
      message: 'namespaces "plane" not found',
    });
    await cluster.apply(namespace, manager);
    // A finalizer holds the ConfigMap, and so the namespace, in deletion until it is dropped.
    const held = configMap({ a: "1" });
    held.metadata = { ...held.metadata, finalizers: ["example.com/hold"] } as ClusterObject["metadata"];
    await cluster.apply(held, manager);
    const namespaceRef = { apiVersion: "v1", kind: "Namespace", name: "plane" };
    const gone = until(cluster, namespaceRef, (object) => object === undefined);
    expect(await cluster.delete(namespaceRef)).toBe(true);
    const other = { ...configMap({ b: "2" }), metadata: { name: "other", namespace: "plane" } };
    await expect(cluster.apply(other, manager)).rejects.toMatchObject({
      code: "CLUSTER_FORBIDDEN",
      message: "unable to create new content in namespace plane because it is being terminated",
    });
    expect((await cluster.get(namespaceRef))?.status).toEqual({ phase: "Terminating" });
    await cluster.apply(configMap({ a: "1" }), manager);
    await gone;
    expect(await cluster.list("v1", "ConfigMap")).toEqual([]);
  });

  it("bumps resourceVersion on a change, not on an apply of the same; generation on a spec change only", async () => {
    const cluster = newCluster();
    await cluster.apply(namespace, manager);
    const created = await cluster.apply(configMap({ a: "1" }), manager);
    const again = await cluster.apply(configMap({ a: "1" }), manager);
    expect(again.metadata.resourceVersion).toBe(created.metadata.resourceVersion);
    const changed = await cluster.apply(configMap({ a: "2" }), manager);
    expect(Number(changed.metadata.resourceVersion)).toBeGreaterThan(
      Number(created.metadata.resourceVersion),
    );

    expect((await cluster.apply(statefulSet("broker:1"), manager)).metadata.generation).toBe(1);
    const labelledSts = statefulSet("broker:1");
    labelledSts.metadata.labels = { tier: "plane" };
    expect((await cluster.apply(labelledSts, manager)).metadata.generation).toBe(1);
    expect((await cluster.apply(statefulSet("broker:2"), manager)).metadata.generation).toBe(2);
  });

  it("server-side apply: a field another manager set conflicts unless forced, and a dropped field goes", async () => {
    const cluster = newCluster();
    await cluster.apply(namespace, manager);
    await cluster.apply(configMap({ a: "1", b: "1" }), manager);
    await expect(cluster.apply(configMap({ a: "9" }), { fieldManager: "kubectl" })).rejects.toMatchObject({
      code: "CLUSTER_CONFLICT",
      message: expect.stringContaining('conflict with "airlock": .data.a') as unknown,
    });
    // The same value is no conflict: both own the field.
    await cluster.apply(configMap({ b: "1", c: "3" }), { fieldManager: "kubectl" });
    await cluster.apply(configMap({ a: "9" }), { fieldManager: "kubectl", force: true });
    const taken = await cluster.get({
      apiVersion: "v1",
      kind: "ConfigMap",
      name: "settings",
      namespace: "plane",
    });
    expect(taken?.data).toEqual({ a: "9", b: "1" });
    // kubectl's last apply left b to airlock alone; airlock now drops it too, so b goes.
    const back = await cluster.apply(configMap({ a: "1" }), { ...manager, force: true });
    expect(back.data).toEqual({ a: "1" });
  });

  it("rolls a StatefulSet out, then rolls a template change from the highest ordinal down, one pod at a time", async () => {
    const cluster = newCluster();
    await cluster.apply(namespace, manager);
    await cluster.apply(statefulSet("broker:1"), manager);
    const first = await stsUntil(cluster, rolledOut);
    expect(first.status).toMatchObject({ readyReplicas: 2, updatedReplicas: 2, observedGeneration: 1 });

    const order: string[] = [];
    const watching = new AbortController();
    for (const name of ["broker-0", "broker-1"]) {
      let uid: string | undefined;
      void cluster.watch(
        { apiVersion: "v1", kind: "Pod", name, namespace: "plane" },
        (pod) => {
          if (pod === undefined) order.push(`${name} deleted`);
          else if (uid !== undefined && pod.metadata.uid !== uid) order.push(`${name} recreated`);
          uid = pod?.metadata.uid ?? uid;
        },
        watching.signal,
      );
    }
    await cluster.apply(statefulSet("broker:2"), manager);
    const second = await stsUntil(cluster, rolledOut);
    watching.abort();
    expect(order).toEqual([
      "broker-1 deleted",
      "broker-1 recreated",
      "broker-0 deleted",
      "broker-0 recreated",
    ]);
    expect(second.status).toMatchObject({ observedGeneration: 2, readyReplicas: 2, updatedReplicas: 2 });
    expect(second.status?.updateRevision).not.toBe(first.status?.updateRevision);
    const pods = await cluster.list("v1", "Pod", { namespace: "plane", labelSelector: "app=broker" });
    expect(pods.map((pod) => (pod.spec as { containers: { image: string }[] }).containers[0]!.image)).toEqual(
      ["broker:2", "broker:2"],
    );
  });

  it("keeps the pods of an image that cannot be pulled waiting, and starts them once it heals", async () => {
    const cluster = newCluster();
    cluster.failImage("broker:bad");
    await cluster.apply(namespace, manager);
    await cluster.apply(statefulSet("broker:bad"), manager);
    const stuck = await stsUntil(cluster, (sts) => sts.status?.replicas === 2);
    expect(stuck.status?.readyReplicas).toBe(0);
    const pod = await cluster.get({ apiVersion: "v1", kind: "Pod", name: "broker-0", namespace: "plane" });
    expect(pod?.status?.containerStatuses).toEqual([
      expect.objectContaining({
        state: { waiting: { reason: "ImagePullBackOff", message: "ImagePullBackOff: broker:bad" } },
      }),
    ]);
    cluster.healImage("broker:bad");
    expect((await stsUntil(cluster, rolledOut)).status?.readyReplicas).toBe(2);
  });

  it("deleting a namespace deletes what is in it; list filters by label", async () => {
    const cluster = newCluster();
    await cluster.apply(namespace, manager);
    await cluster.apply(configMap({ a: "1" }, { team: "x" }), manager);
    expect(await cluster.list("v1", "ConfigMap", { labelSelector: "team=x" })).toHaveLength(1);
    expect(await cluster.list("v1", "ConfigMap", { labelSelector: "team=y" })).toHaveLength(0);
    const gone = until(
      cluster,
      { apiVersion: "v1", kind: "Namespace", name: "plane" },
      (o) => o === undefined,
    );
    await cluster.delete({ apiVersion: "v1", kind: "Namespace", name: "plane" });
    await gone;
    expect(await cluster.list("v1", "ConfigMap")).toEqual([]);
  });
});

/** A node that records what it is asked and reports what the test tells it to. */
class RecordingNode implements ClusterNode {
  readonly running = new Map<string, PodContext>();
  readonly stopped: { name: string; grace: number; finish: () => void }[] = [];

  runPod(pod: ClusterObject, context: PodContext): void {
    this.running.set(pod.metadata.name, context);
  }

  stopPod(pod: ClusterObject, graceSeconds: number): Promise<void> {
    return new Promise((resolve) =>
      this.stopped.push({ name: pod.metadata.name, grace: graceSeconds, finish: resolve }),
    );
  }

  ready(name: string, ready: boolean): void {
    this.running.get(name)!.report({
      phase: "Running",
      podIP: "198.18.0.2",
      conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
      containerStatuses: [],
    });
  }
}

describe("MemoryCluster with a node", () => {
  it("reflects what the node reports, and keeps a deleted pod terminating until the node stopped it", async () => {
    const node = new RecordingNode();
    const cluster = new MemoryCluster({ node });
    clusters.push(cluster);
    await cluster.apply(namespace, manager);
    const sts = statefulSet("broker:1", 1);
    (
      sts.spec as { template: { spec: Record<string, unknown> } }
    ).template.spec.terminationGracePeriodSeconds = 7;
    await cluster.apply(sts, manager);
    await stsUntil(cluster, (object) => object.status?.replicas === 1);
    // Reported by nobody yet: a node pod is not ready on a timer.
    expect((await stsUntil(cluster, () => true)).status?.readyReplicas).toBe(0);
    node.ready("broker-0", true);
    expect((await stsUntil(cluster, rolledOut)).status?.readyReplicas).toBe(1);
    const podRef = { apiVersion: "v1", kind: "Pod", name: "broker-0", namespace: "plane" };
    expect((await cluster.get(podRef))?.status?.podIP).toBe("198.18.0.2");

    const first = (await cluster.get(podRef))!.metadata.uid;
    await cluster.delete(podRef);
    expect((await cluster.get(podRef))?.metadata.deletionTimestamp).toBeDefined();
    expect(node.stopped.map(({ name, grace }) => [name, grace])).toEqual([["broker-0", 7]]);
    node.stopped[0]!.finish();
    const recreated = await until(cluster, podRef, (pod) => pod !== undefined && pod.metadata.uid !== first);
    expect(recreated?.metadata.deletionTimestamp).toBeUndefined();
    expect(recreated?.spec).toMatchObject({ hostname: "broker-0", subdomain: "broker" });
  });

  it("gives each pod of a claim template its claim, which outlives the pod", async () => {
    const cluster = newCluster();
    await cluster.apply(namespace, manager);
    const sts = statefulSet("broker:1", 1);
    (sts.spec as Record<string, unknown>).volumeClaimTemplates = [
      { metadata: { name: "data" }, spec: { accessModes: ["ReadWriteOnce"] } },
    ];
    await cluster.apply(sts, manager);
    await stsUntil(cluster, rolledOut);
    const pod = await cluster.get({ apiVersion: "v1", kind: "Pod", name: "broker-0", namespace: "plane" });
    expect((pod?.spec as { volumes: unknown[] }).volumes).toEqual([
      { name: "data", persistentVolumeClaim: { claimName: "data-broker-0" } },
    ]);
    await cluster.delete(stsRef);
    const claims = await cluster.list("v1", "PersistentVolumeClaim", { namespace: "plane" });
    expect(claims.map((claim) => claim.metadata.name)).toEqual(["data-broker-0"]);
  });
});
