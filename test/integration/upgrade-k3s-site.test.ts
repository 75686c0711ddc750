/**
 * k3s from the new bundle through a site's plan and runs (issue 14 point 8): the sample 4.4.0
 * deployed with the stand-in k3s v1.32.3+k3s1 as its bin/k3s, installed under a temporary host root
 * (the install's cluster step names it), and 4.5.0 bundles carrying other stand-in k3s versions.
 * `planUpgrade` asks both binaries their version and refuses a skew; `executePlan` takes the new
 * binary from the store, swaps it (the old one kept), restarts it through the stand-in systemctl,
 * waits for the node Ready on it, then rolls the plane; a failed plane gate, `upgrade rollback` and
 * a run resumed after it was stopped (past its k3s step, or between the swap and the node's Ready
 * gate) each leave the host's k3s where they say.
 */
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle } from "../../bundle/index.js";
import { planText } from "../../installer/cli/upgrade-text.js";
import { applyRelease, type ClusterObject } from "../../installer/cluster/index.js";
import { K3S_BINARY, K3S_PREVIOUS, K3S_STAGED } from "../../installer/k3s/index.js";
import { openState, type State, type UpgradeRun } from "../../installer/state/index.js";
import {
  executePlan,
  loadPlanForRun,
  planUpgrade,
  resumeInterruptedRun,
  rollbackLastRelease,
  type RunProgress,
  type UpgradeDeps,
} from "../../installer/upgrade/index.js";
import { Store } from "../../registry/store/index.js";
import { rejection, useFixtures, type Fixtures } from "../helpers/fixtures.js";
import {
  K3S_NODE,
  runningK3sVersion,
  sameBytes,
  standinK3sSite,
  systemctlCalls,
  type K3sSite,
} from "../helpers/k3s-site.js";
import { STANDIN_K3S, STANDIN_K3S_VERSION, standinK3sOfVersion } from "../helpers/standin/index.js";
import { deploy440 } from "../helpers/upgrade-site.js";
import { issueBroker } from "../unit/manifests/plane-fixtures.js";
import { TEST_GATES, fakeBrokers, fastClock, imageOf } from "../unit/installer/upgrade-fixtures.js";

const NEXT_K3S = "v1.33.1+k3s1";
let fx: Fixtures;
let site: K3sSite;
let dataDir: string;
let state: State;
let store: Store;
let newer: string;
let newerBinary: string;
const refused: Record<string, string> = {};
let broken: string | undefined;

/** A 4.5.x bundle of the sample whose bin/k3s is the stand-in saying `k3sVersion`. */
async function bundleWithK3s(version: string, k3sVersion: string): Promise<{ bundle: string; k3s: string }> {
  const k3s = await standinK3sOfVersion(join(fx.sampleDir, "bin", `k3s-${k3sVersion}`), k3sVersion);
  const spec = join(fx.sampleDir, `bundle-${version}-k3s.yaml`);
  const text = (await readFile(fx.spec, "utf8"))
    .replace(/^version: .*$/m, `version: ${version}`)
    .replace("path: ./bin/k3s\n", `path: ./bin/k3s-${k3sVersion}\n`);
  await writeFile(spec, text);
  const bundle = join(await fx.dir("work"), `mgmt-${version}-k3s.airlock.tar`);
  await buildBundle({ specFile: spec, output: bundle });
  return { bundle, k3s };
}

beforeAll(async () => {
  fx = await useFixtures({ size: 1024 * 1024 });
  site = await standinK3sSite(await fx.dir("host"));
  await writeFile(join(fx.sampleDir, "bin", "k3s-installed"), await readFile(STANDIN_K3S), { mode: 0o755 });
  const spec440 = join(fx.sampleDir, "bundle-4.4.0-k3s.yaml");
  await writeFile(
    spec440,
    `${await readFile(fx.spec440, "utf8")}files:\n  - path: ./bin/k3s-installed\n    name: k3s\n    mode: 0755\n`,
  );
  dataDir = join(await fx.dir("data"), "airlock");
  const cluster = {
    kind: "k3s",
    kubeconfig: join(site.root, "etc/rancher/k3s/k3s.yaml"),
    hostRoot: site.root,
  };
  await deploy440(
    fx,
    dataDir,
    { msgbroker: { replicas: 2 } },
    {
      spec440,
      cluster,
      pems: (await issueBroker(await fx.dir("pki-issued"), { replicas: 2 })).pems,
    },
  );
  ({ bundle: newer, k3s: newerBinary } = await bundleWithK3s("4.5.0", NEXT_K3S));
  refused.downgrade = (await bundleWithK3s("4.5.1", "v1.31.4+k3s1")).bundle;
  refused.skip = (await bundleWithK3s("4.5.2", "v1.34.0+k3s1")).bundle;
  state = openState(dataDir, { actor: "test" });
  store = await Store.open(dataDir);
  const release = state.releases.current()!;
  await applyRelease(site.cluster, release.objects as ClusterObject[], {
    release: release.bundleName,
    timeoutMs: 5_000,
  });
}, 120_000);

