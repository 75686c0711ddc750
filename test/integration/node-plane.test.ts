/**
 * The rendered management plane on the containerd node (issue 12, point 7 a, b, f): render's objects,
 * unchanged, applied by applyRelease to MemoryCluster; two msgbroker pods pulled from Airlock's
 * registry over TLS start in their own network namespaces, pass their probes, form their TLS route
 * under their StatefulSet DNS names, and carry a TLS client's message from one to the other; a
 * deleted pod's client fails over and the pod rejoins; a third replica joins the route, and a client
 * that knows only msgbroker-0's name learns of it (INFO connect_urls) and fails over without being
 * told any other address; the client Service's name resolves, in the pods and on the host, to the
 * Ready brokers only.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyRelease, type ClusterObject, type MemoryCluster } from "../../installer/cluster/index.js";
import type { ContainerdNode } from "../../installer/cluster/node/index.js";
import { issueClientCertificate, openPki } from "../../installer/pki/index.js";
import { render } from "../../manifests/index.js";
import { waitFor } from "../helpers/fixtures.js";
import { NatsClient } from "../helpers/nats-client.js";
import { isReady, startNodeHarness, type NodeHarness } from "../helpers/node-cluster.js";
import { BROKER_TAG } from "../helpers/node-registry.js";
import { nodeImages } from "../helpers/node-releases.js";
import { issueBroker } from "../unit/manifests/plane-fixtures.js";

const PLANE = "hubble-system";
const RELEASE = "mgmt";
const SERVER_NAME = `msgbroker.${PLANE}.svc`;
/** The client Service's name as a pod dials it, and a broker pod's stable name. */
const CLIENT_SERVICE = `msgbroker.${PLANE}.svc.cluster.local`;
const podHost = (ordinal: number): string =>
  `msgbroker-${ordinal}.msgbroker-headless.${PLANE}.svc.cluster.local`;

let harness: NodeHarness;
let node: ContainerdNode;
let cluster: MemoryCluster;
/** The plane as rendered with its default 2 replicas, and with 3. */
let objects: ReturnType<typeof render>;
let scaled: ReturnType<typeof render>;
const clients: NatsClient[] = [];

interface Routez {
  server_id: string;
  num_routes: number;
  routes: { remote_id: string; ip: string; port: number }[] | null;
}

async function monitor<T>(ip: string, path: string): Promise<T | undefined> {
  const response = await fetch(`http://${ip}:8222/${path}`, { signal: AbortSignal.timeout(5_000) }).catch(
    () => undefined,
  );
  return response?.status === 200 ? ((await response.json()) as T) : undefined;
}

/** What a client of the site trusts and presents. */
async function siteTls(): Promise<{ ca: string; cert: string; key: string }> {
  const pki = openPki(join(harness.root, "site"));
  const client = await issueClientCertificate(pki, "node-plane-test");
  return {
    ca: await readFile(pki.caFile, "utf8"),
    cert: await readFile(client.certFile, "utf8"),
    key: await readFile(client.keyFile, "utf8"),
  };
}

/** The IPv4 addresses glibc gives `name` with the pod's /etc/hosts (files only answer: the name is in it). */
function resolveInPod(pod: string, name: string): string[] {
  const file = node.hostsFileOf(PLANE, pod);
  if (file === undefined) throw new Error(`${pod} has no hosts file`);
  const script = `mount --bind "$0" /etc/hosts && getent ahostsv4 "$1"`;
  const result = spawnSync(
    "unshare",
    ["--mount", "--propagation", "private", "sh", "-c", script, file, name],
    {
      encoding: "utf8",
    },
  );
  // getent's 2: the name is not there (as in a file caught between its truncation and its write).
  if (result.status === 2) return [];
  if (result.status !== 0) throw new Error(`getent in ${pod}'s mounts failed: ${result.stderr}`);
  const lines = result.stdout.split("\n").filter((line) => /STREAM/.test(line));
  return [...new Set(lines.map((line) => line.split(/\s+/)[0]!))];
}

