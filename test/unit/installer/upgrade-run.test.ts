import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { applyRelease, MemoryCluster, type ClusterObject } from "../../../installer/cluster/index.js";
import {
  DATA_NOT_ROLLED_BACK,
  rollbackRelease,
  runUpgrade,
  type HttpProber,
} from "../../../installer/upgrade/index.js";
import { AirlockError } from "../../../registry/oci/index.js";
import { NAMESPACE, render, type RenderInputs } from "../../../manifests/index.js";
import { BUNDLE_IMAGES, RELEASE, issueBroker } from "../manifests/plane-fixtures.js";
import { EventRecorder, fakeBrokers, fastClock, imageOf } from "./upgrade-fixtures.js";

const REVISION = "controller-revision-hash";
const TWO = { msgbroker: { replicas: 2 } };
const GATES = {
  podReadyTimeoutMs: 2_000,
  pollIntervalMs: 5,
  brokerTimeoutMs: 500,
  healthyPolls: 3,
  settleMs: 10_000,
};

let dir: string;
let inputs: RenderInputs;
let cluster: MemoryCluster;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-upgrade-run-"));
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
  return render(TWO, BUNDLE_IMAGES, { ...inputs, version }) as unknown as ClusterObject[];
}

/** Brokers for this test's cluster; /healthz 503 on pods running `brokenImage`. */
function brokers(brokenImage?: string): HttpProber {
  return fakeBrokers(cluster, () => brokenImage);
}

/** Watches both pods; `minReady` is the fewest Ready at any change after the start. */
function watchReadiness(): { minReady: () => number; stop: () => void } {
  const ready = new Map<string, boolean>();
  let min = Infinity;
  const stop = new AbortController();
  for (const name of ["msgbroker-0", "msgbroker-1"]) {
    void cluster.watch(
      { apiVersion: "v1", kind: "Pod", name, namespace: NAMESPACE },
      (pod) => {
        const conditions = (pod?.status?.conditions ?? []) as { type: string; status: string }[];
        ready.set(
          name,
          conditions.some((c) => c.type === "Ready" && c.status === "True"),
        );
        if (ready.size === 2) min = Math.min(min, [...ready.values()].filter(Boolean).length);
      },
      stop.signal,
    );
  }
  return { minReady: () => min, stop: () => stop.abort() };
}

async function pods(): Promise<Map<string, ClusterObject>> {
  const found = await cluster.list("v1", "Pod", { namespace: NAMESPACE });
  return new Map(found.map((pod) => [pod.metadata.name, pod]));
}

async function installed(version: string): Promise<ClusterObject[]> {
  cluster = new MemoryCluster({ podReadyMs: 20 });
  const objects = plane(version);
  await applyRelease(cluster, objects, { release: RELEASE, timeoutMs: 5_000 });
  return objects;
}

