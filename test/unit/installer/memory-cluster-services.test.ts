/**
 * What MemoryCluster gives a node besides pods: the Services' DNS names with their endpoints (as
 * CoreDNS would answer them) whenever pods become Ready or unready and Services come and go, and
 * the Node object a kubelet registers.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  MemoryCluster,
  type ClusterNode,
  type ClusterObject,
  type NodeReport,
  type PodContext,
} from "../../../installer/cluster/index.js";

const clusters: MemoryCluster[] = [];
afterEach(() => {
  for (const cluster of clusters.splice(0)) cluster.close();
});

const manager = { fieldManager: "airlock" };
const NS = "hubble-system";
const CLIENT = `msgbroker.${NS}.svc.cluster.local`;
const HEADLESS = `msgbroker-headless.${NS}.svc.cluster.local`;

/** A node whose pods become Ready when the test says, and which records the Service names it is given. */
class NamesNode implements ClusterNode {
  readonly pods = new Map<string, PodContext>();
  names = new Map<string, readonly string[]>();
  updates = 0;

  runPod(pod: ClusterObject, context: PodContext): void {
    this.pods.set(pod.metadata.name, context);
  }

  stopPod(): Promise<void> {
    return Promise.resolve();
  }

  setServiceNames(names: ReadonlyMap<string, readonly string[]>): void {
    this.names = new Map(names);
    this.updates++;
  }

  nodeReport(): NodeReport {
    return {
      addresses: [{ type: "InternalIP", address: "198.18.0.1" }],
      nodeInfo: { containerRuntimeVersion: "containerd://1.6.20" },
    };
  }

  report(name: string, ip: string, ready: boolean): void {
    this.pods.get(name)!.report({
      phase: "Running",
      podIP: ip,
      conditions: [{ type: "Ready", status: ready ? "True" : "False" }],
      containerStatuses: [],
    });
  }
}

function service(name: string, spec: Record<string, unknown>): ClusterObject {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace: NS },
    spec: { selector: { app: "msgbroker" }, ports: [{ name: "client", port: 4222 }], ...spec },
  };
}

const brokers: ClusterObject = {
  apiVersion: "apps/v1",
  kind: "StatefulSet",
  metadata: { name: "msgbroker", namespace: NS },
  spec: {
    replicas: 2,
    serviceName: "msgbroker-headless",
    podManagementPolicy: "Parallel",
    selector: { matchLabels: { app: "msgbroker" } },
    template: {
      metadata: { labels: { app: "msgbroker" } },
      spec: { containers: [{ name: "msgbroker", image: "nats:2" }] },
    },
  },
};

/** Polls the synchronous `check` until it holds, within a bounded deadline. */
async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function brokerCluster(): Promise<{ cluster: MemoryCluster; node: NamesNode }> {
  const node = new NamesNode();
  const cluster = new MemoryCluster({ node });
  clusters.push(cluster);
  await cluster.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS } }, manager);
  await cluster.apply(service("msgbroker", { type: "ClusterIP" }), manager);
  await cluster.apply(
    service("msgbroker-headless", { clusterIP: "None", publishNotReadyAddresses: true }),
    manager,
  );
  await cluster.apply(brokers, manager);
  await until(() => node.pods.size === 2, "both broker pods on the node");
  return { cluster, node };
}

describe("MemoryCluster's Service names", () => {
  it("resolves the client Service to its Ready pods only, and the headless one to every pod with an address", async () => {
    const { node } = await brokerCluster();
    expect(node.names.get(CLIENT)).toEqual([]);
    node.report("msgbroker-0", "198.18.0.2", true);
    node.report("msgbroker-1", "198.18.0.3", false);
    expect(node.names.get(CLIENT)).toEqual(["198.18.0.2"]);
    expect(node.names.get(`msgbroker.${NS}.svc`)).toEqual(["198.18.0.2"]);
    // publishNotReadyAddresses: peers resolve each other before they are Ready.
    expect(node.names.get(HEADLESS)).toEqual(["198.18.0.2", "198.18.0.3"]);

    node.report("msgbroker-1", "198.18.0.3", true);
    expect(node.names.get(CLIENT)).toEqual(["198.18.0.2", "198.18.0.3"]);
    node.report("msgbroker-0", "198.18.0.2", false);
    expect(node.names.get(CLIENT)).toEqual(["198.18.0.3"]);
    expect(node.names.get(HEADLESS)).toEqual(["198.18.0.2", "198.18.0.3"]);
  });

  it("tells the node only of changes, drops a terminating pod, and forgets a deleted Service", async () => {
    const { cluster, node } = await brokerCluster();
    node.report("msgbroker-0", "198.18.0.2", true);
    node.report("msgbroker-1", "198.18.0.3", true);
    const updates = node.updates;
    node.report("msgbroker-1", "198.18.0.3", true);
    expect(node.updates).toBe(updates);

    await cluster.delete({ apiVersion: "v1", kind: "Pod", name: "msgbroker-1", namespace: NS });
    expect(node.names.get(CLIENT)).toEqual(["198.18.0.2"]);
    expect(node.names.get(HEADLESS)).toEqual(["198.18.0.2"]);

    await cluster.delete({ apiVersion: "v1", kind: "Service", name: "msgbroker", namespace: NS });
    expect(node.names.has(CLIENT)).toBe(false);
    expect(node.names.has(`msgbroker.${NS}.svc`)).toBe(false);
    expect(node.names.has(HEADLESS)).toBe(true);
  });
});

describe("MemoryCluster's Node object", () => {
  it("registers airlock-node Ready by default, with only its name when there is no node double", async () => {
    const cluster = new MemoryCluster();
    clusters.push(cluster);
    const node = await cluster.get({ apiVersion: "v1", kind: "Node", name: "airlock-node" });
    expect(node?.metadata.namespace).toBeUndefined();
    expect(node?.status).toMatchObject({
      conditions: [{ type: "Ready", status: "True", reason: "KubeletReady" }],
      addresses: [{ type: "Hostname", address: "airlock-node" }],
      nodeInfo: { operatingSystem: "linux" },
    });
    expect((await cluster.list("v1", "Node")).map((object) => object.metadata.name)).toEqual([
      "airlock-node",
    ]);
  });

  it("takes its name from nodeName and its addresses and runtime from the node double", async () => {
    const cluster = new MemoryCluster({ node: new NamesNode(), nodeName: "site-1" });
    clusters.push(cluster);
    expect(await cluster.get({ apiVersion: "v1", kind: "Node", name: "airlock-node" })).toBeUndefined();
    const node = await cluster.get({ apiVersion: "v1", kind: "Node", name: "site-1" });
    expect(node?.status).toMatchObject({
      conditions: [{ type: "Ready", status: "True" }],
      addresses: [
        { type: "InternalIP", address: "198.18.0.1" },
        { type: "Hostname", address: "site-1" },
      ],
      nodeInfo: { containerRuntimeVersion: "containerd://1.6.20" },
    });
  });
});
