#!/usr/bin/env node
// Benchmark of the rolling upgrade (issue 14, point 12): the rendered 2-replica plane at 4.4.0 on
// MemoryCluster's containerd node, upgraded to 4.5.0 by runUpgrade with the default gates, while
// request/reply traffic runs through the client Service's name (test/helpers/nats-traffic.ts,
// transpiled into the work directory). The run's total time is set against the waits it cannot
// avoid, each derived from what the run was given or measured on the node, never a constant here:
//   per pod   pull, create, and ctr run → Ready of the new container (the node's own events: the
//             broker's start and the startup probe's period), lame duck (the rendered config's
//             lame_duck_grace_period, then nats-server closing the broker's N clients at least
//             (N-1)·si/2 apart, si = min(1 s, (duration - grace)/N), N read from /varz when the
//             partition moves), /healthz K polls in a row ((K-1) poll intervals) and the settle delay;
//   final     (K-1) poll intervals once, the final gate's /healthz on every pod.
// The ratio total / unavoidable is printed against the 1.15× target, with the client's longest gap.
//
//   npm run bench:upgrade [-- --runs 3]
//
// Needs root. It is a measurement, not a test. Everything it starts is stopped by PID, also on
// failure; results go to .bench/upgrade-results.json.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import {
  BENCH_DIR,
  formatMs,
  formatPressure,
  hostEnvironment,
  hostLine,
  log,
  median,
  pressure,
  ratio,
  REPO,
} from "./lib.mjs";
import { startNodeBench } from "./node-setup.mjs";
import { loadNatsTraffic } from "../scripts/nats-traffic.mjs";

const TARGET = 1.15;
const PLANE = "hubble-system";
const RELEASE = "mgmt";
const CLIENT_SERVICE = `msgbroker.${PLANE}.svc.cluster.local`;
const podHost = (ordinal) => `msgbroker-${ordinal}.msgbroker-headless.${PLANE}.svc.cluster.local`;

const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const runs = Number(values.runs);
if (!Number.isInteger(runs) || runs < 1) throw new RangeError(`--runs must be a whole number ≥ 1`);

/** `lame_duck_grace_period: "10s"` and its duration from the rendered broker config, in ms. */
function lameDuckOf(objects) {
  const config = objects.find((object) => object.kind === "ConfigMap" && object.data?.["nats.conf"]);
  const seconds = (key) => {
    const match = new RegExp(`^${key}: "(\\d+)s"$`, "m").exec(config.data["nats.conf"]);
    if (match === null) throw new Error(`the rendered config has no ${key}`);
    return Number(match[1]) * 1000;
  };
  return { graceMs: seconds("lame_duck_grace_period"), durationMs: seconds("lame_duck_duration") };
}

/** The least nats-server's lame duck takes with `clients` connected: the grace, then the clients closed at least si/2 apart. */
function lameDuckFloorMs({ graceMs, durationMs }, clients) {
  if (clients === 0) return 0;
  const si = Math.min(1000, (durationMs - graceMs) / clients);
  return graceMs + ((clients - 1) * si) / 2;
}

async function monitor(cluster, pod, what) {
  const found = await cluster.get({ apiVersion: "v1", kind: "Pod", name: pod, namespace: PLANE });
  const response = await globalThis.fetch(`http://${found.status.podIP}:8222/${what}`, {
    signal: globalThis.AbortSignal.timeout(5_000),
  });
  return response.json();
}

