// The demo's legs on a real node, as an operator sees them. The site is the one the install proof
// uses (scripts/node-site.mjs): `airlock install` of the signed sample into a temporary host root
// with the stand-in k3s, the cluster a MemoryCluster on the containerd node that reads the very
// registries.yaml install wrote, so containerd pulls both brokers from the registry install runs
// (airlock.service, `airlock serve`) over TLS with the pull account; a NATS client round trip
// through the client Service's name; `airlock status`. Then upgrades (demoUpgrades): one scheduled
// a few seconds ahead that the running `airlock serve` carries out behind its gates while a client
// sends requests, and a broken one that rolls back by itself.
import { Buffer } from "node:buffer";
import { open, readFile, stat, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freeLoopbackPort, startNodeSite } from "./node-site.mjs";
import { loadNatsTraffic } from "./nats-traffic.mjs";
import { buildMsgbrokerImage } from "./msgbroker-image.mjs";

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

/** The sample's bundle.yaml as `version`, upgrading from the version before it, its broker from `brokerSource`. */
async function nextSpec(sampleSpec, { version, from, brokerSource }) {
  const text = (await readFile(sampleSpec, "utf8"))
    .replace(/^version: .*$/m, `version: ${version}`)
    .replace(/^upgradeFrom: .*$/m, `upgradeFrom: ">=${from} <${version}"`)
    .replace(
      /^(\s+- ref: hubble\/msgbroker):.*\n\s+source: .*$/m,
      `$1:${version}\n    source: ${brokerSource}`,
    );
  const file = join(dirname(sampleSpec), `bundle-${version}.yaml`);
  await writeFile(file, text);
  return file;
}

/**
 * Follows the daemon's log (the unit's JSON lines) from its current end: prints each scheduler and
 * upgrade line as it is written, and resolves `until(pattern)` with the first later line matching.
 */
async function followDaemonLog(file, log) {
  let offset = (await stat(file)).size;
  let partial = "";
  const lines = [];
  let stopped = false;
  const poll = async () => {
    while (!stopped) {
      const handle = await open(file);
      const { size } = await handle.stat();
      if (size > offset) {
        const buffer = Buffer.alloc(size - offset);
        await handle.read(buffer, 0, buffer.length, offset);
        offset = size;
        const chunk = (partial + buffer.toString("utf8")).split("\n");
        partial = chunk.pop();
        for (const line of chunk.filter((text) => text.startsWith("{")).map((text) => JSON.parse(text))) {
          if (!/^(scheduler|upgrade): /.test(line.msg ?? "")) continue;
          lines.push(line.msg);
          log(`  [airlock serve ${new Date(line.time).toISOString().slice(11, 23)}] ${line.msg}`);
        }
      }
      await handle.close();
      await sleep(200);
    }
  };
  const polling = poll();
  return {
    async until(pattern, timeoutMs) {
      for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(200)) {
        const found = lines.find((line) => pattern.test(line));
        if (found !== undefined) return found;
      }
      throw new Error(`airlock serve logged nothing matching ${pattern} within ${timeoutMs / 1000} s`);
    },
    async stop() {
      stopped = true;
      await polling;
    },
  };
}

/** Request/reply through the client Service while `during` runs; the fewest Ready brokers sampled on each request. */
async function underTraffic(site, log, during) {
  let fewestReady = Infinity;
  const traffic = await site.nats.startTraffic({
    service: CLIENT_SERVICE,
    podHost: (ordinal) => `msgbroker-${ordinal}.msgbroker-headless.${PLANE}.svc.cluster.local`,
    replicas: 2,
    port: 4222,
    tls: site.tls,
    resolve: (name) => site.node.resolve(name),
    onTick: async () => {
      const ready = (await brokerPods(site.cluster)).filter((pod) => pod.ready).length;
      fewestReady = Math.min(fewestReady, ready);
    },
  });
  log(`  a NATS client sends a request every 25 ms through ${CLIENT_SERVICE}, answered on the other broker`);
  const outcome = await during().then(
    () => undefined,
    (error) => error,
  );
  const report = await traffic.stop();
  log(
    `  the client: ${report.sent} requests, ${report.unanswered.length} unanswered, longest gap ${report.longestGapMs} ms ` +
      `(${report.retries} retries, ${report.crossed} answered across brokers); fewest brokers Ready at once: ${fewestReady}`,
  );
  if (outcome !== undefined) throw outcome;
  if (report.unanswered.length > 0) throw new Error(`${report.unanswered.length} requests went unanswered`);
}