/** Polls until `pod`'s /etc/hosts gives `name` exactly `ips`; a timeout shows the file. */
async function podResolvesTo(pod: string, name: string, ips: string[]): Promise<void> {
  const wanted = [...ips].sort().join();
  try {
    await waitFor(
      () => Promise.resolve(resolveInPod(pod, name).sort().join() === wanted),
      10_000,
      `${name} in ${pod}'s /etc/hosts to be ${wanted}`,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}; the file:\n${hostsText(pod)}`, { cause: error });
  }
}

function hostsText(pod: string): string {
  const file = node.hostsFileOf(PLANE, pod);
  return file === undefined ? "(none)" : readFileSync(file, "utf8");
}

async function podIp(name: string): Promise<string> {
  const pod = await cluster.get({ apiVersion: "v1", kind: "Pod", name, namespace: PLANE });
  expect(pod !== undefined && isReady(pod), JSON.stringify(pod?.status)).toBe(true);
  return pod!.status!.podIP as string;
}

beforeAll(async () => {
  harness = await startNodeHarness();
}, 120_000);

afterAll(async () => {
  for (const client of clients) client.close();
  await harness?.close();
}, 120_000);

describe("the rendered plane on the containerd node", () => {
  it("runs two brokers that pass their probes, route to each other over TLS and carry a client's message", async () => {
    node = await harness.newNode();
    cluster = await harness.newCluster(node);
    const dataDir = join(harness.root, "site");
    const certificates = (await issueBroker(dataDir, { replicas: 2 })).pems;
    const images = nodeImages(harness, [BROKER_TAG]);
    objects = render({}, images, { release: RELEASE, version: BROKER_TAG, certificates });
    scaled = render({ msgbroker: { replicas: 3 } }, images, {
      release: RELEASE,
      version: BROKER_TAG,
      certificates,
    });
    const started = Date.now();
    await applyRelease(cluster, objects as unknown as ClusterObject[], {
      release: RELEASE,
      timeoutMs: 120_000,
    });
    const rolloutMs = Date.now() - started;
    const [ip0, ip1] = [await podIp("msgbroker-0"), await podIp("msgbroker-1")];
    expect(ip0).not.toBe(ip1);
    // The node registered as a kubelet would: Ready, at its bridge's address, with containerd's version.
    const registered = await cluster.get({ apiVersion: "v1", kind: "Node", name: "airlock-node" });
    expect(registered?.status).toMatchObject({
      conditions: [{ type: "Ready", status: "True" }],
      addresses: [{ type: "InternalIP", address: node.network.gateway }, { type: "Hostname" }],
    });
    expect(
      (registered?.status?.nodeInfo as { containerRuntimeVersion: string }).containerRuntimeVersion,
    ).toMatch(/^containerd:\/\/\d+\.\d+/);

    // Each lists the other as its route, dialled by StatefulSet DNS name over mutual TLS.
    await waitFor(
      async () => {
        const [r0, r1] = [await monitor<Routez>(ip0, "routez"), await monitor<Routez>(ip1, "routez")];
        return (
          r0 !== undefined &&
          r1 !== undefined &&
          (r0.routes ?? []).some((route) => route.remote_id === r1.server_id) &&
          (r1.routes ?? []).some((route) => route.remote_id === r0.server_id)
        );
      },
      60_000,
      "the brokers' routes to each other",
    );

    const pki = openPki(dataDir);
    const client = await issueClientCertificate(pki, "node-plane-test");
    const tls = {
      ca: await readFile(pki.caFile, "utf8"),
      cert: await readFile(client.certFile, "utf8"),
      key: await readFile(client.keyFile, "utf8"),
    };
    const subscriber = await NatsClient.connect({
      servers: [{ host: ip0, port: 4222, servername: SERVER_NAME }],
      tls,
    });
    const publisher = await NatsClient.connect({
      servers: [{ host: ip1, port: 4222, servername: SERVER_NAME }],
      tls,
    });
    clients.push(subscriber, publisher);
    expect(subscriber.info.server_name).toBe("msgbroker-0");
    expect(publisher.info.server_name).toBe("msgbroker-1");
    const sid = subscriber.subscribe("plane.test");
    await subscriber.flush();
    // The subscription reaches msgbroker-1 over the route before the message is published there.
    await waitFor(
      async () => {
        const subsz = await monitor<{ num_subscriptions: number }>(ip1, "subsz");
        return (subsz?.num_subscriptions ?? 0) > 0;
      },
      20_000,
      "msgbroker-1 to learn of the subscription on msgbroker-0",
    );
    publisher.publish("plane.test", "across the route");
    await publisher.flush();
    expect((await subscriber.nextMessage(sid)).payload.toString()).toBe("across the route");
    expect(rolloutMs).toBeLessThan(120_000);
  }, 240_000);

  it("deleting msgbroker-1 stops it as a kubelet would: its client fails over, the pod comes back and rejoins the route", async () => {
    const [ip0, ip1] = [await podIp("msgbroker-0"), await podIp("msgbroker-1")];
    const pki = openPki(join(harness.root, "site"));
    const client = await issueClientCertificate(pki, "node-plane-test");
    const tls = {
      ca: await readFile(pki.caFile, "utf8"),
      cert: await readFile(client.certFile, "utf8"),
      key: await readFile(client.keyFile, "utf8"),
    };
    const subscriber = await NatsClient.connect({
      servers: [{ host: ip0, port: 4222, servername: SERVER_NAME }],
      tls,
    });
    const publisher = await NatsClient.connect({
      servers: [
        { host: ip1, port: 4222, servername: SERVER_NAME },
        { host: ip0, port: 4222, servername: SERVER_NAME },
      ],
      tls,
    });
    clients.push(subscriber, publisher);
    expect(publisher.info.server_name).toBe("msgbroker-1");
    const sid = subscriber.subscribe("plane.failover");
    await subscriber.flush();
    const before = await cluster.get({
      apiVersion: "v1",
      kind: "Pod",
      name: "msgbroker-1",
      namespace: PLANE,
    });

    await cluster.delete({ apiVersion: "v1", kind: "Pod", name: "msgbroker-1", namespace: PLANE });
    await publisher.waitForReconnect(1);
    expect(publisher.info.server_name).toBe("msgbroker-0");
    publisher.publish("plane.failover", "after failover");
    await publisher.flush();
    expect((await subscriber.nextMessage(sid)).payload.toString()).toBe("after failover");

    // The controller recreates the pod once the old one is gone; it routes to msgbroker-0 again.
    let ip = "";
    await waitFor(
      async () => {
        const pod = await cluster.get({
          apiVersion: "v1",
          kind: "Pod",
          name: "msgbroker-1",
          namespace: PLANE,
        });
        if (pod === undefined || pod.metadata.uid === before?.metadata.uid || !isReady(pod)) return false;
        ip = pod.status!.podIP as string;
        return true;
      },
      120_000,
      "msgbroker-1 recreated and Ready",
    );
    await waitFor(
      async () => {
        const [r0, r1] = [await monitor<Routez>(ip0, "routez"), await monitor<Routez>(ip, "routez")];
        return (
          r0 !== undefined &&
          r1 !== undefined &&
          (r0.routes ?? []).some((route) => route.remote_id === r1.server_id)
        );
      },
      60_000,
      "msgbroker-0's route to the new msgbroker-1",
    );
  }, 240_000);

  it("scaled 2 → 3 by applyRelease, the third broker joins the route of both others and is announced to a client of msgbroker-0", async () => {
    const tls = await siteTls();
    // The client knows msgbroker-0's stable name only; the cluster tells it of the others.
    const watcher = await NatsClient.connect({
      servers: [{ host: podHost(0), port: 4222 }],
      tls,
      discover: true,
      resolve: (name) => node.resolve(name),
      reconnectTimeMs: 60_000,
    });
    clients.push(watcher);
    expect(watcher.info.server_name).toBe("msgbroker-0");
    expect(watcher.info.connect_urls).toContain(`${podHost(1)}:4222`);
    expect(watcher.info.connect_urls).not.toContain(`${podHost(2)}:4222`);

    await applyRelease(cluster, scaled as unknown as ClusterObject[], {
      release: RELEASE,
      timeoutMs: 180_000,
    });
    const ips = [await podIp("msgbroker-0"), await podIp("msgbroker-1"), await podIp("msgbroker-2")];
    await waitFor(
      async () => {
        const all = await Promise.all(ips.map((ip) => monitor<Routez>(ip, "routez")));
        if (all.some((routez) => routez === undefined)) return false;
        // Every broker routes to both others.
        return all.every((routez, i) =>
          all.every(
            (other, j) =>
              i === j || (routez!.routes ?? []).some((route) => route.remote_id === other!.server_id),
          ),
        );
      },
      60_000,
      "a full mesh of routes between the three brokers",
    );
    const sts = await cluster.get({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      name: "msgbroker",
      namespace: PLANE,
    });
    expect(sts?.status).toMatchObject({ replicas: 3, readyReplicas: 3, updatedReplicas: 3 });
    await waitFor(
      () => Promise.resolve((watcher.info.connect_urls ?? []).includes(`${podHost(2)}:4222`)),
      30_000,
      "msgbroker-0 to announce msgbroker-2 in INFO connect_urls",
    );
    expect(watcher.servers.map((server) => server.host).sort()).toEqual([0, 1, 2].map(podHost));

    // The client Service's name: every Ready broker, in a pod's /etc/hosts and on the host alike.
    expect(node.resolve(CLIENT_SERVICE)).toEqual(ips);
    // The pods' files are rewritten asynchronously after each change.
    await podResolvesTo("msgbroker-1", CLIENT_SERVICE, ips);
    const viaService = await NatsClient.connect({
      servers: [{ host: CLIENT_SERVICE, port: 4222 }],
      tls,
      resolve: (name) => node.resolve(name),
    });
    clients.push(viaService);
    const sid = watcher.subscribe("plane.service");
    await watcher.flush();
    await waitFor(
      async () =>
        (await Promise.all(ips.map((ip) => monitor<{ num_subscriptions: number }>(ip, "subsz")))).every(
          (subsz) => (subsz?.num_subscriptions ?? 0) > 0,
        ),
      20_000,
      "every broker to learn of the subscription",
    );
    viaService.publish("plane.service", "through the client Service name");
    await viaService.flush();
    expect((await watcher.nextMessage(sid)).payload.toString()).toBe("through the client Service name");

    // msgbroker-0 goes: out of the Service's names at once, and its client moves on to a broker it
    // only learnt of from the cluster.
    await cluster.delete({ apiVersion: "v1", kind: "Pod", name: "msgbroker-0", namespace: PLANE });
    expect(node.resolve(CLIENT_SERVICE)).toEqual(ips.slice(1));
    await podResolvesTo("msgbroker-1", CLIENT_SERVICE, ips.slice(1));
    // Lame duck: the broker closes its clients after its 10 s grace, within its 30 s duration.
    await watcher.waitForReconnect(1, 90_000);
    expect(["msgbroker-1", "msgbroker-2"]).toContain(watcher.info.server_name);
    expect(watcher.server.host).not.toBe(podHost(0));
    // A new client of the Service's name (msgbroker-1 or -2 now) reaches the watcher where it is.
    const after = await NatsClient.connect({
      servers: [{ host: CLIENT_SERVICE, port: 4222 }],
      tls,
      resolve: (name) => node.resolve(name),
    });
    clients.push(after);
    expect(after.info.server_name).not.toBe("msgbroker-0");
    let received = "";
    // The watcher's re-sent subscription crosses the route in its own time: publish until it arrives.
    for (let attempt = 0; attempt < 20 && received === ""; attempt++) {
      after.publish("plane.service", "after msgbroker-0 left");
      await after.flush();
      received = await watcher.nextMessage(sid, 1_000).then(
        (message) => message.payload.toString(),
        () => "",
      );
    }
    expect(received).toBe("after msgbroker-0 left");
  }, 300_000);
});
