// The demo's last leg: the plane on a real node. MemoryCluster (the test double of the API server
// and its controllers) with its containerd node: the rendered 2-replica plane is applied unchanged,
// containerd pulls the broker image from Airlock's registry over TLS through hosts.toml made from a
// k3s registries.yaml, and two real nats-servers start in their own network namespaces, pass their
// probes and route to each other; a deleted pod is stopped as a kubelet would and comes back. The
// setup (image, registry, containerd, broker certificates) is the node benchmarks' own.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startNodeBench } from "../bench/node-setup.mjs";

const PLANE = "hubble-system";
const { fetch, AbortSignal } = globalThis;

async function getJson(url) {
  const answer = await fetch(url, { signal: AbortSignal.timeout(3_000) });
  return answer.json();
}

/** Each pod's name, IP, readiness and uid. */
async function brokerPods(cluster) {
  const pods = await cluster.list("v1", "Pod", { namespace: PLANE });
  return pods
    .filter((pod) => pod.metadata.name.startsWith("msgbroker-"))
    .map((pod) => ({
      name: pod.metadata.name,
      uid: pod.metadata.uid,
      ip: pod.status?.podIP,
      ready: (pod.status?.conditions ?? []).some((c) => c.type === "Ready" && c.status === "True"),
    }))
    .sort((a, b) => a.name.localeCompare(b.name));
}

/** Whom each broker routes to, by pod name, from the brokers' own /varz and /routez. */
async function routesOf(pods) {
  const names = new Map();
  for (const pod of pods) names.set((await getJson(`http://${pod.ip}:8222/varz`)).server_id, pod.name);
  const routes = {};
  for (const pod of pods) {
    const { routes: list = [] } = await getJson(`http://${pod.ip}:8222/routez`);
    routes[pod.name] = list.map((route) => names.get(route.remote_id) ?? route.remote_id);
  }
  return routes;
}

/** Polls (bounded) until `done` holds of the broker pods; resolves with them. */
async function waitForPods(cluster, done, what) {
  for (let attempt = 0; attempt < 600; attempt++) {
    const pods = await brokerPods(cluster);
    if (done(pods)) return pods;
    await sleep(200);
  }
  throw new Error(`${what} did not happen within 2 minutes`);
}

export async function demoPlaneOnNode({ step, log }) {
  step("Test double: the plane on a real node (MemoryCluster's containerd node, real brokers)");
  const work = await mkdtemp(join(tmpdir(), "airlock-demo-node-"));
  const bench = await startNodeBench(work, [{ tag: "4.5.0" }]);
  let cluster;
  let node;
  try {
    const { MemoryCluster, applyRelease } = await bench.load("installer/cluster/index.js");
    const { createContainerdNode } = await bench.load("installer/cluster/node/index.js");
    const { render } = await bench.load("manifests/index.js");
    const { certificates, images, registriesYaml, socket } = bench;
    const steps = [];
    node = await createContainerdNode({
      containerdSocket: socket,
      dir: join(work, "node"),
      registriesYaml,
      onEvent: (event) => steps.push(event),
    });
    cluster = new MemoryCluster({ node });
    log("  registries.yaml the node reads (as k3s's agent does, turned into certs.d/<host>/hosts.toml):");
    log(registriesYaml.trimEnd().replace(/^/gm, "    "));
    const started = Date.now();
    const objects = render({}, images, { release: "mgmt", version: "4.5.0", certificates });
    await applyRelease(cluster, objects, { release: "mgmt", timeoutMs: 180_000 });
    const ms = (name) => Math.max(...steps.filter((event) => event.step === name).map((event) => event.ms));
    log(
      `  the plane rolled out in ${Date.now() - started} ms: pull ${ms("pull")} ms (containerd, over TLS), create ${ms("create")} ms, start → Ready ${ms("ready")} ms`,
    );
    const pods = await brokerPods(cluster);
    for (const pod of pods) log(`  ${pod.name}  ${pod.ip}  ${pod.ready ? "Ready" : "not ready"}`);
    for (const [name, peers] of Object.entries(await routesOf(pods)))
      log(`  ${name} routes to ${peers.join(", ") || "nobody"} (its /routez)`);

    const gone = pods.find((pod) => pod.name === "msgbroker-1");
    log("  delete msgbroker-1: its preStop lame duck, SIGTERM, then the controller makes it again");
    await cluster.delete({ apiVersion: "v1", kind: "Pod", name: gone.name, namespace: PLANE });
    const back = await waitForPods(
      cluster,
      (now) =>
        now.length === 2 &&
        now.every((pod) => pod.ready) &&
        now.some((pod) => pod.uid !== gone.uid && pod.name === gone.name),
      "msgbroker-1 back and Ready",
    );
    let rejoined = await routesOf(back);
    for (let attempt = 0; attempt < 150 && !rejoined["msgbroker-0"].includes("msgbroker-1"); attempt++) {
      await sleep(200);
      rejoined = await routesOf(back);
    }
    log(`  msgbroker-1 is back (${back[1].ip}); msgbroker-0 routes to ${rejoined["msgbroker-0"].join(", ")}`);
  } finally {
    cluster?.close();
    await node?.close();
    await bench.close();
  }
}
