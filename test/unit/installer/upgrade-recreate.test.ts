/**
 * A run whose changes the API server refuses in place, on MemoryCluster (which refuses them as
 * kube-apiserver 1.32 does): broker persistence turned on changes the StatefulSet's claim templates,
 * so the StatefulSet is deleted orphaning its pods, applied again, and its adopted pods rolled one
 * at a time behind the gates; a rollback does the same back. An immutable ConfigMap is recreated.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { applyRelease, MemoryCluster, type ClusterObject } from "../../../installer/cluster/index.js";
import { diffReleases, runUpgrade } from "../../../installer/upgrade/index.js";
import { NAMESPACE, render, type RenderInputs } from "../../../manifests/index.js";
import { BUNDLE_IMAGES, RELEASE, issueBroker } from "../manifests/plane-fixtures.js";
import { EventRecorder, TEST_GATES, fakeBrokers, fastClock, imageOf } from "./upgrade-fixtures.js";

const REVISION = "controller-revision-hash";
const STS = { apiVersion: "apps/v1", kind: "StatefulSet", name: "msgbroker", namespace: NAMESPACE };
let dir: string;
let inputs: RenderInputs;
let cluster: MemoryCluster;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-upgrade-recreate-"));
  inputs = {
    release: RELEASE,
    version: "4.4.0",
    certificates: (await issueBroker(dir, { replicas: 2 })).pems,
  };
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(() => cluster.close());

function plane(version: string, persistence: boolean, settings?: string): ClusterObject[] {
  const values = { msgbroker: { replicas: 2, persistence: { enabled: persistence } } };
  const objects = render(values, BUNDLE_IMAGES, { ...inputs, version }) as unknown as ClusterObject[];
  if (settings === undefined) return objects;
  const frozen: ClusterObject = {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "site-settings", namespace: NAMESPACE },
    immutable: true,
    data: { settings },
  };
  return [...objects, frozen];
}

/** Every pod's uid and Ready, at every change, so a test sees whether one was ever restarted or all down. */
function watchPods(): { uids: (name: string) => Set<string>; minReady: () => number; stop: () => void } {
  const seen = new Map<string, Set<string>>();
  const ready = new Map<string, boolean>();
  let min = Infinity;
  const stop = new AbortController();
  for (const name of ["msgbroker-0", "msgbroker-1"]) {
    seen.set(name, new Set());
    void cluster.watch(
      { apiVersion: "v1", kind: "Pod", name, namespace: NAMESPACE },
      (pod) => {
        if (pod?.metadata.uid !== undefined) seen.get(name)!.add(pod.metadata.uid);
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
  return { uids: (name) => seen.get(name)!, minReady: () => min, stop: () => stop.abort() };
}

async function installed(objects: ClusterObject[]): Promise<void> {
  cluster = new MemoryCluster({ podReadyMs: 10 });
  await applyRelease(cluster, objects, { release: RELEASE, timeoutMs: 5_000 });
}

async function pods(): Promise<Map<string, ClusterObject>> {
  return new Map(
    (await cluster.list("v1", "Pod", { namespace: NAMESPACE })).map((pod) => [pod.metadata.name, pod]),
  );
}

function claimsOf(pod: ClusterObject): string[] {
  const volumes =
    (pod.spec as { volumes?: { persistentVolumeClaim?: { claimName: string } }[] }).volumes ?? [];
  return volumes.flatMap((volume) => volume.persistentVolumeClaim?.claimName ?? []);
}

describe("runUpgrade with changes the API server refuses in place", () => {
  it("turns broker persistence on: the plan says recreate; the StatefulSet is recreated orphaning its pods, which roll one at a time onto claims", async () => {
    const previous = plane("4.4.0", false);
    const next = plane("4.5.0", true);
    const disruption = diffReleases(previous, next).find(
      (diff) => diff.ref.kind === "StatefulSet",
    )!.disruption;
    expect(disruption).toMatchObject({ kind: "recreate", fields: ["spec.volumeClaimTemplates"] });
    await installed(previous);
    // As a real API server would, the cluster refuses the new StatefulSet in place.
    await expect(applyRelease(cluster, next, { release: RELEASE, timeoutMs: 5_000 })).rejects.toMatchObject({
      code: "CLUSTER_FIELD_IMMUTABLE",
    });
    const before = await pods();
    const watching = watchPods();
    const recorder = new EventRecorder();
    const result = await runUpgrade(cluster, {
      previous,
      next,
      recorder,
      imageAvailable: () => Promise.resolve(true),
      gates: TEST_GATES,
      probe: fakeBrokers(cluster),
      clock: fastClock(),
    });
    watching.stop();
    expect(result.outcome).toBe("upgraded");
    const steps = recorder.events.filter((event) =>
      /^(start recreate|done recreate|partition|gate ready msgbroker)/.test(event),
    );
    expect(steps).toEqual([
      "start recreate StatefulSet hubble-system/msgbroker",
      "done recreate StatefulSet hubble-system/msgbroker",
      "partition 2",
      "partition 1",
      "gate ready msgbroker-1 passed",
      "partition 0",
      "gate ready msgbroker-0 passed",
    ]);
    expect(cluster.requests).toContain("delete StatefulSet hubble-system/msgbroker");
    // Orphaned, not deleted: each pod was replaced once, by its roll, and one broker was Ready throughout.
    for (const name of ["msgbroker-0", "msgbroker-1"]) {
      expect(watching.uids(name).size).toBe(2);
      expect(watching.uids(name)).toContain(before.get(name)!.metadata.uid);
    }
    expect(watching.minReady()).toBeGreaterThanOrEqual(1);
    const sts = (await cluster.get(STS))!;
    expect((sts.spec as { volumeClaimTemplates?: unknown[] }).volumeClaimTemplates).toHaveLength(1);
    for (const [name, pod] of await pods()) {
      expect(claimsOf(pod)).toEqual([`data-${name}`]);
      expect(pod.metadata.labels![REVISION]).toBe(sts.status!.updateRevision);
    }
    expect(recorder.events.at(-1)).toBe("done final-gate");
  });

  it("rolls back the same way when the first pod's gate fails: recreated again, the pod that never rolled adopted untouched", async () => {
    const previous = plane("4.4.0", false);
    const next = plane("4.5.0", true);
    await installed(previous);
    const before = await pods();
    const watching = watchPods();
    const recorder = new EventRecorder();
    const result = await runUpgrade(cluster, {
      previous,
      next,
      recorder,
      imageAvailable: () => Promise.resolve(true),
      gates: TEST_GATES,
      probe: fakeBrokers(cluster, () => imageOf(next)),
      clock: fastClock(),
    });
    watching.stop();
    expect(result).toMatchObject({
      outcome: "rolled-back",
      reason: expect.stringMatching(/^healthz failed on msgbroker-1/) as unknown,
    });
    const rollback = recorder.events.slice(recorder.events.indexOf("start rollback"));
    expect(rollback).toContain("start recreate StatefulSet hubble-system/msgbroker");
    const sts = (await cluster.get(STS))!;
    expect((sts.spec as { volumeClaimTemplates?: unknown }).volumeClaimTemplates).toBeUndefined();
    const after = await pods();
    for (const pod of after.values()) {
      expect(pod.metadata.labels![REVISION]).toBe(before.get("msgbroker-0")!.metadata.labels![REVISION]);
      expect(claimsOf(pod)).toEqual([]);
    }
    expect([...watching.uids("msgbroker-0")]).toEqual([before.get("msgbroker-0")!.metadata.uid]);
    expect(watching.minReady()).toBeGreaterThanOrEqual(1);
  });

  it("recreates an immutable ConfigMap whose data changes, just before the config is applied", async () => {
    const previous = plane("4.4.0", false, "a");
    const next = plane("4.5.0", false, "b");
    await installed(previous);
    const recorder = new EventRecorder();
    const result = await runUpgrade(cluster, {
      previous,
      next,
      recorder,
      imageAvailable: () => Promise.resolve(true),
      gates: TEST_GATES,
      probe: fakeBrokers(cluster),
      clock: fastClock(),
    });
    expect(result.outcome).toBe("upgraded");
    const config = recorder.events.slice(
      recorder.events.indexOf("start config"),
      recorder.events.indexOf("done config"),
    );
    expect(config).toEqual([
      "start config",
      "start recreate ConfigMap hubble-system/site-settings",
      "done recreate ConfigMap hubble-system/site-settings",
    ]);
    const settings = await cluster.get({
      apiVersion: "v1",
      kind: "ConfigMap",
      name: "site-settings",
      namespace: NAMESPACE,
    });
    expect(settings?.data).toEqual({ settings: "b" });
    expect(recorder.events).not.toContain("start recreate StatefulSet hubble-system/msgbroker");
  });
});