function describePods(pods) {
  return pods.map(
    (pod) => `${pod.name} ${pod.version} (${pod.revision}, ${pod.ready ? "Ready" : "not ready"})`,
  );
}

/** The plan's id from `airlock upgrade plan`'s first line. */
function planId(printed) {
  const match = /^plan (\d+):/m.exec(printed);
  if (match === null) throw new Error(`no plan id in:\n${printed}`);
  return match[1];
}

/**
 * The upgrade leg on the installed site: 4.5.1 (the real broker, packed again as a new image)
 * planned, scheduled a few seconds ahead and carried out by the running `airlock serve` under
 * traffic; then a broken 4.5.2, whose broker image carries no nats-server, run, its first pod's
 * gate failing and the run rolling back by itself; `airlock upgrade history`.
 */
export async function demoUpgrades({ step, log, airlock, site, sampleSpec, layout, key }) {
  const { dataDir, env } = site;
  /** The signed bundle of the sample as `version`, upgrading from `from`, its broker image from `tag` of the layout. */
  const bundleOf = async (version, from, tag) => {
    const spec = await nextSpec(sampleSpec, {
      version,
      from,
      brokerSource: `oci:../layout:hubble/msgbroker:${tag}`,
    });
    const out = spec.replace(/\.yaml$/, ".airlock.tar");
    await airlock(env, ["bundle", "build", "-f", spec, "-o", out, "--sign-key", key]);
    return out;
  };
  step("Vendor: the next release, 4.5.1 (its broker image built again, so a new digest to pull)");
  await buildMsgbrokerImage({ out: layout, ref: "hubble/msgbroker:4.5.1", created: "2026-11-20T00:00:00Z" });
  const good = await bundleOf("4.5.1", "4.5.0", "4.5.1");

  step("Site: plan 4.5.1 and schedule it a few seconds ahead; the running airlock serve carries it out");
  const plan = planId(await airlock(env, ["--data-dir", dataDir, "upgrade", "plan", "--bundle", good]));
  const daemonLog = await followDaemonLog(site.unitLog("airlock.service"), log);
  try {
    // --at takes whole seconds.
    const at = new Date(Date.now() + 12_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    await airlock(env, ["--data-dir", dataDir, "upgrade", "schedule", plan, "--at", at]);
    let ran;
    await underTraffic(site, log, async () => {
      ran = await daemonLog.until(new RegExp(`^scheduler: run \\d+ of plan ${plan}: `), 240_000);
    });
    if (!/: done$/.test(ran)) throw new Error(`the scheduled run did not upgrade: ${ran}`);
  } finally {
    await daemonLog.stop();
  }
  const upgraded = await waitForPods(
    site.cluster,
    (pods) => pods.length === 2 && pods.every((pod) => pod.ready && pod.version === "4.5.1"),
    "both brokers Ready on 4.5.1",
  );
  log(`  now: ${describePods(upgraded).join("; ")}`);

  step("Vendor: a broken 4.5.2, whose broker image carries no nats-server (its container cannot start)");
  const broken = await bundleOf("4.5.2", "4.5.1", "4.4.0");
  step("Site: plan 4.5.2 and run it now: msgbroker-1's gate fails, the run rolls back by itself");
  const brokenPlan = planId(
    await airlock(env, ["--data-dir", dataDir, "upgrade", "plan", "--bundle", broken]),
  );
  await underTraffic(site, log, () =>
    airlock(
      env,
      ["--data-dir", dataDir, "upgrade", "run", brokenPlan, "--pod-timeout", "20s", "--settle", "1s"],
      { exitCode: 1, stderr: true },
    ),
  );
  const back = await waitForPods(
    site.cluster,
    (pods) =>
      pods.length === 2 &&
      pods.every((pod) => pod.ready && pod.version === "4.5.1" && pod.revision === upgraded[0].revision),
    "both brokers back on 4.5.1's revision",
  );
  log(`  both back on the previous revision: ${describePods(back).join("; ")}`);
  await airlock(env, ["--data-dir", dataDir, "upgrade", "history"]);
  await airlock(env, ["--data-dir", dataDir, "status"]);
}
