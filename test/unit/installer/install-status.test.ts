/**
 * `readSiteStatus` over a MemoryCluster: healthy once the plane has rolled out, and the problems
 * named when it has not (a pod waiting on its image) or when nothing is installed.
 */
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MemoryCluster, applyRelease, type ClusterObject } from "../../../installer/cluster/index.js";
import { missingRoutes, readSiteStatus, routesByPod } from "../../../installer/install/index.js";
import { openState } from "../../../installer/state/index.js";
import { render } from "../../../manifests/index.js";
import { BUNDLE_IMAGES, RELEASE, VERSION, issueBroker } from "../manifests/plane-fixtures.js";
import { expectAirlockError } from "../../helpers/fixtures.js";

let dataDir: string;
let cluster: MemoryCluster;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-status-"));
  cluster = new MemoryCluster();
});

afterEach(async () => {
  cluster.close();
  await rm(dataDir, { recursive: true, force: true });
});

/** A site whose install finished its cluster step and deployed a release of the rendered plane. */
async function installedSite(): Promise<ClusterObject[]> {
  const certificates = (await issueBroker(dataDir, { replicas: 2 })).pems;
  const objects = render({}, BUNDLE_IMAGES, { release: RELEASE, version: VERSION, certificates });
  const state = openState(dataDir, { actor: "test" });
  try {
    const install = state.installs.start({
      bundleDigest: "sha256:aa",
      bundleName: RELEASE,
      version: VERSION,
      steps: ["cluster"],
    });
    state.installs.startStep(install.id, "cluster");
    state.installs.finishStep(install.id, "cluster", { kind: "kubeconfig", kubeconfig: "memory" });
    const release = state.releases.record({
      installId: install.id,
      bundleDigest: "sha256:aa",
      bundleName: RELEASE,
      version: VERSION,
      valuesGiven: {},
      valuesEffective: {},
      objects,
    });
    state.releases.deploy(release.id);
    state.installs.finish(install.id, "done");
  } finally {
    state.close();
  }
  return objects as unknown as ClusterObject[];
}

