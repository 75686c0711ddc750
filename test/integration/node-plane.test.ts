/**
 * The rendered management plane on the containerd node (issue 12, point 7 a, b, f): render's objects,
 * unchanged, applied by applyRelease to MemoryCluster; two msgbroker pods pulled from Airlock's
 * registry over TLS start in their own network namespaces, pass their probes, form their TLS route
 * under their StatefulSet DNS names, and carry a TLS client's message from one to the other; a
 * deleted pod's client fails over and the pod rejoins; a third replica joins the route.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BundleMetadata } from "../../bundle/index.js";
import { applyRelease, type ClusterObject, type MemoryCluster } from "../../installer/cluster/index.js";
import { issueClientCertificate, openPki } from "../../installer/pki/index.js";
import { render } from "../../manifests/index.js";
import { waitFor } from "../helpers/fixtures.js";
import { NatsClient } from "../helpers/nats-client.js";
import { isReady, startNodeHarness, type NodeHarness } from "../helpers/node-cluster.js";
import { BROKER_REPOSITORY, BROKER_TAG } from "../helpers/node-registry.js";
import { issueBroker } from "../unit/manifests/plane-fixtures.js";

const PLANE = "hubble-system";
const RELEASE = "mgmt";
const SERVER_NAME = `msgbroker.${PLANE}.svc`;

let harness: NodeHarness;
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
    const node = await harness.newNode();
    cluster = await harness.newCluster(node);
    const dataDir = join(harness.root, "site");
    const certificates = (await issueBroker(dataDir, { replicas: 2 })).pems;
    const images: BundleMetadata["images"] = [
      {
        ref: `${BROKER_REPOSITORY}:${BROKER_TAG}`,
        digest: harness.registry.image.digest as `sha256:${string}`,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        size: 1,
        totalBytes: 1,
        blobs: 2,
        platforms: [harness.registry.image.platform],
        kind: "image",
        sourceDigest: harness.registry.image.digest as `sha256:${string}`,
      },
    ];
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

  it("scaled 2 → 3 by applyRelease, the third broker joins the route of both others", async () => {
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
  }, 240_000);
});
