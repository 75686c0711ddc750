// The demo's legs on a real node, as an operator sees them. The site is the one the install proof
// uses (scripts/node-site.mjs): `airlock install` of the signed sample into a temporary host root
// with the stand-in k3s, the cluster a MemoryCluster on the containerd node that reads the very
// registries.yaml install wrote, so containerd pulls both brokers from the registry install runs
// (airlock.service, `airlock serve`) over TLS with the pull account; a NATS client round trip
// through the client Service's name; `airlock status`. Then upgrades (demoUpgrades): one scheduled
// a few seconds ahead that the running `airlock serve` carries out behind its gates while a client
// sends requests, and a broken one that rolls back by itself.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freeLoopbackPort, startNodeSite } from "./node-site.mjs";
import { loadNatsTraffic } from "./nats-traffic.mjs";

const PLANE = "hubble-system";
const NODE_NAME = "site-1";
const PULL_USER = "cluster-pull";
export const CLIENT_SERVICE = `msgbroker.${PLANE}.svc.cluster.local`;
const REVISION = "controller-revision-hash";
const VERSION = "app.kubernetes.io/version";

/** Each broker pod's name, IP, readiness, revision and version label. */
export async function brokerPods(cluster) {
  const pods = await cluster.list("v1", "Pod", { namespace: PLANE });
  return pods
    .filter((pod) => pod.metadata.name.startsWith("msgbroker-"))
    .map((pod) => ({
      name: pod.metadata.name,
      ip: pod.status?.podIP,
      ready: (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
      revision: pod.metadata.labels?.[REVISION],
      version: pod.metadata.labels?.[VERSION],
      image: pod.spec.containers[0].image,
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** The registry's request log lines (the unit's JSON log) for the broker's repository. */
async function brokerRequests(unitLog) {
  const text = await readFile(unitLog, "utf8");
  return text
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line))
    .filter((line) => line.msg === "request" && line.path?.startsWith("/v2/hubble/msgbroker/"));
}

/** A client certificate from the site CA (the brokers verify clients) as the NATS client takes it. */
async function clientTls(load, dataDir) {
  const { issueClientCertificate, openPki } = await load("installer/pki/index.js");
  const pki = openPki(dataDir);
  const issued = await issueClientCertificate(pki, "demo-client");
  const read = (file) => readFile(file, "utf8");
  return { ca: await read(pki.caFile), cert: await read(issued.certFile), key: await read(issued.keyFile) };
}

/** Publishes through the Service's name until the other client, on either broker, receives it (bounded). */
async function roundTrip(nats, node, tls) {
  const connect = () =>
    nats.NatsClient.connect({
      servers: [{ host: CLIENT_SERVICE, port: 4222 }],
      tls,
      resolve: (name) => node.resolve(name),
    });
  const [subscriber, publisher] = [await connect(), await connect()];
  try {
    const sid = subscriber.subscribe("demo.round-trip");
    await subscriber.flush();
    const started = Date.now();
    for (let attempt = 0; attempt < 20; attempt++) {
      publisher.publish("demo.round-trip", "hello through the client Service");
      await publisher.flush();
      const received = await subscriber.nextMessage(sid, 1_000).then(
        (message) => message.payload.toString(),
        () => undefined,
      );
      if (received !== undefined) return { received, ms: Date.now() - started };
    }
    throw new Error("no message came back through the client Service within 20 tries");
  } finally {
    subscriber.close();
    publisher.close();
  }
}

/**
 * Installs `bundle` onto the node site in `work`; resolves with what the upgrade leg needs (and
 * `close`). `airlock(env, args)` runs the built CLI and prints what it prints.
 */
export async function demoInstallOnNode({ step, log, airlock, load, work, bundle, pub }) {
  step("Site: airlock install onto a real node (stand-in k3s under a temporary host root)");
  const pulls = [];
  const site = await startNodeSite({
    work,
    load,
    nodeName: NODE_NAME,
    onEvent: (event) => event.step === "pull" && pulls.push(event),
  });
  try {
    log(
      `  the node: containerd ${site.socket}; it reads ${site.hostRoot}/etc/rancher/k3s/registries.yaml at its first pull`,
    );
    const dataDir = join(work, "airlock");
    const listen = `127.0.0.1:${await freeLoopbackPort()}`;
    const daemonPorts = [await freeLoopbackPort(), await freeLoopbackPort()];
    await airlock(site.env, [
      ...["--data-dir", dataDir, "install", "--bundle", bundle, "--key", pub],
      ...["--host-root", site.hostRoot, "--registry-listen", listen, "--node-name", NODE_NAME],
      ...[
        "--console-listen",
        `127.0.0.1:${daemonPorts[0]}`,
        "--health-listen",
        `127.0.0.1:${daemonPorts[1]}`,
      ],
      ...["--timeout", "3m"],
    ]);
    const registries = await readFile(join(site.hostRoot, "etc/rancher/k3s/registries.yaml"), "utf8");
    log("  /etc/rancher/k3s/registries.yaml as install wrote it (the node's containerd reads this file):");
    log(
      registries
        .replace(/password: .*/g, "password: …")
        .trimEnd()
        .replace(/^/gm, "    "),
    );
    for (const pod of await brokerPods(site.cluster))
      log(`  ${pod.name}  ${pod.ip}  ${pod.ready ? "Ready" : "not ready"}  ${pod.image}`);
    const pulled = (await brokerRequests(site.unitLog("airlock.service"))).filter(
      (line) => line.method === "GET" && line.status === 200,
    );
    const users = [...new Set(pulled.map((line) => line.user))];
    log(
      `  containerd pulled the broker from airlock serve over TLS (slowest pull ${Math.max(...pulls.map((event) => event.ms))} ms): ` +
        `${pulled.length} GETs answered 200, all to ${users.join(", ")}, the pull account in registries.yaml`,
    );
    if (users.length !== 1 || users[0] !== PULL_USER) throw new Error(`pulls as ${users.join(", ")}`);

    const nats = await loadNatsTraffic(join(work, "nats"));
    const tls = await clientTls(load, dataDir);
    const trip = await roundTrip(nats, site.node, tls);
    log(
      `  a NATS client of ${CLIENT_SERVICE}:4222 (TLS, site CA): "${trip.received}" came back in ${trip.ms} ms`,
    );
    await airlock(site.env, ["--data-dir", dataDir, "status"]);
    return { ...site, dataDir, nats, tls };
  } catch (error) {
    await site.close();
    throw error;
  }
}

/** Waits (bounded) until `done` holds of the broker pods. */
export async function waitForPods(cluster, done, what, timeoutMs = 120_000) {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline;) {
    const pods = await brokerPods(cluster);
    if (done(pods)) return pods;
    await sleep(200);
  }
  throw new Error(`${what} did not happen within ${timeoutMs / 1000} s`);
}