afterAll(async () => {
  state?.close();
  store?.close();
  await site?.stop();
  await fx?.cleanup();
});

function deps(extra: Partial<UpgradeDeps> = {}): UpgradeDeps {
  return {
    state,
    cluster: site.cluster,
    imageAvailable: () => Promise.resolve(true),
    probe: fakeBrokers(site.cluster, () => broken),
    clock: fastClock(),
    gates: TEST_GATES,
    blobPath: (digest) => store.blobs.path(digest),
    k3sHost: { host: site.host, systemd: site.systemd, run: site.run },
    ...extra,
  };
}

/** A plan to 4.5.0 with the newer k3s; the state's writer lock is the plan's while it plans. */
async function planNewer(): Promise<number> {
  state.close();
  try {
    return (await planUpgrade({ dataDir, bundle: [newer] })).id;
  } finally {
    state = openState(dataDir, { actor: "test" });
  }
}

const steps = (run: UpgradeRun): string[] => run.steps.map((step) => `${step.step} ${step.outcome}`);
const restarts = async (): Promise<number> =>
  (await systemctlCalls(site.log)).filter((call) => call === "restart k3s.service").length;

async function k3sIs(binary: string, version: string, kept?: string): Promise<void> {
  expect(await sameBytes(site.host.path(K3S_BINARY), binary)).toBe(true);
  if (kept !== undefined) expect(await sameBytes(site.host.path(K3S_PREVIOUS), kept)).toBe(true);
  expect(await site.host.exists(K3S_STAGED)).toBe(false);
  expect(await runningK3sVersion(site.log)).toBe(version);
}