describe("runUpgrade on MemoryCluster", () => {
  it("rolls msgbroker-1 then msgbroker-0 through the partition, a gate after each, one pod Ready throughout", async () => {
    const previous = await installed("4.4.0");
    const next = plane("4.5.0");
    const before = await pods();
    const recorder = new EventRecorder();
    const slept: number[] = [];
    const readiness = watchReadiness();
    const result = await runUpgrade(cluster, {
      previous,
      next,
      recorder,
      imageAvailable: () => Promise.resolve(true),
      gates: GATES,
      probe: brokers(),
      clock: fastClock(slept),
    });
    readiness.stop();
    expect(result.outcome).toBe("upgraded");
    const moves = recorder.events.filter((event) => /^(partition|gate (ready|settle) msgbroker)/.test(event));
    expect(moves).toEqual([
      "partition 2",
      "partition 1",
      "gate ready msgbroker-1 passed",
      "gate settle msgbroker-1 passed",
      "partition 0",
      "gate ready msgbroker-0 passed",
      "gate settle msgbroker-0 passed",
    ]);
    const podGates = recorder.events.filter(
      (event) => event.includes(" msgbroker-1 ") && !event.includes("final:"),
    );
    expect(podGates).toEqual([
      "gate ready msgbroker-1 passed",
      "gate healthz msgbroker-1 passed",
      "gate routez msgbroker-1 passed",
      "gate settle msgbroker-1 passed",
    ]);
    expect(recorder.events.slice(-2)).toEqual(["gate final:routez msgbroker-1 passed", "done final-gate"]);
    expect(recorder.events.indexOf("done pre-gate")).toBeLessThan(recorder.events.indexOf("start config"));
    expect(slept.filter((ms) => ms === GATES.settleMs)).toHaveLength(2);
    expect(readiness.minReady()).toBeGreaterThanOrEqual(1);
    const after = await pods();
    for (const name of ["msgbroker-0", "msgbroker-1"]) {
      expect(after.get(name)!.metadata.uid).not.toBe(before.get(name)!.metadata.uid);
      expect((after.get(name)!.spec as { containers: { image: string }[] }).containers[0]!.image).toBe(
        imageOf(next),
      );
    }
    for (const gate of recorder.gates) expect(gate.finishedAt).toBeGreaterThanOrEqual(gate.startedAt);
  });

  it("rolls back when /healthz fails on the first pod: both pods end on the previous revision, msgbroker-0 never restarted", async () => {
    const previous = await installed("4.4.0");
    const next = plane("4.5.0");
    const before = await pods();
    const recorder = new EventRecorder();
    const readiness = watchReadiness();
    const result = await runUpgrade(cluster, {
      previous,
      next,
      recorder,
      imageAvailable: () => Promise.resolve(true),
      gates: GATES,
      probe: brokers(imageOf(next)),
      clock: fastClock([]),
    });
    readiness.stop();
    expect(result).toMatchObject({
      outcome: "rolled-back",
      reason: "healthz failed on msgbroker-1: not within 0.5 s: /healthz answered 503",
      notice: DATA_NOT_ROLLED_BACK,
    });
    // The run never got past the first pod: the partition went to 0 only in the rollback.
    const beforeRollback = recorder.events.slice(0, recorder.events.indexOf("start rollback"));
    expect(beforeRollback.filter((event) => event.startsWith("partition"))).toEqual([
      "partition 2",
      "partition 1",
    ]);
    expect(recorder.events.filter((event) => event.startsWith("gate ready msgbroker-0"))).toEqual([]);
    expect(recorder.events.at(-1)).toBe(
      `rolled back: ${result.outcome === "rolled-back" ? result.reason : ""}`,
    );
    expect(recorder.events).toContain("gate rollback:routez msgbroker-1 passed");
    const after = await pods();
    const previousRevision = before.get("msgbroker-0")!.metadata.labels![REVISION];
    for (const name of ["msgbroker-0", "msgbroker-1"]) {
      expect(after.get(name)!.metadata.labels![REVISION]).toBe(previousRevision);
      expect((after.get(name)!.spec as { containers: { image: string }[] }).containers[0]!.image).toBe(
        imageOf(previous),
      );
    }
    expect(after.get("msgbroker-0")!.metadata.uid).toBe(before.get("msgbroker-0")!.metadata.uid);
    expect(readiness.minReady()).toBeGreaterThanOrEqual(1);
  });

  it("rolls back when the first new pod never gets Ready (its image never pulls) within the timeout", async () => {
    const previous = await installed("4.4.0");
    const next = plane("4.5.0");
    cluster.failImage(imageOf(next), "ImagePullBackOff");
    const recorder = new EventRecorder();
    const result = await runUpgrade(cluster, {
      previous,
      next,
      recorder,
      imageAvailable: () => Promise.resolve(true),
      gates: { ...GATES, podReadyTimeoutMs: 300 },
      probe: brokers(),
      clock: fastClock([]),
    });
    expect(result.outcome).toBe("rolled-back");
    expect(result.outcome === "rolled-back" && result.reason).toMatch(
      /^ready failed on msgbroker-1: not within 0.3 s: ImagePullBackOff/,
    );
    const after = await pods();
    for (const pod of after.values()) {
      expect((pod.spec as { containers: { image: string }[] }).containers[0]!.image).toBe(imageOf(previous));
    }
    expect(after.size).toBe(2);
  });

  it("refuses before changing anything when the registry lacks a new image", async () => {
    const previous = await installed("4.4.0");
    const next = plane("4.5.0");
    const sts = { apiVersion: "apps/v1", kind: "StatefulSet", name: "msgbroker", namespace: NAMESPACE };
    const generation = (await cluster.get(sts))!.metadata.generation;
    const requests = cluster.requests.length;
    const recorder = new EventRecorder();
    const result = await runUpgrade(cluster, {
      previous,
      next,
      recorder,
      imageAvailable: (ref) => Promise.resolve(ref !== imageOf(next)),
      gates: GATES,
      probe: brokers(),
      clock: fastClock([]),
    });
    expect(result).toMatchObject({
      outcome: "refused",
      reason: `pre:images failed: the registry has no ${imageOf(next)}`,
    });
    expect(cluster.requests.slice(requests).filter((request) => !/^(get|list) /.test(request))).toEqual([]);
    expect((await cluster.get(sts))!.metadata.generation).toBe(generation);
    expect(recorder.events).toEqual([
      "start pre-gate",
      "gate pre:plane plane passed",
      "gate pre:certificates plane passed",
      "gate pre:images plane failed",
      "failed pre-gate",
    ]);
  });

  it("rollbackRelease by hand returns an upgraded plane to the previous release", async () => {
    const previous = await installed("4.4.0");
    const next = plane("4.5.0");
    await applyRelease(cluster, next, { release: RELEASE, timeoutMs: 5_000 });
    const recorder = new EventRecorder();
    const result = await rollbackRelease(cluster, previous, {
      recorder,
      reason: "operator asked",
      gates: GATES,
      probe: brokers(),
      clock: fastClock([]),
    });
    expect(result.notice).toBe(DATA_NOT_ROLLED_BACK);
    for (const pod of (await pods()).values()) {
      expect(pod.metadata.labels![REVISION]).toBe(result.revision);
      expect((pod.spec as { containers: { image: string }[] }).containers[0]!.image).toBe(imageOf(previous));
    }
    expect(recorder.events.at(-1)).toBe("rolled back: operator asked");
  });

  it("a rollback whose pods do not come back is ROLLBACK_FAILED, naming why, and leaves the plane in place", async () => {
    const previous = await installed("4.4.0");
    const next = plane("4.5.0");
    await applyRelease(cluster, next, { release: RELEASE, timeoutMs: 5_000 });
    cluster.failImage(imageOf(previous), "ImagePullBackOff");
    const recorder = new EventRecorder();
    const rollback = rollbackRelease(cluster, previous, {
      recorder,
      reason: "operator asked",
      gates: { ...GATES, podReadyTimeoutMs: 300 },
      probe: brokers(),
      clock: fastClock([]),
    });
    const error = (await rollback.catch((thrown: unknown) => thrown)) as AirlockError;
    expect(error).toBeInstanceOf(AirlockError);
    expect(error.code).toBe("ROLLBACK_FAILED");
    expect(error.message).toMatch(/rollback:ready failed on msgbroker-\d: not within 0.3 s: /);
    expect(error.message).toContain("(it began because operator asked)");
    expect(recorder.events).not.toContain("rolled back: operator asked");
    const sts = { apiVersion: "apps/v1", kind: "StatefulSet", name: "msgbroker", namespace: NAMESPACE };
    expect(await cluster.get(sts)).toBeDefined();
    expect((await pods()).size).toBe(2);
  });

  it("runs the bundle's declared HTTP probe after each pod, and rolls back when it fails", async () => {
    const previous = await installed("4.4.0");
    const next = plane("4.5.0");
    const probe = brokers();
    const asked: string[] = [];
    const recorder = new EventRecorder();
    const result = await runUpgrade(cluster, {
      previous,
      next,
      recorder,
      imageAvailable: () => Promise.resolve(true),
      gates: GATES,
      declaredGates: [{ name: "console", url: "http://console.hubble-system.svc/ready", status: 204 }],
      probe: (url, signal) => {
        if (!url.startsWith("http://console.")) return probe(url, signal);
        asked.push(url);
        return Promise.resolve({ status: 500, body: "" });
      },
      clock: fastClock([]),
    });
    expect(result.outcome === "rolled-back" && result.reason).toBe(
      "http:console failed on msgbroker-1: not within 0.5 s: http://console.hubble-system.svc/ready answered 500, not 204",
    );
    expect(asked.length).toBeGreaterThan(0);
    expect(recorder.events.filter((event) => event.startsWith("gate settle"))).toEqual([]);
  });

  it("refuses when a certificate of the new release expires within the configured days", async () => {
    const previous = await installed("4.4.0");
    const result = await runUpgrade(cluster, {
      previous,
      next: plane("4.5.0"),
      recorder: new EventRecorder(),
      imageAvailable: () => Promise.resolve(true),
      gates: { ...GATES, certificateMinDays: 100_000 },
      probe: brokers(),
      clock: fastClock([]),
    });
    expect(result.outcome).toBe("refused");
    expect(result.outcome === "refused" && result.reason).toMatch(
      /^pre:certificates failed: msgbroker-peer-tls\/tls.crt \(.*\) expires .*, in \d+ days: fewer than 100000$/,
    );
  });

  it("stops at once when its signal aborts mid-run, without rolling back: the recorder says how far it got", async () => {
    const previous = await installed("4.4.0");
    const stop = new AbortController();
    const recorder = new EventRecorder();
    const moved = recorder.partitionMoved.bind(recorder);
    recorder.partitionMoved = (name, partition) => {
      moved(name, partition);
      if (partition === 1) stop.abort(new Error("stopped by the test"));
    };
    const run = runUpgrade(cluster, {
      previous,
      next: plane("4.5.0"),
      recorder,
      imageAvailable: () => Promise.resolve(true),
      gates: GATES,
      probe: brokers(),
      clock: fastClock([]),
      signal: stop.signal,
    });
    await expect(run).rejects.toThrow("stopped by the test");
    expect(recorder.events.filter((event) => event.startsWith("partition"))).toEqual([
      "partition 2",
      "partition 1",
    ]);
    expect(recorder.events.at(-1)).toBe("failed roll msgbroker-1");
    expect(recorder.events.some((event) => event.includes("rollback"))).toBe(false);
  });
});
