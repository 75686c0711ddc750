/**
 * The proof, end to end (issue 13, point 10): the signed sample bundle → the built `airlock install`
 * into a temporary host root with the stand-in k3s and systemctl, the cluster being a MemoryCluster
 * on the containerd node, whose registries.yaml is the very file install wrote under the host root
 * (the node reads it as k3s's agent does) → both broker pods pulled by containerd from Airlock's
 * registry (the unit install wrote, run for real) over TLS with the pull account, Ready and routed
 * to each other → a NATS message through the client Service's name → `airlock status` healthy.
 */
import { chmod, copyFile, readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, generateKeyPair } from "../../bundle/index.js";
import { MemoryCluster, type ClusterObject } from "../../installer/cluster/index.js";
import { createContainerdNode, type ContainerdNode } from "../../installer/cluster/node/index.js";
import { SITE_UNIT, type InstallResult, type SiteStatus } from "../../installer/install/index.js";
import { issueClientCertificate, openPki } from "../../installer/pki/index.js";
import { freePort, siteDaemonListenArgs, startContainerd, type Containerd } from "../helpers/daemons.js";
import { runCli, useFixtures, waitFor, type Fixtures } from "../helpers/fixtures.js";
import { NatsClient } from "../helpers/nats-client.js";
import { isReady } from "../helpers/node-cluster.js";
import { serveStandinClusterApi, type StandinClusterApi } from "../helpers/standin/cluster-api.js";
import { STANDIN_K3S, standinBin, standinEnv, stopStandinServices } from "../helpers/standin/index.js";

const NODE = "site-1";
const PLANE = "hubble-system";
const CLIENT_SERVICE = `msgbroker.${PLANE}.svc.cluster.local`;
const PULL_USER = "cluster-pull";
let fx: Fixtures;
let bundle: string;
let publicKey: string;
let containerd: Containerd;
let node: ContainerdNode;
let cluster: MemoryCluster;
let api: StandinClusterApi;
let hostRoot: string;
let dataDir: string;
let listen: string;
let env: NodeJS.ProcessEnv;
const clients: NatsClient[] = [];
const pulls: { pod: string; ms: number }[] = [];

interface RequestLine {
  msg: string;
  method: string;
  path: string;
  status: number;
  user: string;
}

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * 1024 * 1024 });
  const keys = await fx.dir("keys");
  ({ publicKey } = await generateKeyPair(join(keys, "vendor.key"), join(keys, "vendor.pub")));
  await copyFile(STANDIN_K3S, join(fx.sampleDir, "bin", "k3s"));
  await chmod(join(fx.sampleDir, "bin", "k3s"), 0o755);
  bundle = join(await fx.dir("work"), "mgmt.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: bundle, signKey: join(keys, "vendor.key") });

  hostRoot = await fx.dir("host");
  dataDir = join(await fx.dir("data"), "airlock");
  listen = `127.0.0.1:${await freePort()}`;
  containerd = await startContainerd(await fx.dir("containerd"));
  // The node is up before k3s is installed: it reads install's registries.yaml at its first pull.
  node = await createContainerdNode({
    containerdSocket: containerd.socket,
    dir: await fx.dir("node"),
    registriesFile: "/etc/rancher/k3s/registries.yaml",
    hostRoot,
    backoff: { initialMs: 500, maxMs: 4_000 },
    pullTimeoutMs: 60_000,
    onEvent: (event) => {
      if (event.step === "pull") pulls.push({ pod: event.pod, ms: event.ms });
    },
  });
  cluster = new MemoryCluster({ node, nodeName: NODE });
  api = await serveStandinClusterApi(cluster, await fx.dir("apiserver"));
  const standin = await fx.dir("standin");
  env = standinEnv(await standinBin(standin), hostRoot, join(standin, "calls.jsonl"), api.env);
}, 180_000);

afterAll(async () => {
  for (const client of clients) client.close();
  if (hostRoot !== undefined) await stopStandinServices(hostRoot);
  await api?.close();
  cluster?.close();
  await node?.close();
  const left = node === undefined ? {} : await node.leftovers();
  await containerd?.stop();
  await fx?.cleanup();
  expect(Object.values(left).flat()).toEqual([]);
}, 120_000);

async function brokerPod(name: string): Promise<ClusterObject> {
  const pod = await cluster.get({ apiVersion: "v1", kind: "Pod", name, namespace: PLANE });
  if (pod === undefined) throw new Error(`no pod ${name}`);
  return pod;
}

async function routez(ip: string): Promise<{ server_id: string; routes: { remote_id: string }[] | null }> {
  const answer = await fetch(`http://${ip}:8222/routez`, { signal: AbortSignal.timeout(5_000) });
  return (await answer.json()) as { server_id: string; routes: { remote_id: string }[] | null };
}

