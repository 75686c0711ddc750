/**
 * The containerd node's integration tests share this: containerd of the test's own, Airlock's
 * registry with the msgbroker image, nodes and clusters made on them (all closed by `close`), a
 * broker StatefulSet to vary, and waits on pods that fail with the last status seen.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  MemoryCluster,
  type ClusterObject,
  type ContainerStatus,
  type ObjectRef,
} from "../../installer/cluster/index.js";
import {
  createContainerdNode,
  type ContainerdNode,
  type ContainerdNodeOptions,
} from "../../installer/cluster/node/index.js";
import { startContainerd, type Containerd } from "./daemons.js";
import { waitFor } from "./fixtures.js";
import {
  BROKER_REPOSITORY,
  startNodeRegistry,
  type NodeRegistry,
  type RegistryAccount,
} from "./node-registry.js";

/** The site registry name the rendered plane's images carry; registries.yaml points it at Airlock's. */
export const SITE_REGISTRY = "registry.airlock.local:5443";
export const NAMESPACE = "plane";
export const WAIT_MS = 60_000;
const BACKOFF = { initialMs: 500, maxMs: 4_000 };

export interface NodeHarness {
  root: string;
  registry: NodeRegistry;
  containerd: Containerd;
  /** The broker image as a pod names it: the site registry's name, pinned by digest. */
  image: string;
  newNode(
    options?: { withCa?: boolean; account?: RegistryAccount } & Partial<ContainerdNodeOptions>,
  ): Promise<ContainerdNode>;
  newCluster(node: ContainerdNode): Promise<MemoryCluster>;
  close(): Promise<void>;
}

/** The site registry mirrored to `registry`, with its CA (unless `withCa` is false) and a pull account if given. */
export function registriesYaml(registry: NodeRegistry, withCa: boolean, account?: RegistryAccount): string {
  return [
    "mirrors:",
    `  "${SITE_REGISTRY}":`,
    "    endpoint:",
    `      - "https://${registry.host}"`,
    ...(withCa || account !== undefined ? ["configs:", `  "${registry.host}":`] : []),
    ...(withCa ? ["    tls:", `      ca_file: "${registry.caFile}"`] : []),
    ...(account === undefined
      ? []
      : ["    auth:", `      username: "${account.user}"`, `      password: "${account.password}"`]),
  ].join("\n");
}

/** With `account`, the registry lets only that account pull. */
export async function startNodeHarness(account?: RegistryAccount): Promise<NodeHarness> {
  const root = await mkdtemp(join(tmpdir(), "airlock-node-it-"));
  const registry = await startNodeRegistry(await mkdtemp(join(root, "registry-")), account);
  const containerd = await startContainerd(await mkdtemp(join(root, "containerd-")));
  const nodes: ContainerdNode[] = [];
  const clusters: MemoryCluster[] = [];
  return {
    root,
    registry,
    containerd,
    image: `${SITE_REGISTRY}/${BROKER_REPOSITORY}@${registry.image.digest}`,
    async newNode({ withCa = true, account: pullAccount, ...options } = {}) {
      const node = await createContainerdNode({
        containerdSocket: containerd.socket,
        dir: await mkdtemp(join(root, "node-")),
        registriesYaml: registriesYaml(registry, withCa, pullAccount),
        backoff: BACKOFF,
        pullTimeoutMs: 30_000,
        ...options,
      });
      nodes.push(node);
      return node;
    },
    async newCluster(node) {
      const cluster = new MemoryCluster({ node });
      clusters.push(cluster);
      await cluster.apply(
        { apiVersion: "v1", kind: "Namespace", metadata: { name: NAMESPACE } },
        { fieldManager: "test" },
      );
      return cluster;
    },
    /** Closes everything; fails if a node left anything of its own (containerd objects, mounts, cgroups, links, namespaces). */
    async close() {
      for (const cluster of clusters) cluster.close();
      const left: string[] = [];
      for (const node of nodes) {
        await node.close();
        const leftovers = (Object.entries(await node.leftovers()) as [string, string[]][]).filter(
          ([, items]) => items.length > 0,
        );
        const { links, netns } = hostState(root);
        const named = [...links, ...netns].filter((name) => name.startsWith(node.prefix));
        if (leftovers.length > 0 || named.length > 0)
          left.push(`${node.prefix}: ${JSON.stringify({ leftovers, named })}`);
      }
      await containerd.stop();
      await registry.close();
      await rm(root, { recursive: true, force: true });
      if (left.length > 0) throw new Error(`nodes left what they made:\n${left.join("\n")}`);
    },
  };
}

/** Host state outside any node's prefix: links, network namespaces, mounts not under `root`. */
export function hostState(root: string): { links: string[]; netns: string[]; mounts: string[] } {
  const lines = (command: string, args: string[]): string[] =>
    execFileSync(command, args, { encoding: "utf8" })
      .split("\n")
      .filter((line) => line !== "");
  return {
    links: lines("ip", ["-o", "link", "show"])
      .map((line) => line.split(":")[1]!.trim().split("@")[0]!)
      .sort(),
    netns: lines("ip", ["netns", "list"])
      .map((line) => line.split(" ")[0]!)
      .sort(),
    mounts: lines("cat", ["/proc/self/mountinfo"])
      .map((line) => line.split(" ")[4]!)
      .filter((point) => !point.startsWith(`${root}/`))
      .sort(),
  };
}

