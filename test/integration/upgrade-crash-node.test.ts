/**
 * Crash safety of `airlock upgrade run` (issue 14, point 7) with real brokers on the containerd node.
 * The test serves its MemoryCluster to the built CLI through the kube-apiserver facade and SIGKILLs
 * the CLI at a request it chooses — not at a time: the first GET of the StatefulSet (the pre-gate,
 * after the run and its plan were recorded), the apply that moves the partition to 1 (the cluster has
 * it, the run's record does not yet), the ready gate's first GET of msgbroker-0, and the rollback's
 * apply of the previous release. Each time the next `airlock upgrade run` takes the run up as its
 * record says, and the end state is asserted: one release deployed, the partition at 0, both pods on
 * the StatefulSet's revision and Ready, the run recorded as resumed, its events. The first re-run is
 * also a whole `upgrade run` through the real gates; the last step is `upgrade rollback` by hand.
 */
import { spawn } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  clusterApiKubeconfig,
  serveClusterApi,
  type ClusterObject,
  type MemoryCluster,
  type ObservedRequest,
  type RunningClusterApiServer,
} from "../../installer/cluster/index.js";
import { openState, type State, type UpgradeRun } from "../../installer/state/index.js";
import { DATA_NOT_ROLLED_BACK } from "../../installer/upgrade/index.js";
import { CLI, selfSignedCertificate, type CliResult } from "../helpers/fixtures.js";
import { isReady, startNodeHarness, type NodeHarness } from "../helpers/node-cluster.js";
import { nodeReleases, type NodeReleases } from "../helpers/node-releases.js";
import { issueBroker } from "../unit/manifests/plane-fixtures.js";
import { seedSite } from "../unit/installer/upgrade-fixtures.js";

const PLANE = "hubble-system";
const STATEFULSET = `/apis/apps/v1/namespaces/${PLANE}/statefulsets/msgbroker`;
const TOKEN = "upgrade-crash-token";
const VERSION_LABEL = "app.kubernetes.io/version";
const REVISION = "controller-revision-hash";
const GATE_FLAGS = ["--settle", "1s", "--pod-timeout", "20s"];

let harness: NodeHarness;
let cluster: MemoryCluster;
let api: RunningClusterApiServer;
let releases: NodeReleases;
let dataDir: string;
let state: State;
let planTo: (version: string, objects?: ClusterObject[]) => number;
/** What the API server facade tells of each request; the test sets it to kill the CLI at one. */
let observer: ((request: ObservedRequest) => void) | undefined;

interface RunningCli {
  kill(): void;
  done: Promise<CliResult>;
}

