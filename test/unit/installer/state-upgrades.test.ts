import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openState, type State } from "../../../installer/state/index.js";
import { AirlockError } from "../../../registry/oci/index.js";

let dataDir: string;
let state: State;
let tick = 0;
const clock = (): Date => new Date(Date.UTC(2026, 11, 3, 12, 0, tick++));

function thrown(fn: () => unknown): AirlockError {
  try {
    fn();
  } catch (error) {
    if (error instanceof AirlockError) return error;
    throw error;
  }
  throw new Error("expected an AirlockError");
}

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-state-upgrades-"));
  tick = 0;
  state = openState(dataDir, { clock, actor: "test" });
});

afterEach(async () => {
  state.close();
  await rm(dataDir, { recursive: true, force: true });
});

function plan(): number {
  const release = state.releases.record({
    bundleDigest: "sha256:aa",
    bundleName: "mgmt",
    version: "4.4.0",
    valuesGiven: {},
    valuesEffective: {},
    objects: [],
  });
  return state.plans.create({
    fromReleaseId: release.id,
    fromVersion: "4.4.0",
    toBundleDigest: "sha256:bb",
    toVersion: "4.5.0",
    valuesGiven: { msgbroker: { replicas: 3 } },
    plan: { objects: [] },
    inputsDigest: "sha256:cc",
  }).id;
}

describe("upgrade plans", () => {
  it("stores a plan with its inputs, and moves its status with an event each", () => {
    const id = plan();
    expect(state.plans.get(id)).toMatchObject({
      fromVersion: "4.4.0",
      toVersion: "4.5.0",
      valuesGiven: { msgbroker: { replicas: 3 } },
      inputsDigest: "sha256:cc",
      status: "planned",
    });
    state.plans.setStatus(id, "cancelled");
    expect(state.plans.get(id).status).toBe("cancelled");
    expect(state.events.list({ object: `plan/${id}` }).map((event) => event.action)).toEqual([
      "upgrade.plan",
      "upgrade.plan.status",
    ]);
    expect(thrown(() => state.plans.get(99)).code).toBe("PLAN_NOT_FOUND");
  });

  it("gives one plan's summary without its body, as summaries lists it", () => {
    const id = plan();
    const { plan: _body, valuesGiven: _values, ...summary } = state.plans.get(id);
    expect(state.plans.summary(id)).toEqual(summary);
    expect(state.plans.summaries(1)).toEqual([summary]);
    expect(state.plans.summary(id)).not.toHaveProperty("plan");
    expect(thrown(() => state.plans.summary(99)).code).toBe("PLAN_NOT_FOUND");
  });

  it("refuses an unknown status in the database itself", () => {
    const id = plan();
    expect(() => state.db.prepare("UPDATE upgrade_plans SET status = 'odd' WHERE id = ?").run(id)).toThrow(
      /CHECK constraint/,
    );
  });
});

describe("upgrade schedules", () => {
  it("keeps one active schedule per plan: a second is SCHEDULE_OVERLAP, and nothing is written", () => {
    const planId = plan();
    const first = state.schedules.create({
      planId,
      windows: ["Sat 02:00-04:00 Europe/Berlin"],
      freezes: [],
      now: false,
      hardDeadline: true,
    });
    expect(first).toMatchObject({ windows: ["Sat 02:00-04:00 Europe/Berlin"], hardDeadline: true });
    const events = state.events.list().length;
    const error = thrown(() =>
      state.schedules.create({
        planId,
        windows: ["Sun 02:00-04:00 UTC"],
        freezes: [],
        now: false,
        hardDeadline: false,
      }),
    );
    expect(error.code).toBe("SCHEDULE_OVERLAP");
    expect(error.hint).toContain(`airlock upgrade cancel ${planId}`);
    expect(state.events.list()).toHaveLength(events);
    expect(state.schedules.active().map((schedule) => schedule.id)).toEqual([first.id]);
  });

  it("cancels the active schedule, after which the plan may be scheduled again", () => {
    const planId = plan();
    state.schedules.create({ planId, windows: [], freezes: [], now: true, hardDeadline: false });
    expect(state.schedules.cancel(planId)?.cancelledAt).toBeDefined();
    expect(state.schedules.cancel(planId)).toBeUndefined();
    expect(state.schedules.active()).toEqual([]);
    const again = state.schedules.create({
      planId,
      windows: [],
      freezes: [],
      at: "2026-12-05T02:00:00.000Z",
      now: false,
      hardDeadline: false,
    });
    expect(state.schedules.activeFor(planId)?.id).toBe(again.id);
    expect(state.events.list({ action: "upgrade.schedule.cancel" })).toHaveLength(1);
  });
});

describe("upgrade runs", () => {
  it("records a run step by step, gates appended, and finishes it once", () => {
    const planId = plan();
    const window = { start: new Date("2026-12-05T01:00:00Z"), end: new Date("2026-12-05T03:00:00Z") };
    const run = state.runs.create({ planId, window });
    expect(run).toMatchObject({ state: "running", window: { start: "2026-12-05T01:00:00.000Z" } });
    const gate = {
      gate: "ready",
      pod: "msgbroker-1",
      passed: true,
      detail: "Ready",
      startedAt: 1,
      finishedAt: 5,
    };
    state.runs.updateStep(run.id, "partition 1", [gate]);
    const failed = { ...gate, gate: "healthz", passed: false, detail: "503" };
    state.runs.updateStep(run.id, "partition 1", [failed]);
    const ended = state.runs.finish(run.id, {
      state: "rolled-back",
      rollbackReason: "healthz failed on msgbroker-1: 503",
    });
    expect(ended).toMatchObject({
      state: "rolled-back",
      currentStep: "partition 1",
      gates: [gate, failed],
      rollbackReason: "healthz failed on msgbroker-1: 503",
    });
    expect(ended.endedAt).toBeDefined();
    expect(thrown(() => state.runs.finish(run.id, { state: "done" })).code).toBe("STATE_CONFLICT");
    expect(
      state.events.list({ object: `run/${run.id}` }).map((event) => [event.action, event.outcome]),
    ).toEqual([
      ["upgrade.run.start", "started"],
      ["upgrade.run.step", "ok"],
      ["upgrade.run.step", "failed"],
      ["upgrade.run.finish", "failed"],
    ]);
    expect(state.runs.list().map((listed) => listed.id)).toEqual([run.id]);
  });
});