export interface BrokerOptions {
  name: string;
  image: string;
  args?: string[];
  readinessPort?: number | string;
  /** Merged into the pod spec. */
  pod?: Record<string, unknown>;
  /** Merged into the container. */
  container?: Record<string, unknown>;
}

/** A one-replica StatefulSet of the broker image, non-root on a read-only root, probed on /healthz. */
export function brokerSet(options: BrokerOptions): ClusterObject {
  const labels = { app: options.name };
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: options.name, namespace: NAMESPACE },
    spec: {
      replicas: 1,
      serviceName: options.name,
      podManagementPolicy: "Parallel",
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          terminationGracePeriodSeconds: 5,
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000 },
          containers: [
            {
              name: "broker",
              image: options.image,
              ...(options.args === undefined ? {} : { args: options.args }),
              ports: [
                { name: "client", containerPort: 4222 },
                { name: "monitor", containerPort: 8222 },
              ],
              readinessProbe: {
                httpGet: { path: "/healthz", port: options.readinessPort ?? "monitor" },
                periodSeconds: 1,
                failureThreshold: 2,
              },
              securityContext: { readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } },
              ...options.container,
            },
          ],
          ...options.pod,
        },
      },
    },
  };
}

export function podRef(name: string): ObjectRef {
  return { apiVersion: "v1", kind: "Pod", name, namespace: NAMESPACE };
}

/** Polls the pod until `done` holds; a timeout names the last status seen. */
export async function podUntil(
  cluster: MemoryCluster,
  name: string,
  done: (pod: ClusterObject) => boolean,
  timeoutMs = WAIT_MS,
): Promise<ClusterObject> {
  let last: ClusterObject | undefined;
  try {
    await waitFor(
      async () => {
        last = await cluster.get(podRef(name));
        return last !== undefined && done(last);
      },
      timeoutMs,
      `pod ${name}`,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; last status: ${JSON.stringify(last?.status)}`, {
      cause: error,
    });
  }
  return last!;
}

export function containerOf(pod: ClusterObject): ContainerStatus | undefined {
  return (pod.status?.containerStatuses as ContainerStatus[] | undefined)?.[0];
}

export function isReady(pod: ClusterObject): boolean {
  const conditions = (pod.status?.conditions ?? []) as { type: string; status: string }[];
  return conditions.some((condition) => condition.type === "Ready" && condition.status === "True");
}

/** Every waiting reason the pod's container showed, in order, by watching it until `signal` aborts. */
export function watchReasons(cluster: MemoryCluster, name: string, signal: AbortSignal): string[] {
  const reasons: string[] = [];
  void cluster.watch(
    podRef(name),
    (pod) => {
      const reason = pod === undefined ? undefined : containerOf(pod)?.state.waiting?.reason;
      if (reason !== undefined && reasons.at(-1) !== reason) reasons.push(reason);
    },
    signal,
  );
  return reasons;
}

/** The PID of the pod's running task, from `ctr task ls` in the node's namespace. */
export async function taskPid(harness: NodeHarness, node: ContainerdNode, pod: string): Promise<number> {
  const tasks = (await harness.containerd.ctr(node.prefix, "tasks", "ls")).stdout.toString();
  const line = tasks
    .split("\n")
    .find((text) => text.startsWith(`${node.prefix}-${pod}-`) && /RUNNING/.test(text));
  if (line === undefined) throw new Error(`no running task of ${pod}:\n${tasks}`);
  return Number(line.split(/\s+/)[1]);
}

async function monitor<T>(cluster: MemoryCluster, namespace: string, pod: string, path: string): Promise<T> {
  const found = await cluster.get({ apiVersion: "v1", kind: "Pod", name: pod, namespace });
  const response = await fetch(`http://${found?.status?.podIP as string}:8222/${path}`, {
    signal: AbortSignal.timeout(5_000),
  });
  return (await response.json()) as T;
}

/** Whether msgbroker-0 and msgbroker-1 in `namespace` each list a route to the other's server id (their /routez). */
export async function brokersRouted(cluster: MemoryCluster, namespace: string): Promise<boolean> {
  const pods = ["msgbroker-0", "msgbroker-1"];
  const varz = await Promise.all(
    pods.map((pod) => monitor<{ server_id: string }>(cluster, namespace, pod, "varz")),
  );
  const routez = await Promise.all(
    pods.map((pod) => monitor<{ routes: { remote_id: string }[] | null }>(cluster, namespace, pod, "routez")),
  );
  return (
    (routez[0]!.routes ?? []).some((route) => route.remote_id === varz[1]!.server_id) &&
    (routez[1]!.routes ?? []).some((route) => route.remote_id === varz[0]!.server_id)
  );
}
