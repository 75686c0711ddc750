/**
 * MemoryCluster's containerd node with real processes (issue 12): containerd of the test's own, runc,
 * and Airlock's registry over TLS serving the msgbroker image. Pods are pulled through the node's
 * registries.yaml, run as the pod spec says, probed on their own addresses, restarted with back-off,
 * and everything the node made is gone after close. Needs root, containerd, runc and ip: missing, it fails.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  MemoryCluster,
  type ClusterObject,
  type ContainerStatus,
  type ObjectRef,
} from "../../installer/cluster/index.js";
import { createContainerdNode, type ContainerdNode } from "../../installer/cluster/node/index.js";
import { startContainerd, type Containerd } from "../helpers/daemons.js";
import { waitFor } from "../helpers/fixtures.js";
import { BROKER_REPOSITORY, startNodeRegistry, type NodeRegistry } from "../helpers/node-registry.js";

/** The site registry name the rendered plane's images carry; registries.yaml points it at Airlock's. */
const SITE_REGISTRY = "registry.airlock.local:5443";
const NAMESPACE = "plane";
const WAIT_MS = 60_000;
const BACKOFF = { initialMs: 500, maxMs: 4_000 };

let root: string;
let registry: NodeRegistry;
let containerd: Containerd;
let image: string;
const nodes: ContainerdNode[] = [];
const clusters: MemoryCluster[] = [];

/** Host state outside any node's prefix: links, network namespaces, mounts not under the test's dir. */
function hostState(): { links: string[]; netns: string[]; mounts: string[] } {
  const links = execFileSync("ip", ["-o", "link", "show"], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.split(":")[1]?.trim().split("@")[0] ?? "")
    .filter((name) => name !== "");
  const netns = execFileSync("ip", ["netns", "list"], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.split(" ")[0]!)
    .filter((name) => name !== "");
  const mounts = execFileSync("cat", ["/proc/self/mountinfo"], { encoding: "utf8" })
    .split("\n")
    .map((line) => line.split(" ")[4] ?? "")
    .filter((point) => point !== "" && !point.startsWith(`${root}/`));
  return { links: links.sort(), netns: netns.sort(), mounts: mounts.sort() };
}

function registriesYaml(withCa: boolean): string {
  return [
    "mirrors:",
    `  "${SITE_REGISTRY}":`,
    "    endpoint:",
    `      - "https://${registry.host}"`,
    "configs:",
    `  "${registry.host}":`,
    ...(withCa ? ["    tls:", `      ca_file: "${registry.caFile}"`] : ["    auth: {}"]),
  ].join("\n");
}

async function newNode(withCa = true): Promise<ContainerdNode> {
  const node = await createContainerdNode({
    containerdSocket: containerd.socket,
    dir: await mkdtemp(join(root, "node-")),
    registriesYaml: registriesYaml(withCa),
    backoff: BACKOFF,
    pullTimeoutMs: 30_000,
  });
  nodes.push(node);
  return node;
}

async function newCluster(node: ContainerdNode): Promise<MemoryCluster> {
  const cluster = new MemoryCluster({ node });
  clusters.push(cluster);
  await cluster.apply(
    { apiVersion: "v1", kind: "Namespace", metadata: { name: NAMESPACE } },
    { fieldManager: "test" },
  );
  return cluster;
}

interface BrokerOptions {
  name: string;
  args?: string[];
  readinessPort?: number | string;
  extra?: Record<string, unknown>;
  container?: Record<string, unknown>;
}

function brokerSet(options: BrokerOptions): ClusterObject {
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
              image,
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
          ...options.extra,
        },
      },
    },
  };
}

function podRef(name: string): ObjectRef {
  return { apiVersion: "v1", kind: "Pod", name, namespace: NAMESPACE };
}

/** Polls the pod until `done` holds; the last state seen is in the failure. */
async function podUntil(
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

function containerOf(pod: ClusterObject): ContainerStatus | undefined {
  return (pod.status?.containerStatuses as ContainerStatus[] | undefined)?.[0];
}

function isReady(pod: ClusterObject): boolean {
  return (
    (pod.status?.conditions as { type: string; status: string }[] | undefined)?.some(
      (condition) => condition.type === "Ready" && condition.status === "True",
    ) === true
  );
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "airlock-node-it-"));
  registry = await startNodeRegistry(await mkdtemp(join(root, "registry-")));
  image = `${SITE_REGISTRY}/${BROKER_REPOSITORY}@${registry.image.digest}`;
  containerd = await startContainerd(await mkdtemp(join(root, "containerd-")));
}, 120_000);

afterAll(async () => {
  for (const cluster of clusters) cluster.close();
  for (const node of nodes) await node.close();
  await containerd?.stop();
  await registry?.close();
  await rm(root, { recursive: true, force: true });
}, 120_000);

