/**
 * The run engine on the containerd node with real brokers, under load (issue 14, points 4-6): the
 * plane at 4.4.0 rolled to 4.5.0 one pod at a time through the partition, every gate against the
 * brokers' own monitor port, lame duck on each stop; then a 4.5.1 whose config the broker rejects,
 * rolled back once its first pod never gets Ready. The upgrade declares a Job gate, whose pods run
 * for real after each broker and in the final gate. Through both runs a client sends request/reply
 * traffic through the client Service's name, answered by a responder on the cluster, and retries as
 * a client does: every request must be answered, at least one broker Ready at every moment (each
 * change watched, and sampled on every request), both brokers routed to each other at the end. The
 * test registry holds one msgbroker image, so every version names it: what changes between releases
 * is the pod template (its version label, and for 4.5.1 the config), which is what makes the
 * StatefulSet roll.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyRelease, type ClusterObject, type MemoryCluster } from "../../installer/cluster/index.js";
import {
  DATA_NOT_ROLLED_BACK,
  runUpgrade,
  type DeclaredJobGate,
  type GateOutcome,
  type RunRecorder,
} from "../../installer/upgrade/index.js";
import type { ContainerdNode } from "../../installer/cluster/node/index.js";
import { issueClientCertificate, openPki } from "../../installer/pki/index.js";
import type { BrokerCertificatePems } from "../../manifests/index.js";
import type { NatsTls } from "../helpers/nats-client.js";
import { describeTraffic, startTraffic, type TrafficReport } from "../helpers/nats-traffic.js";
import { brokersRouted, isReady, startNodeHarness, type NodeHarness } from "../helpers/node-cluster.js";
import { nodeReleases } from "../helpers/node-releases.js";
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

const PODS = ["msgbroker-0", "msgbroker-1"] as const;
/** The client Service's name as a client in the cluster dials it, and a broker pod's stable name. */
const CLIENT_SERVICE = `msgbroker.${PLANE}.svc.cluster.local`;
const podHost = (ordinal: number): string =>
  `msgbroker-${ordinal}.msgbroker-headless.${PLANE}.svc.cluster.local`;

let harness: NodeHarness;
let node: ContainerdNode;
let cluster: MemoryCluster;
let certificates: BrokerCertificatePems;
let tls: NatsTls;

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

function plane(version: string): ClusterObject[] {
  return nodeReleases(harness, certificates, ["4.4.0", "4.5.0", "4.5.1"]).plane(version);
}

/** 4.5.1 with a config nats-server refuses at start: a lame-duck duration below its 30 s minimum. */
function broken(): ClusterObject[] {
  return nodeReleases(harness, certificates, ["4.4.0", "4.5.0", "4.5.1"]).broken("4.5.1");
}

/**
 * The fewest pods Ready at any moment once both were: every change watched, and the pods listed on
 * every tick of the traffic.
 */
function readinessLog(): { sample: () => Promise<void>; minReady: () => number; stop: () => void } {
  const ready = new Map<string, boolean>();
  let min = Infinity;
  const note = (): void => {
    if (ready.size === 2) min = Math.min(min, [...ready.values()].filter(Boolean).length);
  };
  const stop = new AbortController();
  for (const name of PODS) {
    void cluster.watch(
      { apiVersion: "v1", kind: "Pod", name, namespace: PLANE },
      (pod) => {
        ready.set(name, pod !== undefined && isReady(pod));
        note();
      },
      stop.signal,
    );
  }
  const sample = async (): Promise<void> => {
    const pods = await cluster.list("v1", "Pod", { namespace: PLANE });
    const listed = new Map(pods.map((pod) => [pod.metadata.name, isReady(pod)]));
    for (const name of PODS) ready.set(name, listed.get(name) ?? false);
    note();
  };
  return { sample, minReady: () => min, stop: () => stop.abort() };
}

/** A declared gate: a Job running the broker image's `nats-server --version`, which exits 0. */
function versionJob(): DeclaredJobGate {
  return {
    name: "broker-version",
    timeoutMs: 30_000,
    job: {
      apiVersion: "batch/v1",
      kind: "Job",
      metadata: { name: "broker-version" },
      spec: {
        backoffLimit: 0,
        template: {
          spec: {
            restartPolicy: "Never",
            securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000 },
            containers: [{ name: "version", image: harness.image, args: ["--version"] }],
          },
        },
      },
    },
  };
}

async function revisions(): Promise<Record<string, string | undefined>> {
  const pods = await cluster.list("v1", "Pod", { namespace: PLANE });
  return Object.fromEntries(pods.map((pod) => [pod.metadata.name, pod.metadata.labels?.[REVISION]]));
}

