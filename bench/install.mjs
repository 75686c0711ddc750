#!/usr/bin/env node
// Benchmark of `airlock install` (issue 13, point 12): the signed sample bundle, from start to a
// healthy site, as the install proof runs it (test/integration/install-proof.test.ts): the built
// CLI under a temporary host root with the stand-in k3s and systemctl (the registry unit run for
// real), the cluster a MemoryCluster on the containerd node reading the registries.yaml install
// wrote. Reported: the wall time of `airlock install` plus `airlock status` (exit 0), each step's
// duration, the node's pull / create / start→Ready; Airlock's own time is the install's minus the
// slowest pod's pull, create and start→Ready (those are containerd's and the broker's), target < 5 s.
// Then the plane's image pull alone, by the same containerd (`ctr images pull` as the node runs it,
// a fresh namespace each time so every byte is fetched) from Airlock's registry and from Debian's
// docker-registry holding the same image (both over TLS with basic auth), alternated, medians:
// docker-registry / Airlock, target ≥ 1.0.
//
//   npm run bench:install [-- --runs 3]
//
// Needs root. A measurement, not a test. Everything it starts is stopped by PID, also on failure;
// results go to .bench/install-results.json.
import { spawn } from "node:child_process";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";
import { $ } from "zx";
import {
  BENCH_DIR,
  formatMs,
  freePort,
  hostEnvironment,
  hostLine,
  log,
  median,
  ratio,
  REPO,
  snapshotDist,
  startDockerRegistry,
  stopAllServers,
} from "./lib.mjs";
import { startNodeSite, useStandinK3s } from "../scripts/node-site.mjs";
import { generateFixtures } from "../scripts/fixtures.mjs";

const PULL_TARGET = 1.0;
const OWN_TARGET_MS = 5_000;
const NODE_NAME = "bench-site";
const { values } = parseArgs({ options: { runs: { type: "string", default: "3" } } });
const runs = Number(values.runs);
const work = await fs.mkdtemp(path.join(os.tmpdir(), "airlock-bench-install-"));
const closers = [];
$.quiet = true;

/** Runs the CLI snapshot to completion: exit code, stdout, stderr. */
function airlock(cli, args, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { env: { ...process.env, NO_COLOR: "1", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolve({ code, stdout, stderr }));
  });
}

async function selfSigned(dir) {
  await fs.mkdir(dir, { recursive: true });
  const [cert, key] = [path.join(dir, "server.crt"), path.join(dir, "server.key")];
  await $`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout ${key} -out ${cert}`;
  return { cert, key };
}

/** A hosts.toml directory sending pulls of `host` to itself over TLS trusted by `ca`. */
async function hostsDir(dir, host, ca) {
  await fs.mkdir(path.join(dir, host), { recursive: true });
  await fs.writeFile(
    path.join(dir, host, "hosts.toml"),
    `server = "https://${host}"\n\n[host."https://${host}"]\n  capabilities = ["pull", "resolve"]\n  ca = ${JSON.stringify(ca)}\n`,
  );
  return dir;
}

/** One `ctr images pull` of `ref` into a fresh namespace (removed after): its wall time. */
async function timedPull(socket, namespace, ref, hosts, user) {
  const started = performance.now();
  await $`ctr -a ${socket} -n ${namespace} images pull --hosts-dir ${hosts} --user ${user} ${ref}`;
  const ms = performance.now() - started;
  await $({ nothrow: true })`ctr -a ${socket} -n ${namespace} images rm --sync ${ref}`;
  await $({ nothrow: true })`ctr -a ${socket} namespaces rm ${namespace}`;
  return ms;
}

