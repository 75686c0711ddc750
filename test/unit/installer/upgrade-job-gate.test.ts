/**
 * A Job the bundle declares as a gate (issue 14, point 4), on MemoryCluster's Job controller with
 * simulated pods: the run creates it after each pod and in the final gate, each time under a fresh
 * name; one that succeeds lets the run go on and is deleted, one that fails (its pod exits 1, past
 * the backoff limit) fails the gate on the first pod, and the run rolls back with the Job left for
 * its logs. The controller itself: one pod at a time until one succeeds or the pods failed more than
 * backoffLimit times; a Job whose pod would restart always is refused as the API server refuses it.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { applyRelease, MemoryCluster, type ClusterObject } from "../../../installer/cluster/index.js";
import {
  runUpgrade,
  type DeclaredJobGate,
  type GateOutcome,
  type RunRecorder,
} from "../../../installer/upgrade/index.js";
import { NAMESPACE, render, type RenderInputs } from "../../../manifests/index.js";
import { BUNDLE_IMAGES, RELEASE, issueBroker } from "../manifests/plane-fixtures.js";
import { fakeBrokers, fastClock, REPLICAS, TEST_GATES } from "./upgrade-fixtures.js";

const GATES = { ...TEST_GATES, brokerTimeoutMs: 2_000 };

let dir: string;
let inputs: RenderInputs;
let cluster: MemoryCluster;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-job-gate-"));
  inputs = {
    release: RELEASE,
    version: "4.4.0",
    certificates: (await issueBroker(dir, { replicas: 2 })).pems,
  };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => cluster.close());

function plane(version: string): ClusterObject[] {
  return render(REPLICAS, BUNDLE_IMAGES, {
    ...inputs,
    version,
  }) as unknown as ClusterObject[];
}

function smokeJob(image: string, backoffLimit = 0): DeclaredJobGate {
  return {
    name: "smoke",
    job: {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "plane-smoke" },
      spec: {
        backoffLimit,
        template: { spec: { restartPolicy: "Never", containers: [{ name: "smoke", image }] } },
      },
    },
  };
}

/** Each gate's outcome as `gate pod passed|failed: detail`, and the reason of a rollback. */
function recorder(): RunRecorder & { gates: string[]; outcomes: GateOutcome[] } {
  const gates: string[] = [];
  const outcomes: GateOutcome[] = [];
  return {
    gates,
    outcomes,
    stepStarted: () => undefined,
    stepFinished: () => undefined,
    partitionMoved: () => undefined,
    rolledBack: () => undefined,
    gate(outcome) {
      outcomes.push(outcome);
      gates.push(`${outcome.gate} ${outcome.pod ?? "plane"} ${outcome.passed ? "passed" : "failed"}`);
    },
  };
}

async function upgradeWith(
  gate: DeclaredJobGate,
  failingImage?: string,
): Promise<{
  result: Awaited<ReturnType<typeof runUpgrade>>;
  record: ReturnType<typeof recorder>;
}> {
  cluster = new MemoryCluster({ podReadyMs: 20 });
  if (failingImage !== undefined) cluster.failImage(failingImage, "the smoke test found no broker");
  const previous = plane("4.4.0");
  await applyRelease(cluster, previous, { release: RELEASE, timeoutMs: 5_000 });
  const record = recorder();
  const result = await runUpgrade(cluster, {
    previous,
    next: plane("4.5.0"),
    recorder: record,
    imageAvailable: () => Promise.resolve(true),
    gates: GATES,
    declaredGates: [gate],
    probe: fakeBrokers(cluster),
    clock: fastClock(),
  });
  return { result, record };
}

