/**
 * Carrying runs out on MemoryCluster with brokers answered by a fake prober and a clock that does
 * not wait: executePlan records every step, gate and partition move on the run's row before the
 * next begins and moves the releases; rollbackLastRelease; and resumeInterruptedRun after a run was
 * stopped at a chosen point (an abort raised by the recorder's report of that point), per its record.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MemoryCluster, type ClusterObject } from "../../../installer/cluster/index.js";
import { openState, resumeDecision, type State, type UpgradeRun } from "../../../installer/state/index.js";
import {
  DATA_NOT_ROLLED_BACK,
  executePlan,
  resumeInterruptedRun,
  rollbackLastRelease,
  type HttpProber,
  type RunProgress,
  type UpgradeDeps,
} from "../../../installer/upgrade/index.js";
import { render } from "../../../manifests/index.js";
import { rejection } from "../../helpers/fixtures.js";
import { BUNDLE_IMAGES, RELEASE, issueBroker } from "../manifests/plane-fixtures.js";
import {
  REPLICAS,
  TEST_GATES,
  fakeBrokers,
  fastClock,
  imageOf,
  podImages,
  seedSite,
} from "./upgrade-fixtures.js";

let dir: string;
let certificates: Awaited<ReturnType<typeof issueBroker>>["pems"];
let state: State;
let cluster: MemoryCluster;
let broken: string | undefined;
let planTo: Awaited<ReturnType<typeof seedSite>>["plan"];
let firstRelease: number;

function plane(version: string): ClusterObject[] {
  return render(REPLICAS, BUNDLE_IMAGES, {
    release: RELEASE,
    version,
    certificates,
  }) as unknown as ClusterObject[];
}

function deps(extra: Partial<UpgradeDeps> = {}): UpgradeDeps {
  return {
    state,
    cluster,
    imageAvailable: () => Promise.resolve(true),
    probe: fakeBrokers(cluster, () => broken),
    clock: fastClock(),
    gates: TEST_GATES,
    ...extra,
  };
}

/** Deps whose run is stopped (aborted) as soon as the recorder reports what `at` matches. */
function stoppedAt(at: (progress: RunProgress) => boolean): UpgradeDeps {
  const controller = new AbortController();
  return deps({
    signal: controller.signal,
    onProgress: (progress) => {
      if (at(progress)) controller.abort(new Error("stopped by the test"));
    },
  });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-upgrade-execute-"));
  certificates = (await issueBroker(dir, { replicas: 2 })).pems;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let siteCount = 0;
beforeEach(async () => {
  broken = undefined;
  siteCount += 1;
  state = openState(join(dir, `site-${siteCount}`), { actor: "test" });
  cluster = new MemoryCluster({ podReadyMs: 10 });
  const site = await seedSite(state, cluster, plane, "4.4.0");
  planTo = site.plan;
  firstRelease = site.release.id;
});

afterEach(() => {
  cluster.close();
  state.close();
});

function actions(run: UpgradeRun): string[] {
  return [...new Set(state.events.list({ object: `run/${run.id}` }).map((event) => event.action))];
}

describe("executePlan", () => {
  it("rolls 4.4.0 to 4.5.0, writing each gate and partition move to the run before going on, and deploys the new release", async () => {
    const planId = planTo("4.5.0");
    const seen: string[] = [];
    const report = await executePlan(
      deps({
        onProgress: (progress) => {
          const run = state.runs.list()[0]!;
          if (progress.kind === "gate") {
            expect(run.gates.at(-1)).toEqual(progress.gate);
            seen.push(`${progress.gate.gate} ${progress.gate.pod ?? ""}`.trim());
          }
          if (progress.kind === "partition") {
            expect(run.partition).toBe(progress.partition);
            seen.push(`partition ${progress.partition}`);
          }
        },
      }),
      planId,
    );
    expect(report).toMatchObject({ outcome: "upgraded", status: "upgraded 4.4.0 → 4.5.0" });
    const run = report.run;
    expect(run).toMatchObject({
      state: "done",
      partition: 0,
      planId,
      fromReleaseId: firstRelease,
      resumed: 0,
    });
    expect(run.steps.map((step) => `${step.step} ${step.outcome}`)).toEqual([
      "pre-gate done",
      "config done",
      "statefulset done",
      "roll msgbroker-1 done",
      "roll msgbroker-0 done",
      "finish done",
      "final-gate done",
    ]);
    for (const step of run.steps) expect(step.finishedAt).toBeGreaterThanOrEqual(step.startedAt);
    expect(run.gates.every((gate) => gate.passed)).toBe(true);
    expect(seen.slice(seen.indexOf("partition 1"), seen.indexOf("partition 0") + 2)).toEqual([
      "partition 1",
      "ready msgbroker-1",
      "healthz msgbroker-1",
      "routez msgbroker-1",
      "settle msgbroker-1",
      "partition 0",
      "ready msgbroker-0",
    ]);
    const current = state.releases.current()!;
    expect(current).toMatchObject({
      id: run.toReleaseId,
      version: "4.5.0",
      upgradeId: run.id,
      status: "deployed",
    });
    expect(state.releases.get(firstRelease).status).toBe("superseded");
    expect(state.plans.get(planId).status).toBe("done");
    expect(actions(run)).toEqual([
      "upgrade.run.start",
      "upgrade.run.step",
      "upgrade.run.gate",
      "upgrade.run.partition",
      "upgrade.run.finish",
    ]);
    expect(Object.values(await podImages(cluster))).toEqual([
      imageOf(plane("4.5.0")),
      imageOf(plane("4.5.0")),
    ]);
  });

  it("rolls back when /healthz fails on the first pod: the old release stays deployed, the new one failed, the reason recorded", async () => {
    const planId = planTo("4.5.0");
    broken = imageOf(plane("4.5.0"));
    const report = await executePlan(deps(), planId);
    expect(report.outcome).toBe("rolled-back");
    expect(report.status).toMatch(
      /^rolled back: healthz failed on msgbroker-1: not within 0.5 s: \/healthz answered 503$/,
    );
    expect(report.notice).toBe(DATA_NOT_ROLLED_BACK);
    expect(report.run).toMatchObject({ state: "rolled-back", partition: 0 });
    expect(report.run.rollbackReason).toBe(report.status.slice("rolled back: ".length));
    expect(state.releases.current()!.id).toBe(firstRelease);
    expect(state.releases.get(report.run.toReleaseId!).status).toBe("failed");
    expect(state.plans.get(planId).status).toBe("rolled-back");
    expect(actions(report.run)).toContain("upgrade.run.rollback");
    expect(Object.values(await podImages(cluster))).toEqual([
      imageOf(plane("4.4.0")),
      imageOf(plane("4.4.0")),
    ]);
  });

  it("runs the gates the new bundle declares after each pod, and rolls back when one fails", async () => {
    const declared = { name: "console", url: "http://console.hubble-system.svc:8080/ready" };
    const planId = planTo("4.5.0", plane("4.5.0"), [declared]);
    const brokers = fakeBrokers(cluster);
    const asked: string[] = [];
    const probe: HttpProber = (url, signal) => {
      if (url !== declared.url) return brokers(url, signal);
      asked.push(url);
      return Promise.resolve({ status: 503, body: "starting" });
    };
    const report = await executePlan(deps({ probe }), planId);
    expect(asked.length).toBeGreaterThan(0);
    expect(report.outcome).toBe("rolled-back");
    expect(report.status).toMatch(/^rolled back: http:console failed on msgbroker-1: /);
    expect(state.releases.current()!.id).toBe(firstRelease);
  });

  it("refuses a stale plan with the re-plan hint, starting no run", async () => {
    const planId = planTo("4.5.0");
    const current = state.releases.current()!;
    state.releases.deploy(state.releases.record({ ...current, version: "4.4.1" }).id);
    const error = await rejection(executePlan(deps(), planId));
    expect(error).toMatchObject({ code: "PLAN_STALE" });
    expect(error.hint).toContain("airlock upgrade plan --to-version 4.5.0");
    expect(state.runs.list()).toEqual([]);
  });

  it("refuses to start while another run is unfinished, naming it", async () => {
    const planId = planTo("4.5.0");
    const left = state.runs.create({ planId: planTo("4.5.0") });
    const error = await rejection(executePlan(deps(), planId));
    expect(error).toMatchObject({ code: "UPGRADE_INTERRUPTED" });
    expect(error.message).toContain(`upgrade run ${left.id}`);
    expect(state.plans.get(planId).status).toBe("planned");
  });
});

describe("rollbackLastRelease", () => {
  it("puts the release the deployed one replaced back, as a run of its own, and says data is not rolled back", async () => {
    const upgraded = await executePlan(deps(), planTo("4.5.0"));
    const report = await rollbackLastRelease(deps());
    expect(report).toMatchObject({
      outcome: "rolled-back",
      status: `rolled back to release ${firstRelease} (4.4.0)`,
      notice: DATA_NOT_ROLLED_BACK,
    });
    expect(report.run).toMatchObject({
      kind: "rollback",
      state: "rolled-back",
      fromReleaseId: upgraded.run.toReleaseId,
      toReleaseId: firstRelease,
      partition: 0,
    });
    expect(state.releases.current()!.id).toBe(firstRelease);
    expect(state.releases.get(upgraded.run.toReleaseId!).status).toBe("rolled-back");
    expect(Object.values(await podImages(cluster))).toEqual([
      imageOf(plane("4.4.0")),
      imageOf(plane("4.4.0")),
    ]);
    expect(await cluster.get({ apiVersion: "v1", kind: "Namespace", name: "hubble-system" })).toBeDefined();
    expect((await rejection(rollbackLastRelease(deps()))).code).toBe("NOTHING_TO_ROLL_BACK");
  });

  it("with nothing upgraded, has nothing to return to", async () => {
    expect((await rejection(rollbackLastRelease(deps()))).code).toBe("NOTHING_TO_ROLL_BACK");
  });
});

describe("resumeInterruptedRun", () => {
  it("drops a run that had changed nothing: the plan may run again", async () => {
    const planId = planTo("4.5.0");
    const run = state.runs.create({ planId, fromReleaseId: firstRelease });
    state.runs.setTarget(
      run.id,
      state.releases.record({ ...state.releases.current()!, version: "4.5.0" }).id,
    );
    state.runs.stepStarted(run.id, "pre-gate", Date.now());
    const resumed = await resumeInterruptedRun(deps());
    expect(resumed).toMatchObject({ outcome: "abandoned", decision: { action: "abandon" } });
    expect(resumed!.run).toMatchObject({ state: "interrupted", resumed: 1 });
    expect(state.releases.current()!.id).toBe(firstRelease);
    expect(state.plans.get(planId).status).toBe("planned");
    expect((await executePlan(deps(), planId)).outcome).toBe("upgraded");
  });

  it("goes on from the partition a run stopped after, checking that pod's gates again", async () => {
    const planId = planTo("4.5.0");
    const stopped = stoppedAt((progress) => progress.kind === "partition" && progress.partition === 1);
    expect((await rejection(executePlan(stopped, planId))).code).toBe("UPGRADE_RUN_INTERRUPTED");
    const left = state.runs.list()[0]!;
    expect(left).toMatchObject({ state: "running", partition: 1, currentStep: "roll msgbroker-1" });
    expect(resumeDecision(left)).toMatchObject({ action: "forward", partition: 1 });
    const resumed = (await resumeInterruptedRun(deps()))!;
    expect(resumed).toMatchObject({ outcome: "upgraded", decision: { action: "forward" } });
    expect(resumed.run).toMatchObject({ id: left.id, state: "done", resumed: 1, partition: 0 });
    const after = resumed.run.gates.slice(left.gates.length).map((gate) => `${gate.gate} ${gate.pod ?? ""}`);
    expect(after.slice(0, 2)).toEqual(["ready msgbroker-1", "healthz msgbroker-1"]);
    expect(state.releases.current()!.version).toBe("4.5.0");
    expect(actions(resumed.run)).toContain("upgrade.run.resume");
    expect(await resumeInterruptedRun(deps())).toBeUndefined();
  });

  it("goes on after a gate that was cut short: it has no verdict, so it runs again", async () => {
    const planId = planTo("4.5.0");
    const stopped = stoppedAt(
      (progress) =>
        progress.kind === "gate" && progress.gate.gate === "healthz" && progress.gate.pod === "msgbroker-0",
    );
    await rejection(executePlan(stopped, planId));
    const left = state.runs.list()[0]!;
    expect(left).toMatchObject({ state: "running", partition: 0 });
    const resumed = (await resumeInterruptedRun(deps()))!;
    expect(resumed.outcome).toBe("upgraded");
    expect(Object.values(await podImages(cluster))).toEqual([
      imageOf(plane("4.5.0")),
      imageOf(plane("4.5.0")),
    ]);
  });

  it("rolls back again a run stopped while it was rolling back", async () => {
    const planId = planTo("4.5.0");
    broken = imageOf(plane("4.5.0"));
    const stopped = stoppedAt(
      (progress) =>
        progress.kind === "step" && progress.step === "rollback" && progress.outcome === "started",
    );
    await rejection(executePlan(stopped, planId));
    const left = state.runs.list()[0]!;
    expect(resumeDecision(left).action).toBe("rollback");
    const resumed = (await resumeInterruptedRun(deps()))!;
    expect(resumed).toMatchObject({ outcome: "rolled-back", notice: DATA_NOT_ROLLED_BACK });
    expect(resumed.run.rollbackReason).toMatch(/^healthz failed on msgbroker-1: /);
    expect(state.releases.current()!.id).toBe(firstRelease);
    expect(state.releases.get(left.toReleaseId!).status).toBe("failed");
    expect(Object.values(await podImages(cluster))).toEqual([
      imageOf(plane("4.4.0")),
      imageOf(plane("4.4.0")),
    ]);
  });
});

describe("resumeDecision", () => {
  const base: UpgradeRun = {
    id: 1,
    planId: 1,
    kind: "upgrade",
    fromReleaseId: 1,
    toReleaseId: 2,
    startedAt: "",
    endedAt: undefined,
    state: "running",
    currentStep: undefined,
    steps: [],
    gates: [],
    partition: undefined,
    resumed: 0,
    rollbackReason: undefined,
    failure: undefined,
    window: undefined,
  };
  const step = (name: string): UpgradeRun["steps"][number] => ({ step: name, startedAt: 0 });

  it("drops a run that never got past the pre-gate, rolls back one with a failed gate, goes on otherwise", () => {
    expect(resumeDecision(base).action).toBe("abandon");
    expect(resumeDecision({ ...base, steps: [step("pre-gate")] }).action).toBe("abandon");
    expect(resumeDecision({ ...base, steps: [step("pre-gate"), step("config")] })).toMatchObject({
      action: "forward",
      partition: undefined,
    });
    const failed = {
      gate: "ready",
      pod: "msgbroker-1",
      passed: false,
      detail: "x",
      startedAt: 0,
      finishedAt: 1,
    };
    expect(
      resumeDecision({ ...base, steps: [step("roll msgbroker-1")], gates: [failed], partition: 1 }).action,
    ).toBe("rollback");
    expect(resumeDecision({ ...base, kind: "rollback", steps: [] }).action).toBe("rollback");
  });
});