function startCli(args: string[]): RunningCli {
  const child = spawn(process.execPath, [CLI, "--data-dir", dataDir, ...args], {
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  return {
    kill: () => child.kill("SIGKILL"),
    done: new Promise((resolve, reject) => {
      child.on("error", reject);
      child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
    }),
  };
}

/** Runs `airlock ARGS` and SIGKILLs it at the first request `at` picks; resolves once it is dead. */
async function killedAt(args: string[], at: (request: ObservedRequest) => boolean): Promise<CliResult> {
  const cli = startCli(args);
  observer = (request) => {
    if (!at(request)) return;
    observer = undefined;
    cli.kill();
  };
  const result = await cli.done;
  observer = undefined;
  expect(result.signal, result.stderr).toBe("SIGKILL");
  return result;
}

function partitionOf(object: ClusterObject | undefined): number | undefined {
  return (object?.spec as { updateStrategy?: { rollingUpdate?: { partition?: number } } } | undefined)
    ?.updateStrategy?.rollingUpdate?.partition;
}

function templateVersion(object: ClusterObject | undefined): string | undefined {
  return (object?.spec as { template?: { metadata?: { labels?: Record<string, string> } } } | undefined)
    ?.template?.metadata?.labels?.[VERSION_LABEL];
}

function isStatefulSetApply(request: ObservedRequest): boolean {
  return request.method === "PATCH" && request.path === STATEFULSET;
}

function lastRun(): UpgradeRun {
  return state.runs.list()[0]!;
}

/** One release deployed (`version`), the partition at 0, both pods Ready on the StatefulSet's one revision. */
async function expectSettledOn(version: string): Promise<void> {
  const current = state.releases.list().filter((release) => release.current);
  expect(current.map((release) => release.version)).toEqual([version]);
  const statefulSet = await cluster.get({
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    name: "msgbroker",
    namespace: PLANE,
  });
  expect(partitionOf(statefulSet)).toBe(0);
  expect(templateVersion(statefulSet)).toBe(version);
  const status = statefulSet!.status as { updateRevision: string; currentRevision: string };
  const pods = await cluster.list("v1", "Pod", { namespace: PLANE });
  expect(pods.map((pod) => [pod.metadata.name, pod.metadata.labels?.[REVISION], isReady(pod)])).toEqual([
    ["msgbroker-0", status.updateRevision, true],
    ["msgbroker-1", status.updateRevision, true],
  ]);
}

function runActions(run: UpgradeRun): string[] {
  return [...new Set(state.events.list({ object: `run/${run.id}` }).map((event) => event.action))];
}

beforeAll(async () => {
  harness = await startNodeHarness();
  cluster = await harness.newCluster(await harness.newNode());
  const certificates = (await issueBroker(join(harness.root, "site"), { replicas: 2 })).pems;
  releases = nodeReleases(harness, certificates, ["4.4.0", "4.5.0", "4.6.0", "4.7.0", "4.7.1"]);
  const tls = await selfSignedCertificate(join(harness.root, "site"));
  const caPem = await readFile(tls.certFile, "utf8");
  api = await serveClusterApi(cluster, {
    tls: { cert: caPem, key: await readFile(tls.keyFile, "utf8") },
    token: TOKEN,
    observe: (request) => observer?.(request),
  });
  const kubeconfig = join(harness.root, "kubeconfig");
  await writeFile(kubeconfig, clusterApiKubeconfig(api.url, caPem, TOKEN));
  const passwordFile = join(harness.root, "pull-password");
  await writeFile(passwordFile, "unused: the node registry lets anyone pull\n");
  dataDir = join(harness.root, "airlock");
  state = openState(dataDir, { actor: "test" });
  // The install's cluster and registry steps as install records them: the CLI reaches both from here.
  const install = state.installs.start({
    bundleDigest: `sha256:${"a".repeat(64)}`,
    bundleName: "mgmt",
    version: "4.4.0",
    steps: ["registry", "cluster"],
  });
  state.installs.startStep(install.id, "registry");
  state.installs.finishStep(install.id, "registry", {
    url: `https://${harness.registry.host}`,
    listen: harness.registry.host,
    unit: "airlock-registry.service",
    htpasswdFile: join(harness.root, "htpasswd"),
    access: {
      endpoint: harness.registry.host,
      caFile: harness.registry.caFile,
      username: "pull",
      passwordFile,
    },
  });
  state.installs.startStep(install.id, "cluster");
  state.installs.finishStep(install.id, "cluster", { kind: "kubeconfig", kubeconfig });
  planTo = (await seedSite(state, cluster, (version) => releases.plane(version), "4.4.0", 120_000)).plan;
}, 240_000);

afterAll(async () => {
  state?.close();
  await api?.close();
  await harness?.close();
}, 180_000);

describe("airlock upgrade run, SIGKILLed at each point of a run, then run again", () => {
  it("killed after the plan, before anything changed: the run is dropped, and the same command runs the plan through the real gates", async () => {
    const planId = planTo("4.5.0");
    await killedAt(
      ["upgrade", "run", String(planId), ...GATE_FLAGS],
      (request) => request.method === "GET" && request.path === STATEFULSET,
    );
    expect(lastRun()).toMatchObject({ state: "running", currentStep: "pre-gate" });

    const again = await startCli(["upgrade", "run", String(planId), ...GATE_FLAGS, "--json"]).done;
    expect(again.code, again.stderr).toBe(0);
    const result = JSON.parse(again.stdout) as {
      outcome: string;
      status: string;
      run: UpgradeRun;
      resumed: { decision: { action: string } };
    };
    expect(result).toMatchObject({
      outcome: "upgraded",
      status: "upgraded 4.4.0 → 4.5.0",
      resumed: { decision: { action: "abandon" } },
    });
    const runs = state.runs.list();
    expect(runs.map((run) => [run.state, run.resumed])).toEqual([
      ["done", 0],
      ["interrupted", 1],
    ]);
    expect(
      result.run.gates
        .filter((gate) => gate.pod === "msgbroker-1" && !gate.gate.includes(":"))
        .map((gate) => gate.gate),
    ).toEqual(["ready", "healthz", "routez", "settle"]);
    expect(result.run.gates.every((gate) => gate.passed)).toBe(true);
    await expectSettledOn("4.5.0");
  }, 600_000);

  it("killed once the partition moved to 1 (in the cluster, not yet in the record): --resume goes on from the record and finishes", async () => {
    const planId = planTo("4.6.0");
    await killedAt(
      ["upgrade", "run", String(planId), ...GATE_FLAGS],
      (request) => isStatefulSetApply(request) && partitionOf(request.body) === 1,
    );
    expect(lastRun()).toMatchObject({ state: "running", partition: 2 });
    const status = await startCli(["status", "--json"]).done;
    expect(JSON.parse(status.stdout)).toMatchObject({
      upgrade: { run: lastRun().id, runningIn: null, next: { action: "forward", partition: 2 } },
    });

    const resumed = await startCli(["upgrade", "run", "--resume", ...GATE_FLAGS]).done;
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stderr).toContain(`run ${lastRun().id} was interrupted: every gate so far passed`);
    expect(lastRun()).toMatchObject({ state: "done", resumed: 1, partition: 0 });
    expect(runActions(lastRun())).toContain("upgrade.run.resume");
    await expectSettledOn("4.6.0");
  }, 600_000);

  it("killed during msgbroker-0's ready gate: the same plan's re-run re-checks the gate and finishes", async () => {
    const planId = planTo("4.7.0");
    let atZero = false;
    await killedAt(["upgrade", "run", String(planId), ...GATE_FLAGS], (request) => {
      if (isStatefulSetApply(request) && partitionOf(request.body) === 0) atZero = true;
      return (
        atZero && request.method === "GET" && request.path === `/api/v1/namespaces/${PLANE}/pods/msgbroker-0`
      );
    });
    expect(lastRun()).toMatchObject({ state: "running", partition: 0, currentStep: "roll msgbroker-0" });

    const again = await startCli(["upgrade", "run", String(planId), ...GATE_FLAGS]).done;
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toMatch(/^run \d+: upgraded 4\.6\.0 → 4\.7\.0 in /);
    expect(lastRun()).toMatchObject({ id: lastRun().id, state: "done", resumed: 1 });
    await expectSettledOn("4.7.0");
  }, 600_000);

  it("killed during the rollback of a release the broker rejects: the next run rolls it back again, exit 1 with the gate's reason", async () => {
    const planId = planTo("4.7.1", releases.broken("4.7.1"));
    await killedAt(
      ["upgrade", "run", String(planId), ...GATE_FLAGS],
      (request) =>
        isStatefulSetApply(request) &&
        partitionOf(request.body) === 0 &&
        templateVersion(request.body) === "4.7.0",
    );
    expect(lastRun().steps.map((step) => step.step)).toContain("rollback");

    const resumed = await startCli(["upgrade", "run", "--resume", ...GATE_FLAGS]).done;
    expect(resumed.code, resumed.stderr).toBe(1);
    expect(resumed.stderr).toMatch(
      /UPGRADE_ROLLED_BACK: upgrade run \d+: rolled back: ready failed on msgbroker-1: not within 20 s/,
    );
    expect(lastRun()).toMatchObject({ state: "rolled-back", resumed: 1 });
    expect(state.releases.get(lastRun().toReleaseId!).status).toBe("failed");
    await expectSettledOn("4.7.0");
  }, 600_000);

  it("upgrade rollback by hand returns to the release before, saying data is not rolled back", async () => {
    const result = await startCli(["upgrade", "rollback", ...GATE_FLAGS, "--json"]).done;
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({
      outcome: "rolled-back",
      notice: DATA_NOT_ROLLED_BACK,
      run: { kind: "rollback", state: "rolled-back" },
    });
    await expectSettledOn("4.6.0");
    const history = await startCli(["upgrade", "history", "--json"]).done;
    const entries = JSON.parse(history.stdout) as { run: UpgradeRun }[];
    expect(entries.map((entry) => [entry.run.kind, entry.run.state, entry.run.resumed])).toEqual([
      ["rollback", "rolled-back", 0],
      ["upgrade", "rolled-back", 1],
      ["upgrade", "done", 1],
      ["upgrade", "done", 1],
      ["upgrade", "done", 0],
      ["upgrade", "interrupted", 1],
    ]);
  }, 600_000);
});
