/**
 * The site daemon carries out what `airlock upgrade schedule` stores, and survives being killed in
 * the middle (issue 14, points 3, 6 and 7), with real brokers on the containerd node. The test
 * serves its MemoryCluster to the built CLI through the kube-apiserver facade; `airlock serve` runs
 * as its own process on the site's data dir, reaches the cluster through the kubeconfig the install
 * recorded, and is woken by `upgrade schedule --now`. The test SIGKILLs it at a request it chooses —
 * not at a time: the pre-gate's first GET of the StatefulSet (the run and its plan recorded, nothing
 * changed), the apply that moves the partition to 1 (the cluster has it, the run's record does not
 * yet), the ready gate's first GET of msgbroker-0, and the rollback's apply of the previous release.
 * While it is down `airlock status` shows the interrupted run and what the next start will do with
 * it; the next `airlock serve` does that, and the end state is asserted: one release deployed, the
 * partition at 0, both pods on the StatefulSet's revision, Ready and routed to each other, the run
 * recorded as resumed, its events.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterObject, MemoryCluster, ObservedRequest } from "../../installer/cluster/index.js";
import type { State, UpgradeRun } from "../../installer/state/index.js";
import { brokersRouted, isReady } from "../helpers/node-cluster.js";
import type { NodeReleases } from "../helpers/node-releases.js";
import { startNodeSite, type NodeSite, type RunningCli } from "../helpers/node-site.js";

const PLANE = "hubble-system";
const STATEFULSET = `/apis/apps/v1/namespaces/${PLANE}/statefulsets/msgbroker`;
const VERSION_LABEL = "app.kubernetes.io/version";
const REVISION = "controller-revision-hash";
/** How long a healthy broker may take to be Ready on its revision, with room on a busy machine. */
const POD_TIMEOUT = "20s";
/** The pod timeout of the daemon that runs the broken release: its broker never gets Ready. */
const BROKEN_POD_TIMEOUT = "6s";
/** The longest a run of the daemon's may take here: two pods, each well inside its gates' timeouts. */
const RUN_MS = 90_000;

let site: NodeSite;
let cluster: MemoryCluster;
let releases: NodeReleases;
let state: State;
let planTo: (version: string, objects?: ClusterObject[]) => number;
let serve: RunningCli | undefined;

/** Starts `airlock serve` with the test's gate timings: no settle delay (the gates are what is tested), a pod timeout of `podTimeout`. */
async function startServe(podTimeout = POD_TIMEOUT): Promise<RunningCli> {
  serve = await site.serve(["--settle", "0s", "--pod-timeout", podTimeout]);
  return serve;
}

/** SIGKILLs the running daemon at the first request `at` picks. */
function killAt(daemon: RunningCli, at: (request: ObservedRequest) => boolean): void {
  site.observe = (request) => {
    if (!at(request)) return;
    site.observe = undefined;
    daemon.kill("SIGKILL");
  };
}

/** Waits until the running daemon is dead of the SIGKILL its `killAt` sent. */
async function killed(daemon: RunningCli): Promise<void> {
  const result = await daemon.done;
  site.observe = undefined;
  serve = undefined;
  expect(result.signal, result.stderr).toBe("SIGKILL");
}

/** `airlock upgrade schedule PLAN --now`, which wakes the running daemon. */
async function scheduleNow(planId: number, daemon: RunningCli): Promise<void> {
  const scheduled = await site.airlock(["upgrade", "schedule", String(planId), "--now"]).done;
  expect(scheduled.code, scheduled.stderr).toBe(0);
  expect(scheduled.stdout).toContain(
    `airlock serve (process ${daemon.pid}) told to look at the schedules now`,
  );
}

/** What `airlock status --json` says of the interrupted run while no daemon runs (it exits 1: not healthy). */
async function interruptedUpgrade(): Promise<unknown> {
  const status = await site.airlock(["status", "--json"]).done;
  expect(status.code, status.stderr).toBe(1);
  expect(status.stdout, status.stderr).toContain('"upgrade"');
  return (JSON.parse(status.stdout) as { upgrade: unknown }).upgrade;
}

/** `airlock status`'s text, for what it tells the operator of the interrupted run. */
async function statusText(): Promise<string> {
  const status = await site.airlock(["status"]).done;
  expect(status.code, status.stderr).toBe(1);
  expect(status.stdout, status.stderr).toContain("upgrade ");
  return status.stdout;
}

function runOfPlan(planId: number): UpgradeRun | undefined {
  return state.runs.list().find((run) => run.planId === planId);
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

/** One release deployed (`version`), the partition at 0, both pods Ready on the StatefulSet's one revision, routed to each other. */
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
  expect(await brokersRouted(cluster, PLANE)).toBe(true);
}

function runActions(run: UpgradeRun): string[] {
  return [...new Set(state.events.list({ object: `run/${run.id}` }).map((event) => event.action))];
}

beforeAll(async () => {
  site = await startNodeSite(["4.4.0", "4.5.0", "4.6.0", "4.6.1"], "4.4.0");
  ({ cluster, releases, state, planTo } = site);
}, 240_000);

afterAll(async () => {
  if (serve !== undefined) {
    serve.kill("SIGTERM");
    await serve.done;
  }
  await site?.close();
}, 180_000);

