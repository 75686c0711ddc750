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
import { parseArgs } from "node:util";
import { BENCH_DIR, log, median, REPO } from "./lib.mjs";
import { startNodeBench } from "./node-setup.mjs";

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const runs = Number(values.runs);
const work = await fs.mkdtemp(path.join(os.tmpdir(), "airlock-bench-node-"));
const bench = await startNodeBench(work, [{ tag: "4.5.0" }]);
try {
  const { MemoryCluster, applyRelease } = await bench.load("installer/cluster/index.js");
  const { createContainerdNode } = await bench.load("installer/cluster/node/index.js");
  const { render } = await bench.load("manifests/index.js");
  const { certificates, images, registriesYaml, socket } = bench;
  const objects = render({}, images, { release: "mgmt", version: "4.5.0", certificates });

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
  await bench.close();
}
