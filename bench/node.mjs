#!/usr/bin/env node
// Benchmark of the containerd node (issue 12, point 8): the rendered 2-replica plane started on
// MemoryCluster's containerd node from an empty containerd, with the time of each step.
//
//   npm run build && node bench/node.mjs [--runs 3]
//
// Setup, untimed: the msgbroker image built by scripts/msgbroker-image.mjs, pushed by skopeo into
// Airlock's registry (TLS, a self-signed certificate, a store of its own), the site PKI's broker
// certificates, a containerd of the run's own (root, state and socket in a temp dir). Each run makes
// a new node (new prefix, so a new containerd namespace: nothing pulled yet) and times applyRelease
// of render()'s objects until the StatefulSet has rolled out. Per container it reports the node's
// steps — pull (ctr images pull through hosts.toml, shared by both pods), create (rootfs snapshot,
// mount, OCI spec), ready (from ctr run to the first passing readiness probe, which includes the
// startup probe's 2 s period) — and the whole rollout. Medians over the runs. Needs root. It is a
// measurement, not a test. Everything it starts is stopped by PID, also on failure; results go to
// .bench/node-results.json.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { setTimeout } from "node:timers";
import { parseArgs } from "node:util";
import { $ } from "zx";
import { BENCH_DIR, log, median, REPO, snapshotDist } from "./lib.mjs";
import { buildMsgbrokerImage } from "../scripts/msgbroker-image.mjs";

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const runs = Number(values.runs);
const SITE_REGISTRY = "registry.airlock.local:5443";
const work = await fs.mkdtemp(path.join(os.tmpdir(), "airlock-bench-node-"));
let containerd;
let registry;
let store;
let dist;
try {
  // The dist/ snapshot sits under the repository, so that its imports resolve to node_modules.
  await fs.mkdir(BENCH_DIR, { recursive: true });
  const cli = await snapshotDist(await fs.mkdtemp(path.join(BENCH_DIR, "node-dist-")));
  dist = path.resolve(path.dirname(cli), "..", "..");
  const load = (module) => import(path.join(dist, module));
  const { MemoryCluster, applyRelease } = await load("installer/cluster/index.js");
  const { createContainerdNode } = await load("installer/cluster/node/index.js");
  const { render } = await load("manifests/index.js");
  const { brokerCertificates, openPki } = await load("installer/pki/index.js");
  const { startRegistryServer } = await load("registry/server/index.js");
  const { Store } = await load("registry/store/index.js");
  const image = await buildMsgbrokerImage({ out: path.join(work, "layout"), ref: "hubble/msgbroker:4.5.0" });
  store = await Store.open(path.join(work, "store"));
  const certDir = path.join(work, "certs");
  await fs.mkdir(path.join(certDir, "trust"), { recursive: true });
  const [certFile, keyFile] = [path.join(certDir, "server.crt"), path.join(certDir, "server.key")];
  await $({
    quiet: true,
  })`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout ${keyFile} -out ${certFile}`;
  await fs.copyFile(certFile, path.join(certDir, "trust", "ca.crt"));
  registry = await startRegistryServer(store, {
    listen: "127.0.0.1:0",
    tls: { certFile, keyFile },
    allowPush: true,
  });
  const host = registry.url.replace("https://", "");
  await $({
    quiet: true,
  })`skopeo --insecure-policy copy --quiet --preserve-digests --dest-cert-dir ${path.join(certDir, "trust")} ${`oci:${image.layout}:hubble/msgbroker:4.5.0`} ${`docker://${host}/hubble/msgbroker:4.5.0`}`;

  const socket = path.join(work, "containerd", "containerd.sock");
  await fs.mkdir(path.join(work, "containerd"), { recursive: true });
  const config = path.join(work, "containerd", "config.toml");
  await fs.writeFile(
    config,
    `version = 2\nroot = "${path.join(work, "containerd", "root")}"\nstate = "${path.join(work, "containerd", "state")}"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${socket}"\n`,
  );
  containerd = $({ quiet: true, nothrow: true })`containerd --config ${config}`;
  for (
    let waited = 0;
    !(await fs.stat(socket).then(
      () => true,
      () => false,
    ));
    waited += 100
  ) {
    if (waited > 20_000) throw new Error("containerd did not create its socket within 20 s");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }

  const pki = openPki(path.join(work, "site"));
  const { peer, server } = await brokerCertificates(pki, { replicas: 2 });
  const read = (file) => fs.readFile(file, "utf8");
  const certificates = {
    ca: await read(peer.caFile),
    peerCert: await read(peer.certFile),
    peerKey: await read(peer.keyFile),
    serverCert: await read(server.certFile),
    serverKey: await read(server.keyFile),
  };
  const images = [
    {
      ref: "hubble/msgbroker:4.5.0",
      digest: image.digest,
      mediaType: image.mediaType,
      size: 1,
      totalBytes: 1,
      blobs: 2,
      platforms: [image.platform],
      kind: "image",
      sourceDigest: image.digest,
    },
  ];
  const objects = render({}, images, { release: "mgmt", version: "4.5.0", certificates });
  const registriesYaml = `mirrors:\n  "${SITE_REGISTRY}":\n    endpoint: ["https://${host}"]\nconfigs:\n  "${host}":\n    tls:\n      ca_file: "${certFile}"\n`;

  const rounds = [];
  for (let run = 0; run < runs; run++) {
    const steps = [];
    const node = await createContainerdNode({
      containerdSocket: socket,
      dir: await fs.mkdtemp(path.join(work, "node-")),
      registriesYaml,
      onEvent: (event) => steps.push(event),
    });
    const cluster = new MemoryCluster({ node });
    try {
      const started = Date.now();
      await applyRelease(cluster, objects, { release: "mgmt", timeoutMs: 180_000 });
      const rolloutMs = Date.now() - started;
      const of = (step) => steps.filter((event) => event.step === step).map((event) => event.ms);
      const round = {
        rolloutMs,
        pullMs: Math.max(...of("pull")),
        createMs: Math.max(...of("create")),
        readyMs: Math.max(...of("ready")),
      };
      log(
        `run ${run + 1}: rollout ${round.rolloutMs} ms = pull ${round.pullMs} + create ${round.createMs} + ctr run → Ready ${round.readyMs} (+ apply and status)`,
      );
      rounds.push(round);
    } finally {
      cluster.close();
      await node.close();
    }
  }
  const summary = Object.fromEntries(
    ["rolloutMs", "pullMs", "createMs", "readyMs"].map((key) => [
      key,
      median(rounds.map((round) => round[key])),
    ]),
  );
  log(
    `median of ${runs}: rollout ${summary.rolloutMs} ms; pull ${summary.pullMs} ms, create ${summary.createMs} ms, ctr run → Ready ${summary.readyMs} ms`,
  );
  await fs.mkdir(BENCH_DIR, { recursive: true });
  const file = path.join(BENCH_DIR, "node-results.json");
  await fs.writeFile(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), runs: rounds, median: summary }, null, 2)}\n`,
  );
  console.log(`results: ${path.relative(REPO, file)}`);
} finally {
  await registry?.close();
  store?.close();
  if (containerd !== undefined) {
    containerd.kill("SIGTERM");
    await containerd;
  }
  const mounts = (await fs.readFile("/proc/self/mountinfo", "utf8"))
    .split("\n")
    .map((line) => line.split(" ")[4])
    .filter((point) => point?.startsWith(`${work}/`));
  for (const point of mounts.sort((a, b) => b.length - a.length))
    await $({ nothrow: true, quiet: true })`umount -l ${point}`;
  await fs.rm(work, { recursive: true, force: true });
  if (dist !== undefined) await fs.rm(path.resolve(dist, ".."), { recursive: true, force: true });
}