describe("airlock serve runs a scheduled upgrade on real brokers, and takes it up again after a SIGKILL", () => {
  it("killed after the plan, before anything changed: the next start drops the run and runs the schedule again to the end", async () => {
    const planId = planTo("4.5.0");
    const daemon = await startServe();
    killAt(
      daemon,
      (request) =>
        request.method === "GET" && request.path === STATEFULSET && runOfPlan(planId) !== undefined,
    );
    await scheduleNow(planId, daemon);
    await killed(daemon);
    const interrupted = lastRun();
    expect(interrupted).toMatchObject({ planId, state: "running", currentStep: "pre-gate" });
    // One after the other: `airlock status` lists the certificates under the PKI's lock (PKI_LOCKED to a second).
    const [upgrade, text] = [await interruptedUpgrade(), await statusText()];
    expect(upgrade).toMatchObject({
      run: interrupted.id,
      runningIn: null,
      next: { action: "abandon" },
    });
    expect(text).toContain(
      `upgrade      run ${interrupted.id} (upgrade, plan ${planId}) INTERRUPTED at pre-gate`,
    );
    expect(text).toContain(
      "next: abandon: it had changed nothing in the cluster: it is dropped, the plan may run again",
    );

    const again = await startServe();
    await again.printed(new RegExp(`scheduler: run \\d+ of plan ${planId}: done`), RUN_MS);
    expect(state.runs.list().map((run) => [run.id, run.state, run.resumed])).toEqual([
      [interrupted.id + 1, "done", 0],
      [interrupted.id, "interrupted", 1],
    ]);
    const run = lastRun();
    expect(
      run.gates
        .filter((gate) => gate.pod === "msgbroker-1" && !gate.gate.includes(":"))
        .map((gate) => gate.gate),
    ).toEqual(["ready", "healthz", "routez", "settle"]);
    expect(run.gates.every((gate) => gate.passed)).toBe(true);
    await expectSettledOn("4.5.0");
  }, 180_000);

  it("killed once the partition moved to 1, then again in msgbroker-0's ready gate: each start goes on from the record and the last finishes", async () => {
    const planId = planTo("4.6.0");
    const first = serve!;
    killAt(first, (request) => isStatefulSetApply(request) && partitionOf(request.body) === 1);
    await scheduleNow(planId, first);
    await killed(first);
    const run = runOfPlan(planId)!;
    expect(run).toMatchObject({ state: "running", partition: 2 });
    expect(await interruptedUpgrade()).toMatchObject({
      run: run.id,
      runningIn: null,
      next: { action: "forward", partition: 2 },
    });

    let atZero = false;
    const second = await startServe();
    killAt(second, (request) => {
      if (isStatefulSetApply(request) && partitionOf(request.body) === 0) atZero = true;
      return (
        atZero && request.method === "GET" && request.path === `/api/v1/namespaces/${PLANE}/pods/msgbroker-0`
      );
    });
    await killed(second);
    expect(lastRun()).toMatchObject({
      id: run.id,
      state: "running",
      partition: 0,
      currentStep: "roll msgbroker-0",
    });
    const [upgrade, text] = [await interruptedUpgrade(), await statusText()];
    expect(upgrade).toMatchObject({ run: run.id, next: { action: "forward", partition: 0 } });
    expect(text).toContain("INTERRUPTED at roll msgbroker-0, partition 0");
    expect(text).toContain("next: forward: every gate so far passed");

    const third = await startServe();
    await third.printed(
      new RegExp(`scheduler: resumed run ${run.id}: upgraded 4\\.5\\.0 → 4\\.6\\.0`),
      RUN_MS,
    );
    expect(lastRun()).toMatchObject({ id: run.id, state: "done", resumed: 2, partition: 0 });
    expect(runActions(lastRun())).toContain("upgrade.run.resume");
    await expectSettledOn("4.6.0");
  }, 180_000);

  it("killed during the rollback of a release the broker rejects: the next start rolls it back again, with the gate's reason", async () => {
    const planId = planTo("4.6.1", releases.broken("4.6.1"));
    // A daemon that gives up on the broken broker sooner; SIGTERM stops the one before cleanly.
    serve!.kill("SIGTERM");
    expect((await serve!.done).code).toBe(0);
    const daemon = await startServe(BROKEN_POD_TIMEOUT);
    killAt(
      daemon,
      (request) =>
        isStatefulSetApply(request) &&
        partitionOf(request.body) === 0 &&
        templateVersion(request.body) === "4.6.0",
    );
    await scheduleNow(planId, daemon);
    await killed(daemon);
    const run = runOfPlan(planId)!;
    expect(run.steps.map((step) => step.step)).toContain("rollback");
    expect(await interruptedUpgrade()).toMatchObject({
      run: run.id,
      runningIn: null,
      next: { action: "rollback" },
    });

    const again = await startServe();
    await again.printed(
      new RegExp(
        `scheduler: resumed run ${run.id}: rolled back: ready failed on msgbroker-1: not within 6 s`,
      ),
      RUN_MS,
    );
    expect(lastRun()).toMatchObject({ id: run.id, state: "rolled-back", resumed: 1 });
    expect(state.releases.get(run.toReleaseId!).status).toBe("failed");
    await expectSettledOn("4.6.0");
  }, 180_000);
});
