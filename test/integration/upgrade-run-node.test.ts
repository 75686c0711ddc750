/**
 * The run engine on the containerd node with real brokers (issue 14, points 4-5): the plane at 4.4.0
 * rolled to 4.5.0 one pod at a time through the partition, every gate against the brokers' own
 * monitor port, lame duck on each stop; then a 4.5.1 whose config the broker rejects, rolled back
 * once its first pod never gets Ready. The test registry holds one msgbroker image, so every version
 * names it: what changes between releases is the pod template (its version label, and for 4.5.1 the
 * config), which is what makes the StatefulSet roll.
 */
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { BundleMetadata } from "../../bundle/index.js";
import { applyRelease, type ClusterObject, type MemoryCluster } from "../../installer/cluster/index.js";
import {
  DATA_NOT_ROLLED_BACK,
  runUpgrade,
  type GateOutcome,
  type RunRecorder,
} from "../../installer/upgrade/index.js";
import { render, type BrokerCertificatePems } from "../../manifests/index.js";
import { isReady, startNodeHarness, type NodeHarness } from "../helpers/node-cluster.js";
import { BROKER_REPOSITORY } from "../helpers/node-registry.js";
import { issueBroker } from "../unit/manifests/plane-fixtures.js";

const PLANE = "hubble-system";
const RELEASE = "mgmt";
const REVISION = "controller-revision-hash";
const GATES = {
  podReadyTimeoutMs: 60_000,
  pollIntervalMs: 500,
  brokerTimeoutMs: 30_000,
  healthyPolls: 3,
  settleMs: 1_000,
};

let harness: NodeHarness;
let cluster: MemoryCluster;
let certificates: BrokerCertificatePems;

class Recorder implements RunRecorder {
  readonly events: string[] = [];
  stepStarted(step: string): void {
    this.events.push(`start ${step}`);
  }
  stepFinished(step: string, _at: number, outcome: string, detail?: string): void {
    this.events.push(`${outcome} ${step}${detail === undefined ? "" : `: ${detail}`}`);
  }
  gate(outcome: GateOutcome): void {
    this.events.push(
      `gate ${outcome.gate} ${outcome.pod ?? "plane"} ${outcome.passed ? "passed" : "failed"}`,
    );
  }
  partitionMoved(_name: string, partition: number): void {
    this.events.push(`partition ${partition}`);
  }
  rolledBack(reason: string): void {
    this.events.push(`rolled back: ${reason}`);
  }
}

function imagesFor(versions: string[]): BundleMetadata["images"] {
  const digest = harness.registry.image.digest as `sha256:${string}`;
  return versions.map((version) => ({
    ref: `${BROKER_REPOSITORY}:${version}`,
    digest,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    size: 1,
    totalBytes: 1,
    blobs: 2,
    platforms: [harness.registry.image.platform],
    kind: "image",
    sourceDigest: digest,
  }));
}

function plane(version: string): ClusterObject[] {
  return render({}, imagesFor(["4.4.0", "4.5.0", "4.5.1"]), {
    release: RELEASE,
    version,
    certificates,
  }) as unknown as ClusterObject[];
}

/** 4.5.1 with a config nats-server refuses at start: a lame-duck duration below its 30 s minimum. */
function broken(): ClusterObject[] {
  return plane("4.5.1").map((object) => {
    if (object.kind !== "ConfigMap") return object;
    const data = object.data as Record<string, string>;
    return {
      ...object,
      data: {
        "nats.conf": data["nats.conf"]!.replace('lame_duck_duration: "30s"', 'lame_duck_duration: "5s"'),
      },
    };
  });
}

/** Watches both pods; the fewest Ready at any change once both were seen. */
function watchReadiness(): { minReady: () => number; stop: () => void } {
  const ready = new Map<string, boolean>();
  let min = Infinity;
  const stop = new AbortController();
  for (const name of ["msgbroker-0", "msgbroker-1"]) {
    void cluster.watch(
      { apiVersion: "v1", kind: "Pod", name, namespace: PLANE },
      (pod) => {
        ready.set(name, pod !== undefined && isReady(pod));
        if (ready.size === 2) min = Math.min(min, [...ready.values()].filter(Boolean).length);
      },
      stop.signal,
    );
  }
  return { minReady: () => min, stop: () => stop.abort() };
}

async function revisions(): Promise<Record<string, string | undefined>> {
  const pods = await cluster.list("v1", "Pod", { namespace: PLANE });
  return Object.fromEntries(pods.map((pod) => [pod.metadata.name, pod.metadata.labels?.[REVISION]]));
}

beforeAll(async () => {
  harness = await startNodeHarness();
  cluster = await harness.newCluster(await harness.newNode());
  certificates = (await issueBroker(join(harness.root, "site"), { replicas: 2 })).pems;
}, 120_000);

afterAll(async () => {
  await harness?.close();
}, 180_000);

describe("runUpgrade with real brokers on the containerd node", () => {
  it("rolls 4.4.0 to 4.5.0 pod by pod, then rolls a 4.5.1 the broker rejects back to 4.5.0", async () => {
    const v440 = plane("4.4.0");
    await applyRelease(cluster, v440, { release: RELEASE, timeoutMs: 120_000 });

    const v450 = plane("4.5.0");
    const upgrade = new Recorder();
    const readiness = watchReadiness();
    const upgraded = await runUpgrade(cluster, {
      previous: v440,
      next: v450,
      recorder: upgrade,
      imageAvailable: () => Promise.resolve(true),
      gates: GATES,
    });
    expect(upgraded.outcome, upgrade.events.join("\n")).toBe("upgraded");
    expect(upgrade.events.filter((event) => event.startsWith("partition"))).toEqual([
      "partition 2",
      "partition 1",
      "partition 0",
    ]);
    expect(upgrade.events).toContain("gate routez msgbroker-1 passed");
    expect(upgrade.events).toContain("gate final:routez msgbroker-0 passed");
    const onNew = await revisions();
    expect(onNew["msgbroker-0"]).toBe(onNew["msgbroker-1"]);

    const failing = new Recorder();
    const result = await runUpgrade(cluster, {
      previous: v450,
      next: broken(),
      recorder: failing,
      imageAvailable: () => Promise.resolve(true),
      gates: { ...GATES, podReadyTimeoutMs: 20_000 },
    });
    readiness.stop();
    expect(result.outcome, failing.events.join("\n")).toBe("rolled-back");
    expect(result.outcome === "rolled-back" && result.reason).toMatch(
      /^ready failed on msgbroker-1: not within 20 s: CrashLoopBackOff .*exit code 1/,
    );
    expect(result.outcome === "rolled-back" && result.notice).toBe(DATA_NOT_ROLLED_BACK);
    expect(failing.events).toContain("gate rollback:routez msgbroker-1 passed");
    expect(await revisions()).toEqual(onNew);
    expect(readiness.minReady()).toBeGreaterThanOrEqual(1);
  }, 600_000);
});