/** Request/reply through the client Service's name for as long as `during` runs, readiness sampled on each tick. */
async function underTraffic<T>(
  what: string,
  during: () => Promise<T>,
): Promise<{ result: T; report: TrafficReport; minReady: number }> {
  const readiness = readinessLog();
  const traffic = await startTraffic({
    service: CLIENT_SERVICE,
    podHost,
    replicas: 2,
    port: 4222,
    tls,
    resolve: (name) => node.resolve(name),
    onTick: readiness.sample,
  });
  const outcome = await during().then(
    (result) => ({ result }),
    (error: unknown) => ({ error }),
  );
  readiness.stop();
  const report = await traffic.stop();
  console.log(`${what}: ${describeTraffic(report)}; fewest brokers Ready at once: ${readiness.minReady()}`);
  if ("error" in outcome) throw outcome.error;
  return { result: outcome.result, report, minReady: readiness.minReady() };
}

beforeAll(async () => {
  harness = await startNodeHarness();
  node = await harness.newNode();
  cluster = await harness.newCluster(node);
  const site = join(harness.root, "site");
  certificates = (await issueBroker(site, { replicas: 2 })).pems;
  const pki = openPki(site);
  const issued = await issueClientCertificate(pki, "upgrade-traffic");
  tls = {
    ca: await readFile(pki.caFile, "utf8"),
    cert: await readFile(issued.certFile, "utf8"),
    key: await readFile(issued.keyFile, "utf8"),
  };
}, 120_000);

afterAll(async () => {
  await harness?.close();
}, 180_000);

describe("runUpgrade with real brokers on the containerd node, under request/reply traffic", () => {
  it("rolls 4.4.0 to 4.5.0 pod by pod, then rolls a 4.5.1 the broker rejects back to 4.5.0, every request answered", async () => {
    const v440 = plane("4.4.0");
    await applyRelease(cluster, v440, { release: RELEASE, timeoutMs: 120_000 });

    const v450 = plane("4.5.0");
    const upgrade = new Recorder();
    const rolled = await underTraffic("4.4.0 → 4.5.0", () =>
      runUpgrade(cluster, {
        previous: v440,
        next: v450,
        recorder: upgrade,
        imageAvailable: () => Promise.resolve(true),
        gates: GATES,
        declaredGates: [versionJob()],
      }),
    );
    expect(rolled.result.outcome, upgrade.events.join("\n")).toBe("upgraded");
    expect(upgrade.events.filter((event) => event.startsWith("partition"))).toEqual([
      "partition 2",
      "partition 1",
      "partition 0",
    ]);
    expect(upgrade.events).toContain("gate routez msgbroker-1 passed");
    expect(upgrade.events).toContain("gate final:routez msgbroker-0 passed");
    // The declared Job ran for real after each pod and in the final gate, and was cleared away.
    expect(upgrade.events.filter((event) => event.startsWith("gate job:"))).toEqual([
      "gate job:broker-version msgbroker-1 passed",
      "gate job:broker-version msgbroker-0 passed",
      "gate job:broker-version plane passed",
    ]);
    expect(await cluster.list("batch/v1", "Job", { namespace: PLANE })).toEqual([]);
    const onNew = await revisions();
    expect(onNew["msgbroker-0"]).toBe(onNew["msgbroker-1"]);
    expect(await brokersRouted(cluster, PLANE)).toBe(true);
    expect(rolled.minReady).toBeGreaterThanOrEqual(1);
    expect(rolled.report.unanswered).toEqual([]);
    expect(rolled.report.answered).toBe(rolled.report.sent);
    // Both brokers went through lame duck, so both clients moved at least once.
    expect(rolled.report.requesterReconnects).toBeGreaterThanOrEqual(1);
    expect(rolled.report.responderReconnects).toBeGreaterThanOrEqual(1);

    const failing = new Recorder();
    const back = await underTraffic("4.5.0 → broken 4.5.1, rolled back", () =>
      runUpgrade(cluster, {
        previous: v450,
        next: broken(),
        recorder: failing,
        imageAvailable: () => Promise.resolve(true),
        gates: { ...GATES, podReadyTimeoutMs: 20_000 },
      }),
    );
    const result = back.result;
    expect(result.outcome, failing.events.join("\n")).toBe("rolled-back");
    expect(result.outcome === "rolled-back" && result.reason).toMatch(
      /^ready failed on msgbroker-1: not within 20 s: CrashLoopBackOff .*exit code 1/,
    );
    expect(result.outcome === "rolled-back" && result.notice).toBe(DATA_NOT_ROLLED_BACK);
    expect(failing.events).toContain("gate rollback:routez msgbroker-1 passed");
    expect(await revisions()).toEqual(onNew);
    expect(await brokersRouted(cluster, PLANE)).toBe(true);
    expect(back.minReady).toBeGreaterThanOrEqual(1);
    expect(back.report.unanswered).toEqual([]);
    expect(back.report.answered).toBe(back.report.sent);
  }, 600_000);
});