/** One round: a new node, 4.4.0 applied, then the timed upgrade to 4.5.0 under traffic. */
async function round(bench, traffic, tls, work) {
  const { MemoryCluster, applyRelease } = await bench.load("installer/cluster/index.js");
  const { createContainerdNode } = await bench.load("installer/cluster/node/index.js");
  const { render } = await bench.load("manifests/index.js");
  const { runUpgrade, DEFAULT_GATES } = await bench.load("installer/upgrade/index.js");
  const plane = (version) =>
    render({}, bench.images, { release: RELEASE, version, certificates: bench.certificates });
  const [previous, next] = [plane("4.4.0"), plane("4.5.0")];
  const events = [];
  const node = await createContainerdNode({
    containerdSocket: bench.socket,
    dir: await fs.mkdtemp(path.join(work, "node-")),
    registriesYaml: bench.registriesYaml,
    onEvent: (event) => events.push({ ...event, at: Date.now() }),
  });
  const cluster = new MemoryCluster({ node });
  try {
    await applyRelease(cluster, previous, { release: RELEASE, timeoutMs: 180_000 });
    const clients = [];
    const recorder = {
      stepStarted() {},
      stepFinished() {},
      gate() {},
      rolledBack() {},
      // The pod about to stop: how many clients its lame duck will close.
      async partitionMoved(_name, partition) {
        if (partition < 2)
          clients.push((await monitor(cluster, `msgbroker-${partition}`, "varz")).connections);
      },
    };
    const load = await traffic.startTraffic({
      service: CLIENT_SERVICE,
      podHost,
      replicas: 2,
      port: 4222,
      tls,
      resolve: (name) => node.resolve(name),
    });
    const started = Date.now();
    const result = await runUpgrade(cluster, {
      previous,
      next,
      recorder,
      imageAvailable: () => Promise.resolve(true),
    });
    const totalMs = Date.now() - started;
    const report = await load.stop();
    if (result.outcome !== "upgraded")
      throw new Error(`the upgrade did not finish: ${JSON.stringify(result)}`);
    const during = events.filter((event) => event.at >= started);
    const sum = (step) => during.filter((event) => event.step === step).reduce((total, e) => total + e.ms, 0);
    const gates = DEFAULT_GATES;
    const lameDuck = lameDuckOf(next);
    const waits = {
      pullMs: sum("pull"),
      createMs: sum("create"),
      readyMs: sum("ready"),
      lameDuckMs: clients.reduce((total, count) => total + lameDuckFloorMs(lameDuck, count), 0),
      healthzMs: 3 * (gates.healthyPolls - 1) * gates.pollIntervalMs,
      settleMs: 2 * gates.settleMs,
    };
    const unavoidableMs = Object.values(waits).reduce((total, ms) => total + ms, 0);
    return { totalMs, unavoidableMs, ratio: totalMs / unavoidableMs, waits, clients, traffic: report };
  } finally {
    cluster.close();
    await node.close();
  }
}

const work = await fs.mkdtemp(path.join(os.tmpdir(), "airlock-bench-upgrade-"));
// 4.4.0 and 4.5.0 differ in their image config (created), so the new pods pull a new manifest.
const bench = await startNodeBench(work, [
  { tag: "4.4.0", created: "2025-01-01T00:00:00Z" },
  { tag: "4.5.0" },
]);
try {
  const traffic = await loadNatsTraffic(path.join(work, "traffic"));
  const { issueClientCertificate, openPki } = await bench.load("installer/pki/index.js");
  const pki = openPki(bench.site);
  const issued = await issueClientCertificate(pki, "bench-upgrade");
  const read = (file) => fs.readFile(file, "utf8");
  const tls = {
    ca: await read(pki.caFile),
    cert: await read(issued.certFile),
    key: await read(issued.keyFile),
  };
  const environment = { ...(await hostEnvironment()), pressure: await pressure() };
  log(`${hostLine(environment)}; ${formatPressure(environment.pressure)}`);
  const rounds = [];
  for (let run = 0; run < runs; run++) {
    const measured = await round(bench, traffic, tls, work);
    const w = measured.waits;
    log(
      `run ${run + 1}: ${formatMs(measured.totalMs)} against ${formatMs(measured.unavoidableMs)} unavoidable = ${ratio(measured.ratio)} ` +
        `(pull ${formatMs(w.pullMs)}, create ${formatMs(w.createMs)}, ctr run → Ready ${formatMs(w.readyMs)}, ` +
        `lame duck ${formatMs(w.lameDuckMs)} for ${measured.clients.join(" and ")} clients, /healthz polls ${formatMs(w.healthzMs)}, settle ${formatMs(w.settleMs)}); ` +
        `traffic: ${traffic.describeTraffic(measured.traffic)}`,
    );
    rounds.push(measured);
  }
  const summary = {
    totalMs: median(rounds.map((r) => r.totalMs)),
    unavoidableMs: median(rounds.map((r) => r.unavoidableMs)),
    ratio: median(rounds.map((r) => r.ratio)),
    longestGapMs: Math.max(...rounds.map((r) => r.traffic.longestGapMs)),
    unanswered: rounds.reduce((total, r) => total + r.traffic.unanswered.length, 0),
  };
  console.log(
    `rolling upgrade, 2 replicas, median of ${runs}: ${formatMs(summary.totalMs)} against ${formatMs(summary.unavoidableMs)} ` +
      `unavoidable = ${ratio(summary.ratio)} (target ≤ ${ratio(TARGET, 2)}: ${summary.ratio <= TARGET ? "met" : "MISSED"}); ` +
      `client's longest gap ${summary.longestGapMs} ms, ${summary.unanswered} requests unanswered`,
  );
  await fs.mkdir(BENCH_DIR, { recursive: true });
  const file = path.join(BENCH_DIR, "upgrade-results.json");
  await fs.writeFile(
    file,
    `${JSON.stringify({ date: new Date().toISOString(), environment, target: TARGET, runs: rounds, median: summary }, null, 2)}\n`,
  );
  console.log(`results: ${path.relative(REPO, file)}`);
  if (summary.unanswered > 0) process.exitCode = 1;
} finally {
  await bench.close();
}