/** The install under test: fixtures, the signed bundle carrying the stand-in k3s, the node and its cluster, the stand-ins' environment. */
async function setUp() {
  await fs.mkdir(BENCH_DIR, { recursive: true });
  const snapshot = await fs.mkdtemp(path.join(BENCH_DIR, "install-dist-"));
  closers.push(() => fs.rm(snapshot, { recursive: true, force: true }));
  const cli = await snapshotDist(snapshot);
  const dist = path.resolve(path.dirname(cli), "..", "..");
  const load = (module) => import(path.join(dist, module));

  const fixtures = await generateFixtures({
    out: path.join(work, "fixtures"),
    seed: 42,
    size: 2 * 1024 * 1024,
  });
  const sampleDir = path.dirname(fixtures.sample);
  await useStandinK3s(sampleDir);
  const [key, pub, bundle] = ["vendor.key", "vendor.pub", "mgmt-4.5.0.airlock.tar"].map((name) =>
    path.join(work, name),
  );
  for (const args of [
    ["keys", "generate", "--private-key", key, "--public-key", pub],
    ["bundle", "build", "-f", fixtures.sample, "-o", bundle, "--sign-key", key],
  ]) {
    const result = await airlock(cli, args, {});
    if (result.code !== 0) throw new Error(`airlock ${args.slice(0, 2).join(" ")} failed: ${result.stderr}`);
  }

  const events = [];
  const site = await startNodeSite({
    work: path.join(work, "node-site"),
    load,
    nodeName: NODE_NAME,
    onEvent: (event) => events.push(event),
  });
  closers.push(() => site.close());
  const { socket, cluster, hostRoot, env } = site;
  const listen = `127.0.0.1:${await freePort()}`;
  return {
    cli,
    bundle,
    pub,
    hostRoot,
    listen,
    env,
    events,
    socket,
    cluster,
    layout: fixtures.layout,
  };
}

async function measureInstall(setup) {
  const dataDir = path.join(work, "site");
  const started = performance.now();
  const installed = await airlock(
    setup.cli,
    [
      ...["--data-dir", dataDir, "--json", "install", "--bundle", setup.bundle, "--key", setup.pub],
      ...[
        "--host-root",
        setup.hostRoot,
        "--registry-listen",
        setup.listen,
        "--node-name",
        NODE_NAME,
        "--timeout",
        "5m",
      ],
    ],
    setup.env,
  );
  const installMs = performance.now() - started;
  if (installed.code !== 0) throw new Error(`airlock install failed: ${installed.stderr}`);
  const status = await airlock(setup.cli, ["--data-dir", dataDir, "--json", "status"], setup.env);
  const healthyMs = performance.now() - started;
  if (status.code !== 0) throw new Error(`airlock status says unhealthy: ${status.stdout}${status.stderr}`);
  const report = JSON.parse(installed.stdout);
  const slowest = (step) =>
    Math.max(0, ...setup.events.filter((event) => event.step === step).map((event) => event.ms));
  const node = { pullMs: slowest("pull"), createMs: slowest("create"), readyMs: slowest("ready") };
  const ownMs = installMs - node.pullMs - node.createMs - node.readyMs;
  return { dataDir, report, installMs, healthyMs, statusMs: healthyMs - installMs, node, ownMs };
}

