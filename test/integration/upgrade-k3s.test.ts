/**
 * k3s from the new bundle (issue 14 point 8), with the stand-in k3s and systemctl under a temporary
 * host root: the run upgrades k3s before the plane — the skew rules on the versions the binaries
 * print, the binary renamed into place with the old one kept, the service restarted by systemctl,
 * the node gated Ready on the new kubelet version — and a rollback puts the old binary back.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { applyRelease, type ClusterObject } from "../../installer/cluster/index.js";
import { K3S_BINARY, K3S_PREVIOUS, K3S_STAGED } from "../../installer/k3s/index.js";
import { rollbackRelease, runUpgrade } from "../../installer/upgrade/index.js";
import { render, type RenderInputs } from "../../manifests/index.js";
import {
  runningK3sVersion,
  sameBytes,
  standinK3sSite,
  systemctlCalls,
  type K3sSite,
} from "../helpers/k3s-site.js";
import { STANDIN_K3S, STANDIN_K3S_VERSION, standinK3sOfVersion } from "../helpers/standin/index.js";
import { BUNDLE_IMAGES, RELEASE, issueBroker } from "../unit/manifests/plane-fixtures.js";
import {
  EventRecorder,
  TEST_GATES,
  fakeBrokers,
  fastClock,
  imageOf,
} from "../unit/installer/upgrade-fixtures.js";

const STS = { apiVersion: "apps/v1", kind: "StatefulSet", name: "msgbroker", namespace: "hubble-system" };
let dir: string;
let inputs: RenderInputs;
let sites = 0;
let site: K3sSite | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-upgrade-k3s-"));
  inputs = {
    release: RELEASE,
    version: "4.4.0",
    certificates: (await issueBroker(dir, { replicas: 2 })).pems,
  };
});
afterEach(async () => {
  await site?.stop();
  site = undefined;
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function plane(version: string): ClusterObject[] {
  return render({ msgbroker: { replicas: 2 } }, BUNDLE_IMAGES, {
    ...inputs,
    version,
  }) as unknown as ClusterObject[];
}

/** A host where install left k3s (the stand-in, VERSION v1.32.3+k3s1) serving the 4.4.0 plane. */
async function installedSite(): Promise<K3sSite> {
  site = await standinK3sSite(join(dir, `site-${++sites}`));
  await applyRelease(site.cluster, plane("4.4.0"), { release: RELEASE, timeoutMs: 5_000 });
  return site;
}

async function bundleK3s(version: string): Promise<string> {
  return standinK3sOfVersion(join(dir, `k3s-${version}-${sites}`), version);
}

async function upgrade(
  site: K3sSite,
  binary: string,
  options: { brokenImage?: string; readyTimeoutMs?: number } = {},
) {
  const recorder = new EventRecorder();
  const result = await runUpgrade(site.cluster, {
    previous: plane("4.4.0"),
    next: plane("4.5.0"),
    recorder,
    imageAvailable: () => Promise.resolve(true),
    gates: TEST_GATES,
    probe: fakeBrokers(site.cluster, () => options.brokenImage),
    clock: fastClock(),
    k3s: site.k3s(binary, options.readyTimeoutMs),
  });
  return { result, events: recorder.events };
}

const runningVersion = (site: K3sSite) => runningK3sVersion(site.log);

