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
import { readSiteStatus } from "../../../installer/install/index.js";
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

  it("refuses a data dir with nothing installed, creating nothing", async () => {
    const empty = join(dataDir, "empty");
    await expectAirlockError(readSiteStatus({ dataDir: empty }), "NOT_INSTALLED", empty);
    expect(existsSync(empty)).toBe(false);
  });
});