async function measurePulls(setup, install) {
  const pod = await setup.cluster.get({
    apiVersion: "v1",
    kind: "Pod",
    name: "msgbroker-0",
    namespace: "hubble-system",
  });
  const digest = pod.spec.containers[0].image.split("@")[1];
  const password = (await fs.readFile(path.join(install.dataDir, "registry/pull-password"), "utf8")).trim();
  const airlockHosts = await hostsDir(
    path.join(work, "hosts-airlock"),
    setup.listen,
    path.join(install.dataDir, "pki/ca.crt"),
  );

  const dockerDir = path.join(work, "docker-registry");
  await fs.mkdir(dockerDir, { recursive: true });
  const tls = await selfSigned(path.join(dockerDir, "tls"));
  const htpasswd = path.join(dockerDir, "htpasswd");
  await fs.writeFile(htpasswd, (await $`htpasswd -Bbn cluster-pull ${password}`).stdout);
  const authorization = `Basic ${Buffer.from(`cluster-pull:${password}`).toString("base64")}`;
  const docker = await startDockerRegistry(path.join(dockerDir, "storage"), {
    dir: dockerDir,
    htpasswd,
    headers: { authorization },
    tls,
  });
  await fs.mkdir(path.join(dockerDir, "trust"));
  await fs.copyFile(tls.cert, path.join(dockerDir, "trust", "ca.crt"));
  await $`skopeo --insecure-policy copy --quiet --preserve-digests --dest-cert-dir ${path.join(dockerDir, "trust")} --dest-creds ${`cluster-pull:${password}`} ${`oci:${setup.layout}:hubble/msgbroker:4.5.0`} ${`docker://${docker.host}/hubble/msgbroker:4.5.0`}`;
  const dockerHosts = await hostsDir(path.join(work, "hosts-docker"), docker.host, tls.cert);

  const user = `cluster-pull:${password}`;
  const airlockMs = [];
  const dockerMs = [];
  for (let run = 0; run < runs; run++) {
    airlockMs.push(
      await timedPull(
        setup.socket,
        `bench-a${run}`,
        `${setup.listen}/hubble/msgbroker@${digest}`,
        airlockHosts,
        user,
      ),
    );
    dockerMs.push(
      await timedPull(
        setup.socket,
        `bench-d${run}`,
        `${docker.host}/hubble/msgbroker@${digest}`,
        dockerHosts,
        user,
      ),
    );
    log(
      `pull ${run + 1}: Airlock ${formatMs(airlockMs.at(-1))}, docker-registry ${formatMs(dockerMs.at(-1))}`,
    );
  }
  return { airlockMs, dockerMs, ratio: median(dockerMs) / median(airlockMs) };
}

try {
  const environment = await hostEnvironment();
  log(hostLine(environment));
  const setup = await setUp();
  const install = await measureInstall(setup);
  log(`install ${formatMs(install.installMs)}, healthy (status exit 0) at ${formatMs(install.healthyMs)}`);
  for (const step of install.report.steps) log(`  ${step.title.padEnd(22)} ${formatMs(step.durationMs)}`);
  const stepsMs = install.report.steps.reduce((sum, step) => sum + step.durationMs, 0);
  log(
    `  before the first step (CLI start, bundle head, signature, preflight): ${formatMs(install.installMs - stepsMs)}`,
  );
  log(
    `  node: pull ${formatMs(install.node.pullMs)}, create ${formatMs(install.node.createMs)}, ctr run → Ready ${formatMs(install.node.readyMs)} (slowest pod)`,
  );
  const pulls = await measurePulls(setup, install);
  const ownOk = install.ownMs < OWN_TARGET_MS;
  const pullOk = pulls.ratio >= PULL_TARGET;
  console.log(
    `Airlock's own steps: ${formatMs(install.ownMs)} (target < ${formatMs(OWN_TARGET_MS)}) ${ownOk ? "ok" : "MISSED"}`,
  );
  console.log(
    `image pull docker-registry / Airlock: ${ratio(pulls.ratio)} (medians ${formatMs(median(pulls.dockerMs))} / ${formatMs(median(pulls.airlockMs))}; target ≥ ${PULL_TARGET}) ${pullOk ? "ok" : "MISSED"}`,
  );
  const file = path.join(BENCH_DIR, "install-results.json");
  const { dataDir: _dataDir, ...kept } = install;
  await fs.writeFile(
    file,
    `${JSON.stringify({ environment, runs, install: kept, pulls, targets: { ownOk, pullOk } }, null, 2)}\n`,
  );
  console.log(`results: ${path.relative(REPO, file)}`);
} catch (error) {
  console.error(`bench/install: ${error.message}`);
  process.exitCode = 1;
} finally {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await stopAllServers();
  await fs.rm(work, { recursive: true, force: true });
}