describe("an upgrade whose bundle carries another bin/k3s", () => {
  it("plan refuses a k3s downgrade and a skipped minor (K3S_SKEW_REFUSED with a hint), storing no plan", async () => {
    state.close();
    try {
      for (const [bundle, why] of [
        [refused.downgrade!, "v1.31.4+k3s1 is older than the running v1.32.3+k3s1: k3s is never downgraded"],
        [refused.skip!, "v1.32.3+k3s1 → v1.34.0+k3s1 skips a minor version: upgrade through v1.33 first"],
      ]) {
        const error = await rejection(planUpgrade({ dataDir, bundle: [bundle!] }));
        expect(error).toMatchObject({
          code: "K3S_SKEW_REFUSED",
          message: `the bundle's k3s cannot replace the running one: ${why}`,
          where: "bin/k3s",
          hint: expect.stringContaining("the running k3s is v1.32.3+k3s1") as unknown,
        });
      }
    } finally {
      state = openState(dataDir, { actor: "test" });
    }
    expect(state.plans.list()).toEqual([]);
    await k3sIs(STANDIN_K3S, STANDIN_K3S_VERSION);
  });

  it("plan says k3s goes from the running version to the bundle's, and the run upgrades it before the plane", async () => {
    const planId = await planNewer();
    const plan = loadPlanForRun(state, planId).plan;
    expect(plan.k3s).toMatchObject({ versions: { from: STANDIN_K3S_VERSION, to: NEXT_K3S } });
    expect(planText(plan)).toMatch(
      /^k3s {10}v1\.32\.3\+k3s1 → v1\.33\.1\+k3s1 \(.+\): upgraded first, then the plane$/m,
    );
    const report = await executePlan(deps(), planId);
    expect(report).toMatchObject({
      outcome: "upgraded",
      status: `upgraded 4.4.0 → 4.5.0, k3s ${STANDIN_K3S_VERSION} → ${NEXT_K3S}`,
      k3s: { from: STANDIN_K3S_VERSION, to: NEXT_K3S },
    });
    expect(steps(report.run).slice(0, 3)).toEqual(["pre-gate done", "k3s done", "config done"]);
    // The k3s gates, then the plane's pod gates: the plane rolls only once the node runs the new k3s.
    const gates = report.run.gates.map((gate) => gate.gate);
    expect(gates.filter((gate) => gate.includes("k3s"))).toEqual(["pre:k3s", "k3s:swap", "k3s:ready"]);
    expect(gates.indexOf("k3s:ready")).toBeLessThan(
      gates.findIndex((gate) => !gate.startsWith("pre:") && !gate.includes("k3s")),
    );
    expect(report.run.gates.find((gate) => gate.gate === "k3s:ready")).toMatchObject({
      pod: K3S_NODE,
      passed: true,
      detail: `Ready on ${NEXT_K3S}`,
    });
    const events = state.events.list({ object: `run/${report.run.id}` });
    expect(events.some((event) => event.action === "upgrade.run.step" && event.detail?.step === "k3s")).toBe(
      true,
    );
    await k3sIs(newerBinary, NEXT_K3S, STANDIN_K3S);
    expect(await restarts()).toBe(1);
  });

  it("airlock upgrade rollback puts the plane back, then the kept k3s", async () => {
    const report = await rollbackLastRelease(deps());
    expect(report.outcome).toBe("rolled-back");
    expect(steps(report.run)).toEqual(["rollback done", "rollback k3s done"]);
    await k3sIs(STANDIN_K3S, STANDIN_K3S_VERSION);
  });

  it("a plane gate that fails after k3s was upgraded rolls back the plane, then k3s", async () => {
    const planId = await planNewer();
    broken = imageOf(loadPlanForRun(state, planId).next.objects as ClusterObject[]);
    try {
      const report = await executePlan(deps(), planId);
      expect(report).toMatchObject({
        outcome: "rolled-back",
        status: expect.stringMatching(/^rolled back: healthz failed on msgbroker-1/) as unknown,
      });
      expect(steps(report.run).slice(-2)).toEqual(["rollback done", "rollback k3s done"]);
      expect(steps(report.run)[1]).toBe("k3s done");
    } finally {
      broken = undefined;
    }
    await k3sIs(STANDIN_K3S, STANDIN_K3S_VERSION);
  });

  /** Plans 4.5.0 and runs it until the recorder reports what `at` matches: then the run is stopped. */
  async function runStoppedAt(at: (progress: RunProgress) => boolean): Promise<void> {
    const planId = await planNewer();
    const controller = new AbortController();
    const onProgress = (progress: RunProgress): void => {
      if (at(progress)) controller.abort(new Error("stopped by the test"));
    };
    const error = await rejection(executePlan(deps({ signal: controller.signal, onProgress }), planId));
    expect(error).toMatchObject({ code: "UPGRADE_RUN_INTERRUPTED" });
    // Swapped, the old one kept; the restarted server may not have said its version yet.
    expect(await sameBytes(site.host.path(K3S_BINARY), newerBinary)).toBe(true);
    expect(await sameBytes(site.host.path(K3S_PREVIOUS), STANDIN_K3S)).toBe(true);
  }

  it("a run stopped after its k3s step resumes with the plane, k3s not swapped or restarted again", async () => {
    await runStoppedAt(
      (progress) => progress.kind === "step" && progress.step === "k3s" && progress.outcome === "done",
    );
    const before = await restarts();
    const resumed = await resumeInterruptedRun(deps());
    expect(resumed).toMatchObject({ outcome: "upgraded", decision: { action: "forward" } });
    expect(await restarts()).toBe(before);
    await k3sIs(newerBinary, NEXT_K3S, STANDIN_K3S);
    expect(state.releases.current()?.version).toBe("4.5.0");
  });

  it("a run stopped between the swap and the node's Ready gate resumes: k3s restarted and gated, then the plane", async () => {
    expect((await rollbackLastRelease(deps())).outcome).toBe("rolled-back");
    await k3sIs(STANDIN_K3S, STANDIN_K3S_VERSION);
    await runStoppedAt((progress) => progress.kind === "gate" && progress.gate.gate === "k3s:swap");
    const before = await restarts();
    const resumed = await resumeInterruptedRun(deps());
    expect(resumed).toMatchObject({ outcome: "upgraded", decision: { action: "forward" } });
    expect(await restarts()).toBe(before + 1);
    const swaps = resumed!.run.gates.filter((gate) => gate.gate === "k3s:swap").map((gate) => gate.detail);
    expect(swaps.at(-1)).toBe(`/usr/local/bin/k3s was ${NEXT_K3S} already; k3s.service restarted`);
    expect(steps(resumed!.run).filter((step) => step.startsWith("k3s"))).toContain("k3s done");
    // The kept binary is still the one from before the upgrade, not the new one kept as "previous".
    await k3sIs(newerBinary, NEXT_K3S, STANDIN_K3S);
  });
});