describe("runUpgrade with the new bundle's k3s", () => {
  it("upgrades k3s first: pre:k3s, the binary swapped with the old one kept, systemctl restart, the node Ready on the new version, then the plane", async () => {
    const site = await installedSite();
    const next = await bundleK3s("v1.33.1+k3s1");
    const { result, events } = await upgrade(site, next);
    expect(result).toMatchObject({
      outcome: "upgraded",
      k3s: { from: STANDIN_K3S_VERSION, to: "v1.33.1+k3s1" },
    });
    const order = events.filter((event) => /k3s|^start config|^done final-gate/.test(event));
    expect(order).toEqual([
      "gate pre:k3s plane passed",
      "start k3s",
      "gate k3s:swap server-1 passed",
      "gate k3s:ready server-1 passed",
      "done k3s",
      "start config",
      "done final-gate",
    ]);
    expect(await sameBytes(site.host.path(K3S_BINARY), next)).toBe(true);
    expect(await sameBytes(site.host.path(K3S_PREVIOUS), STANDIN_K3S)).toBe(true);
    expect(await site.host.exists(K3S_STAGED)).toBe(false);
    expect(await runningVersion(site)).toBe("v1.33.1+k3s1");
    expect(await systemctlCalls(site.log)).toContain("restart k3s.service");
    // The plane went on only once the node ran the new k3s.
    expect(events.indexOf("done k3s")).toBeLessThan(events.indexOf("partition 2"));
  });

  it("refuses a downgrade and a skipped minor before changing anything", async () => {
    const site = await installedSite();
    for (const [version, why] of [
      ["v1.31.4+k3s1", "v1.31.4+k3s1 is older than the running v1.32.3+k3s1: k3s is never downgraded"],
      ["v1.32.3+k3s0", "v1.32.3+k3s0 is older than the running v1.32.3+k3s1: k3s is never downgraded"],
      ["v1.34.0+k3s1", "v1.32.3+k3s1 → v1.34.0+k3s1 skips a minor version: upgrade through v1.33 first"],
    ]) {
      const generation = (await site.cluster.get(STS))!.metadata.generation;
      const { result, events } = await upgrade(site, await bundleK3s(version!));
      expect(result).toMatchObject({ outcome: "refused", reason: `pre:k3s failed: ${why}` });
      expect(events).toEqual(["start pre-gate", "gate pre:k3s plane failed", "failed pre-gate"]);
      expect(await sameBytes(site.host.path(K3S_BINARY), STANDIN_K3S)).toBe(true);
      expect(await site.host.exists(K3S_STAGED)).toBe(false);
      expect(await site.host.exists(K3S_PREVIOUS)).toBe(false);
      expect((await site.cluster.get(STS))!.metadata.generation).toBe(generation);
    }
    expect((await systemctlCalls(site.log)).map((call) => call.split(" ")[0])).not.toContain("restart");
  });

  it("the same k3s as the running one is no k3s step", async () => {
    const site = await installedSite();
    const { result, events } = await upgrade(site, STANDIN_K3S);
    expect(result.outcome).toBe("upgraded");
    expect(result.outcome === "upgraded" && result.k3s).toBeUndefined();
    expect(events).not.toContain("start k3s");
    expect(await site.host.exists(K3S_STAGED)).toBe(false);
  });

  it("a node that never gets Ready on the new k3s rolls k3s back, the plane untouched", async () => {
    const site = await installedSite();
    site.kubelet.broken.add("v1.33.1+k3s1");
    const generation = (await site.cluster.get(STS))!.metadata.generation;
    const { result, events } = await upgrade(site, await bundleK3s("v1.33.1+k3s1"), {
      readyTimeoutMs: 1_000,
    });
    expect(result).toMatchObject({
      outcome: "rolled-back",
      reason:
        "k3s:ready failed on server-1: not Ready on v1.33.1+k3s1 within 1 s: not Ready, kubelet v1.33.1+k3s1",
    });
    expect(events).toContain("gate rollback:k3s-ready server-1 passed");
    expect(events).not.toContain("start config");
    expect(await sameBytes(site.host.path(K3S_BINARY), STANDIN_K3S)).toBe(true);
    expect(await runningVersion(site)).toBe(STANDIN_K3S_VERSION);
    expect((await site.cluster.get(STS))!.metadata.generation).toBe(generation);
  });

  it("a plane gate that fails after k3s was upgraded rolls back the plane, then k3s", async () => {
    const site = await installedSite();
    const { result, events } = await upgrade(site, await bundleK3s("v1.33.1+k3s1"), {
      brokenImage: imageOf(plane("4.5.0")),
    });
    expect(result).toMatchObject({
      outcome: "rolled-back",
      reason: expect.stringMatching(/^healthz failed on msgbroker-1/) as unknown,
    });
    expect(events.indexOf("done rollback")).toBeLessThan(events.indexOf("start rollback k3s"));
    expect(events.at(-1)).toBe("done rollback k3s");
    expect(await sameBytes(site.host.path(K3S_BINARY), STANDIN_K3S)).toBe(true);
    expect(await runningVersion(site)).toBe(STANDIN_K3S_VERSION);
  });

  it("rollbackRelease by hand puts the kept k3s back after the plane", async () => {
    const site = await installedSite();
    const next = await bundleK3s("v1.33.1+k3s1");
    expect((await upgrade(site, next)).result.outcome).toBe("upgraded");
    const recorder = new EventRecorder();
    const { binary: _binary, ...restore } = site.k3s(next);
    await rollbackRelease(site.cluster, plane("4.4.0"), {
      recorder,
      reason: "operator asked",
      gates: TEST_GATES,
      probe: fakeBrokers(site.cluster),
      clock: fastClock(),
      k3s: restore,
    });
    expect(recorder.events.slice(-2)).toEqual([
      "gate rollback:k3s-ready server-1 passed",
      "done rollback k3s",
    ]);
    expect(await sameBytes(site.host.path(K3S_BINARY), STANDIN_K3S)).toBe(true);
    expect(await runningVersion(site)).toBe(STANDIN_K3S_VERSION);
  });
});