describe("the proof: airlock install from the bundle to a healthy plane on containerd", () => {
  it("installs k3s's configuration, serves the registry and runs both brokers pulled from it", async () => {
    const result = await runCli(
      [
        ...["--data-dir", dataDir, "--json", "install", "--bundle", bundle, "--key", publicKey],
        ...["--host-root", hostRoot, "--registry-listen", listen, "--node-name", NODE, "--timeout", "3m"],
        ...(await siteDaemonListenArgs()),
      ],
      { env },
    );
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as InstallResult;
    expect(report.outcome).toBe("installed");
    expect(report.steps.map((step) => step.outcome)).toEqual(report.steps.map(() => "done"));

    for (const name of ["msgbroker-0", "msgbroker-1"]) {
      const pod = await brokerPod(name);
      expect(isReady(pod), JSON.stringify(pod.status)).toBe(true);
      const image = (pod.spec as { containers: { image: string }[] }).containers[0]!.image;
      expect(image).toMatch(new RegExp(`^${listen.replace(/\./g, "\\.")}/hubble/msgbroker@sha256:`));
    }
    // containerd pulled the image once (the two pods share it), and holds it under the registry's name.
    expect(pulls.length).toBeGreaterThanOrEqual(1);
    const images = (await containerd.ctr(node.prefix, "images", "ls", "-q")).stdout.toString();
    expect(images).toContain(`${listen}/hubble/msgbroker@sha256:`);

    // The registry the unit runs served every manifest and blob of the pull to the pull account.
    const log = await readFile(join(hostRoot, "run/systemd/standin", `${SITE_UNIT}.log`), "utf8");
    const requests = log
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .map((line) => JSON.parse(line) as RequestLine)
      .filter((line) => line.msg === "request" && line.path.startsWith("/v2/hubble/msgbroker/"));
    const pulled = requests.filter((line) => line.method === "GET" && line.status === 200);
    expect(pulled.some((line) => line.path.includes("/manifests/"))).toBe(true);
    expect(pulled.some((line) => line.path.includes("/blobs/"))).toBe(true);
    expect(new Set(pulled.map((line) => line.user))).toEqual(new Set([PULL_USER]));
  }, 300_000);

  it("the brokers route to each other, and a client of the Service's name carries a message", async () => {
    const ips = [
      (await brokerPod("msgbroker-0")).status!.podIP as string,
      (await brokerPod("msgbroker-1")).status!.podIP as string,
    ];
    await waitFor(
      async () => {
        const [r0, r1] = [await routez(ips[0]!), await routez(ips[1]!)];
        return (
          (r0.routes ?? []).some((route) => route.remote_id === r1.server_id) &&
          (r1.routes ?? []).some((route) => route.remote_id === r0.server_id)
        );
      },
      60_000,
      "the brokers' routes to each other",
    );
    expect(node.resolve(CLIENT_SERVICE).sort()).toEqual([...ips].sort());

    const pki = openPki(dataDir);
    const certificate = await issueClientCertificate(pki, "install-proof");
    const tls = {
      ca: await readFile(pki.caFile, "utf8"),
      cert: await readFile(certificate.certFile, "utf8"),
      key: await readFile(certificate.keyFile, "utf8"),
    };
    const connect = async (): Promise<NatsClient> => {
      const client = await NatsClient.connect({
        servers: [{ host: CLIENT_SERVICE, port: 4222 }],
        tls,
        resolve: (name) => node.resolve(name),
      });
      clients.push(client);
      return client;
    };
    const [subscriber, publisher] = [await connect(), await connect()];
    const sid = subscriber.subscribe("proof.round-trip");
    await subscriber.flush();
    let received = "";
    // Each client may be on either broker: the subscription crosses the route in its own time.
    for (let attempt = 0; attempt < 20 && received === ""; attempt++) {
      publisher.publish("proof.round-trip", "through the client Service's name");
      await publisher.flush();
      received = await subscriber.nextMessage(sid, 1_000).then(
        (message) => message.payload.toString(),
        () => "",
      );
    }
    expect(received).toBe("through the client Service's name");
  }, 120_000);

  it("airlock status is healthy and shows each broker's route to the other", async () => {
    const result = await runCli(["--data-dir", dataDir, "--json", "status"]);
    expect(result.code, result.stderr).toBe(0);
    const status = JSON.parse(result.stdout) as SiteStatus;
    expect(status.healthy).toBe(true);
    expect(status.problems).toEqual([]);
    expect(status.plane?.msgbroker).toMatchObject({ ready: 2, desired: 2, rolledOut: true });
    expect(status.plane?.pods.map((pod) => [pod.name, pod.ready, pod.routes])).toEqual([
      ["msgbroker-0", true, { reachable: true, peers: ["msgbroker-1"] }],
      ["msgbroker-1", true, { reachable: true, peers: ["msgbroker-0"] }],
    ]);
    expect(status.registry).toMatchObject({ url: `https://${listen}`, answering: true });
    const text = await runCli(["--data-dir", dataDir, "status"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ {2}msgbroker-0 +ready, 0 restarts, routes to msgbroker-1$/m);
    expect(text.stdout).toMatch(/^ {2}msgbroker-1 +ready, 0 restarts, routes to msgbroker-0$/m);
  }, 60_000);
});