describe("a declared Job gate", () => {
  it("runs a Job after each pod and in the final gate, each under a fresh name, and deletes the Jobs that succeeded", async () => {
    const { result, record } = await upgradeWith(smokeJob("registry.local/hubble/smoke:1"));
    expect(result.outcome, record.gates.join("\n")).toBe("upgraded");
    expect(record.gates.filter((gate) => gate.startsWith("job:"))).toEqual([
      "job:smoke msgbroker-1 passed",
      "job:smoke msgbroker-0 passed",
      "job:smoke plane passed",
    ]);
    const names = record.outcomes
      .filter((outcome) => outcome.gate === "job:smoke")
      .map((outcome) => /Job hubble-system\/(plane-smoke-[0-9a-f]{6}) succeeded/.exec(outcome.detail)?.[1]);
    expect(new Set(names).size).toBe(3);
    expect(names).not.toContain(undefined);
    expect(await cluster.list("batch/v1", "Job", { namespace: NAMESPACE })).toEqual([]);
    const left = await cluster.list("v1", "Pod", { namespace: NAMESPACE });
    expect(left.map((pod) => pod.metadata.name).sort()).toEqual(["msgbroker-0", "msgbroker-1"]);
  });

  it("fails the gate on the first pod when the Job fails, rolls back, and leaves the failed Job for its logs", async () => {
    const { result, record } = await upgradeWith(
      smokeJob("registry.local/hubble/smoke-broken:1"),
      "smoke-broken",
    );
    expect(result.outcome, record.gates.join("\n")).toBe("rolled-back");
    expect(result.outcome === "rolled-back" && result.reason).toMatch(
      /^job:smoke failed on msgbroker-1: Job hubble-system\/plane-smoke-[0-9a-f]{6} failed: BackoffLimitExceeded \(Job has reached the specified backoff limit\) \(plane-smoke-[0-9a-f]{6}-[0-9a-f]{5} exited 1: the smoke test found no broker\); its logs: kubectl -n hubble-system logs job\/plane-smoke-/,
    );
    expect(record.gates).not.toContain("job:smoke msgbroker-0 passed");
    const jobs = await cluster.list("batch/v1", "Job", { namespace: NAMESPACE });
    expect(jobs).toHaveLength(1);
    expect(jobs[0]!.status).toMatchObject({ failed: 1, succeeded: 0, active: 0 });
  });
});

describe("MemoryCluster's Job controller", () => {
  it("makes a pod at a time until the pods failed more than backoffLimit times, then marks the Job Failed", async () => {
    cluster = new MemoryCluster({ podReadyMs: 5 });
    cluster.failImage("exits-1", "boom");
    await cluster.apply(
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "jobs" } },
      { fieldManager: "test" },
    );
    const job = {
      ...smokeJob("registry.local/exits-1:1", 2).job,
      metadata: { name: "retry", namespace: "jobs" },
    };
    await cluster.apply(job, { fieldManager: "test" });
    const ended = await new Promise<ClusterObject>((resolve) => {
      const stop = new AbortController();
      void cluster.watch(
        { apiVersion: "batch/v1", kind: "Job", name: "retry", namespace: "jobs" },
        (current) => {
          if ((current?.status?.conditions as unknown[] | undefined)?.length) {
            stop.abort();
            resolve(current!);
          }
        },
        stop.signal,
      );
    });
    expect(ended.status).toMatchObject({
      failed: 3,
      succeeded: 0,
      conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded" }],
    });
    const pods = await cluster.list("v1", "Pod", {
      namespace: "jobs",
      labelSelector: "batch.kubernetes.io/job-name=retry",
    });
    expect(pods.map((pod) => pod.status?.phase)).toEqual(["Failed", "Failed", "Failed"]);

    await cluster.delete({ apiVersion: "batch/v1", kind: "Job", name: "retry", namespace: "jobs" });
    expect(await cluster.list("v1", "Pod", { namespace: "jobs" })).toEqual([]);
  });

  it("refuses a Job whose pod would restart always, as the API server does", async () => {
    cluster = new MemoryCluster();
    await cluster.apply(
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "jobs" } },
      { fieldManager: "test" },
    );
    const job = smokeJob("registry.local/smoke:1").job;
    const always = {
      ...job,
      metadata: { name: "always", namespace: "jobs" },
      spec: { template: { spec: { containers: [{ name: "smoke", image: "x" }] } } },
    };
    await expect(cluster.apply(always, { fieldManager: "test" })).rejects.toMatchObject({
      message:
        'Job.batch "always" is invalid: spec.template.spec.restartPolicy: Required value: supported values: "OnFailure", "Never"',
    });
  });
});