describe("the containerd node", () => {
  it("pulls the broker through registries.yaml over TLS, runs it as the pod spec says, and its probe makes it Ready", async () => {
    const before = hostState();
    const node = await newNode();
    const cluster = await newCluster(node);
    await cluster.apply(
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "settings", namespace: NAMESPACE },
        data: { mode: "plain", "extra.conf": "# extra\n" },
      },
      { fieldManager: "test" },
    );
    await cluster.apply(
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "token", namespace: NAMESPACE },
        data: { token: Buffer.from("s3cret").toString("base64") },
      },
      { fieldManager: "test" },
    );
    await cluster.apply(
      brokerSet({
        name: "basic",
        extra: {
          volumes: [
            {
              name: "settings",
              configMap: {
                name: "settings",
                items: [{ key: "extra.conf", path: "conf/extra.conf", mode: 0o440 }],
              },
            },
            { name: "token", secret: { secretName: "token", defaultMode: 0o400 } },
            { name: "scratch", emptyDir: {} },
          ],
        },
        container: {
          env: [
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
            { name: "MODE", valueFrom: { configMapKeyRef: { name: "settings", key: "mode" } } },
            { name: "TOKEN", valueFrom: { secretKeyRef: { name: "token", key: "token" } } },
            { name: "ADVERTISE", value: "$(POD_NAME).basic:6222" },
          ],
          volumeMounts: [
            { name: "settings", mountPath: "/etc/extra" },
            { name: "token", mountPath: "/var/run/token" },
            { name: "scratch", mountPath: "/scratch" },
          ],
        },
      }),
      { fieldManager: "test" },
    );
    const pod = await podUntil(cluster, "basic-0", isReady);
    const ip = pod.status?.podIP as string;
    expect(ip).toMatch(/^198\.1[89]\./);
    expect(containerOf(pod)).toMatchObject({ ready: true, restartCount: 0, state: { running: {} } });
    const sts = await cluster.get({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      name: "basic",
      namespace: NAMESPACE,
    });
    expect(sts?.status?.readyReplicas).toBe(1);
    const health = await fetch(`http://${ip}:8222/healthz`);
    expect(await health.json()).toEqual({ status: "ok" });

    // The process as runc started it: its user, environment, files and read-only root.
    const pid = await brokerPid(node, "basic-0");
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(status).toMatch(/^CapEff:\s+0+$/m);
    const environ = (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0");
    expect(environ).toEqual(
      expect.arrayContaining([
        "POD_NAME=basic-0",
        `POD_IP=${ip}`,
        "MODE=plain",
        "TOKEN=s3cret",
        "ADVERTISE=basic-0.basic:6222",
      ]),
    );
    const rootView = `/proc/${pid}/root`;
    expect(await readFile(`${rootView}/etc/extra/conf/extra.conf`, "utf8")).toBe("# extra\n");
    expect((await stat(`${rootView}/etc/extra/conf/extra.conf`)).mode & 0o777).toBe(0o440);
    expect((await stat(`${rootView}/var/run/token/token`)).mode & 0o777).toBe(0o400);
    expect((await stat(`${rootView}/var/run/token/token`)).gid).toBe(1000);
    const mounts = await readFile(`/proc/${pid}/mountinfo`, "utf8");
    expect(mounts).toMatch(/^\S+ \S+ \S+ \S+ \/ ro[, ]/m);
    expect(mounts).toMatch(/ \/etc\/extra ro[, ]/);
    expect(mounts).toMatch(/ \/scratch rw[, ]/);
    expect(await readFile(`${rootView}/etc/hosts`, "utf8")).toMatch(
      new RegExp(`^${ip.replace(/\./g, "\\.")}\\s+basic-0\\.basic\\.plane\\.svc\\.cluster\\.local`, "m"),
    );

    // Deleted, the pod's container is stopped and removed before the controller brings a new one.
    await cluster.delete(podRef("basic-0"));
    await podUntil(cluster, "basic-0", (next) => next.metadata.uid !== pod.metadata.uid && isReady(next));

    cluster.close();
    await node.close();
    expect(await node.leftovers()).toEqual({
      containers: [],
      tasks: [],
      snapshots: [],
      images: [],
      mounts: [],
      cgroups: [],
    });
    expect(hostState()).toEqual(before);
    const namespaces = await containerd.ctr("default", "namespaces", "ls", "-q");
    expect(namespaces.stdout.toString().split("\n")).not.toContain(node.prefix);
  }, 180_000);
});

/** The broker's PID on the host, from `ctr task ls` in the node's namespace. */
async function brokerPid(node: ContainerdNode, pod: string): Promise<number> {
  const tasks = await containerd.ctr(node.prefix, "tasks", "ls");
  const line = tasks.stdout
    .toString()
    .split("\n")
    .find((text) => text.startsWith(`${node.prefix}-${pod}-`) && /RUNNING/.test(text));
  expect(line, tasks.stdout.toString()).toBeDefined();
  return Number(line!.split(/\s+/)[1]);
}