describe("airlock status", () => {
  it("is healthy once the plane has rolled out: brokers ready, revisions equal, certificates valid", async () => {
    const objects = await installedSite();
    await applyRelease(cluster, objects, { release: RELEASE, timeoutMs: 10_000 });
    const status = await readSiteStatus({ dataDir, connect: () => cluster });
    expect(status.problems).toEqual([]);
    expect(status.healthy).toBe(true);
    expect(status.release).toMatchObject({ id: 1, bundle: RELEASE, version: VERSION });
    expect(status.plane).toMatchObject({
      kubeconfig: "memory",
      reachable: true,
      msgbroker: { ready: 2, desired: 2, rolledOut: true },
    });
    expect(status.plane!.msgbroker!.currentRevision).toBe(status.plane!.msgbroker!.updateRevision);
    expect(status.certificates.map((certificate) => certificate.status)).toEqual(
      status.certificates.map(() => "ok"),
    );
    expect(status.events[0]).toMatchObject({ action: "install.finish", outcome: "ok" });
    // Simulated pods have no address: their routes are unknown, which is no problem.
    expect(status.plane!.pods.map((pod) => pod.routes)).toEqual([
      { reachable: false, detail: "no pod IP" },
      { reachable: false, detail: "no pod IP" },
    ]);
  });

  it("names each pod that is not ready and why, and the rollout that did not finish", async () => {
    const objects = await installedSite();
    cluster.failImage("hubble/msgbroker");
    for (const object of objects) await cluster.apply(object, { fieldManager: "airlock" });
    const status = await readSiteStatus({ dataDir, connect: () => cluster });
    expect(status.healthy).toBe(false);
    expect(status.plane?.pods.map((pod) => [pod.name, pod.ready, pod.waiting])).toEqual([
      ["msgbroker-0", false, "ImagePullBackOff"],
      ["msgbroker-1", false, "ImagePullBackOff"],
    ]);
    expect(status.problems).toEqual([
      expect.stringMatching(/^msgbroker: 0 of 2 ready/),
      "pod msgbroker-0 is not ready (ImagePullBackOff)",
      "pod msgbroker-1 is not ready (ImagePullBackOff)",
    ]);
  });

  it("shows an upgrade run whose process died, and what taking it up will do", async () => {
    const objects = await installedSite();
    await applyRelease(cluster, objects, { release: RELEASE, timeoutMs: 10_000 });
    const state = openState(dataDir, { actor: "test" });
    try {
      const plan = state.plans.create({
        fromReleaseId: 1,
        fromVersion: VERSION,
        toBundleDigest: "sha256:bb",
        toVersion: "4.6.0",
        valuesGiven: {},
        plan: {},
        inputsDigest: "sha256:cc",
      });
      const run = state.runs.create({ planId: plan.id, fromReleaseId: 1 });
      state.runs.stepStarted(run.id, "roll msgbroker-1", 0);
      state.runs.partitionMoved(run.id, "msgbroker", 1);
    } finally {
      state.close();
    }
    const status = await readSiteStatus({ dataDir, connect: () => cluster });
    expect(status.healthy).toBe(false);
    expect(status.upgrade).toMatchObject({
      run: 1,
      step: "roll msgbroker-1",
      partition: 1,
      runningIn: null,
      next: { action: "forward", partition: 1 },
    });
    expect(status.problems).toEqual([
      expect.stringMatching(
        /^upgrade run 1 was interrupted at roll msgbroker-1, partition 1: `airlock upgrade run --resume`/,
      ),
    ]);
  });

  it("says so when the cluster does not answer", async () => {
    await installedSite();
    const failing = new MemoryCluster();
    failing.failNext("get", "StatefulSet", 503, "the API server is down");
    try {
      const status = await readSiteStatus({ dataDir, connect: () => failing });
      expect(status.healthy).toBe(false);
      expect(status.plane).toMatchObject({ reachable: false, pods: [] });
      expect(status.problems).toEqual([expect.stringContaining("the cluster does not answer: ")]);
    } finally {
      failing.close();
    }
  });

  it("names each broker's route peers by pod, and a ready broker that routes to no other as split", () => {
    const routes = routesByPod([
      {
        pod: "msgbroker-0",
        ip: "10.0.0.1",
        routez: { server_id: "A", routes: [{ remote_id: "B", ip: "10.0.0.2" }] },
      },
      {
        pod: "msgbroker-1",
        ip: "10.0.0.2",
        routez: {
          server_id: "B",
          routes: [
            { remote_id: "A", ip: "10.0.0.1" },
            { remote_id: "C", ip: "10.0.0.3" },
            { remote_id: "A", ip: "10.0.0.1" },
          ],
        },
      },
      { pod: "msgbroker-2", ip: "10.0.0.3", routez: new Error("connect ECONNREFUSED") },
      { pod: "msgbroker-3", ip: "10.0.0.4", routez: { server_id: "D", routes: null } },
    ]);
    expect(Object.fromEntries(routes)).toEqual({
      "msgbroker-0": { reachable: true, peers: ["msgbroker-1"] },
      // C never answered for itself: it is named by the address its route came from.
      "msgbroker-1": { reachable: true, peers: ["msgbroker-0", "msgbroker-2"] },
      "msgbroker-2": { reachable: false, detail: "connect ECONNREFUSED" },
      "msgbroker-3": { reachable: true, peers: [] },
    });
    expect(missingRoutes(["msgbroker-0", "msgbroker-1", "msgbroker-2", "msgbroker-3"], routes)).toEqual([
      "broker msgbroker-0 has no cluster route to msgbroker-3",
      "broker msgbroker-1 has no cluster route to msgbroker-3",
      "broker msgbroker-3 has no cluster route to msgbroker-0, msgbroker-1",
    ]);
    expect(missingRoutes(["msgbroker-0", "msgbroker-1"], routes)).toEqual([]);
  });

  it("refuses a data dir with nothing installed, creating nothing", async () => {
    const empty = join(dataDir, "empty");
    await expectAirlockError(readSiteStatus({ dataDir: empty }), "NOT_INSTALLED", empty);
    expect(existsSync(empty)).toBe(false);
  });
});
