/**
 * The scheduler's questions on a seeded site with an injected "now": nextDueAt (when to look next)
 * and startDueUpgrade (start what is due, nothing else), for window, --at and --now schedules, a
 * freeze, a run left unfinished, and a schedule that has started its run; a scheduled run refused
 * before it starts (stale plan, spent plan, pre-gate) uses its schedule up with the reason.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { MemoryCluster, type ClusterObject } from "../../../installer/cluster/index.js";
import { openState, type State } from "../../../installer/state/index.js";
import {
  nextDueAt,
  scheduleUpgrade,
  upcomingWindows,
  startDueUpgrade,
  type UpgradeDeps,
} from "../../../installer/upgrade/index.js";
import { render } from "../../../manifests/index.js";
import { BUNDLE_IMAGES, RELEASE, issueBroker } from "../manifests/plane-fixtures.js";
import { REPLICAS, TEST_GATES, fakeBrokers, fastClock, seedSite } from "./upgrade-fixtures.js";

let dir: string;
let certificates: Awaited<ReturnType<typeof issueBroker>>["pems"];
let state: State;
let cluster: MemoryCluster;
let planId: number;

/** Friday 2026-12-04 12:00 UTC; the window opens Saturday 02:00 UTC. */
const FRIDAY = new Date("2026-12-04T12:00:00Z");
const SATURDAY_2 = new Date("2026-12-05T02:00:00Z");
const WINDOW = "Sat 02:00-04:00 UTC";
const WHEN = { windows: [], freezes: [], now: false, hardDeadline: false };

function plane(version: string): ClusterObject[] {
  return render(REPLICAS, BUNDLE_IMAGES, {
    release: RELEASE,
    version,
    certificates,
  }) as unknown as ClusterObject[];
}

function deps(): UpgradeDeps {
  return {
    state,
    cluster,
    imageAvailable: () => Promise.resolve(true),
    probe: fakeBrokers(cluster),
    clock: fastClock(),
    gates: TEST_GATES,
  };
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-upgrade-due-"));
  certificates = (await issueBroker(dir, { replicas: 2 })).pems;
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let siteCount = 0;
beforeEach(async () => {
  siteCount += 1;
  state = openState(join(dir, `site-${siteCount}`), { actor: "test" });
  cluster = new MemoryCluster({ podReadyMs: 10 });
  planId = (await seedSite(state, cluster, plane, "4.4.0")).plan("4.5.0");
});

afterEach(() => {
  cluster.close();
  state.close();
});

describe("nextDueAt and startDueUpgrade", () => {
  it("with nothing scheduled, never look and start nothing", async () => {
    expect(nextDueAt(state, FRIDAY)).toBeUndefined();
    expect(await startDueUpgrade(deps(), FRIDAY)).toBeUndefined();
  });

  it("a window schedule is due when its window opens, not before; the run records the window and the schedule is spent", async () => {
    scheduleUpgrade(state, planId, { ...WHEN, windows: [WINDOW] }, FRIDAY);
    expect(nextDueAt(state, FRIDAY)).toEqual(SATURDAY_2);
    expect(await startDueUpgrade(deps(), FRIDAY)).toBeUndefined();
    expect(state.runs.list()).toEqual([]);
    const run = (await startDueUpgrade(deps(), SATURDAY_2))?.run;
    expect(run).toMatchObject({
      state: "done",
      planId,
      window: { start: SATURDAY_2.toISOString(), end: "2026-12-05T04:00:00.000Z" },
    });
    expect(state.schedules.activeFor(planId)?.runId).toBe(run!.id);
    expect(nextDueAt(state, SATURDAY_2)).toBeUndefined();
    expect(await startDueUpgrade(deps(), SATURDAY_2)).toBeUndefined();
  });

  it("a window too short for the estimate plus the margin is skipped for one that fits", async () => {
    scheduleUpgrade(
      state,
      planId,
      { ...WHEN, windows: ["Sat 02:00-02:10 UTC", "Sun 03:00-05:00 UTC"] },
      FRIDAY,
    );
    expect(nextDueAt(state, FRIDAY)).toEqual(new Date("2026-12-06T03:00:00Z"));
    expect(await startDueUpgrade(deps(), SATURDAY_2)).toBeUndefined();
  });

  it("--at is due at its time; --now at once unless the run would overlap a freeze, then when it ends", async () => {
    scheduleUpgrade(state, planId, { ...WHEN, at: "2026-12-04T13:00Z" }, FRIDAY);
    expect(nextDueAt(state, FRIDAY)).toEqual(new Date("2026-12-04T13:00:00Z"));
    expect(await startDueUpgrade(deps(), FRIDAY)).toBeUndefined();
    state.schedules.cancel(planId);
    state.plans.setStatus(planId, "planned");
    scheduleUpgrade(
      state,
      planId,
      { ...WHEN, now: true, freezes: ["2026-12-04T11:00Z..2026-12-04T12:10Z"] },
      FRIDAY,
    );
    expect(nextDueAt(state, FRIDAY)).toEqual(new Date("2026-12-04T12:10:00Z"));
    expect(await startDueUpgrade(deps(), FRIDAY)).toBeUndefined();
    expect((await startDueUpgrade(deps(), new Date("2026-12-04T12:10:00Z")))?.run?.state).toBe("done");
  });

  it("a run left unfinished is looked at now and blocks any start until it is resumed", async () => {
    scheduleUpgrade(state, planId, { ...WHEN, now: true }, FRIDAY);
    state.runs.create({ planId });
    expect(nextDueAt(state, FRIDAY)).toEqual(FRIDAY);
    expect(await startDueUpgrade(deps(), FRIDAY)).toBeUndefined();
  });
});

describe("a scheduled run refused before it starts", () => {
  const NOW = { ...WHEN, now: true };

  function refusals(): { object: string; reason: unknown }[] {
    return state.events
      .list({ action: "upgrade.schedule.refuse" })
      .map((event) => ({ object: event.object, reason: event.detail.reason }));
  }

  it("a stale plan uses its schedule up with PLAN_STALE, is not retried, and `windows` says why", async () => {
    const { id } = scheduleUpgrade(state, planId, NOW, FRIDAY).schedule;
    // Another release deployed since the plan was made: its inputs changed.
    const other = state.releases.record({ ...state.releases.current()!, version: "4.4.1" });
    state.releases.deploy(other.id);
    const started = await startDueUpgrade(deps(), FRIDAY);
    expect(started).toMatchObject({
      planId,
      run: undefined,
      refusal: expect.stringMatching(/^PLAN_STALE: /) as unknown,
    });
    expect(state.runs.list()).toEqual([]);
    expect(state.schedules.get(id).refused?.reason).toBe(started!.refusal);
    expect(refusals()).toEqual([{ object: `plan/${planId}/schedule/${id}`, reason: started!.refusal }]);
    expect(nextDueAt(state, FRIDAY)).toBeUndefined();
    expect(await startDueUpgrade(deps(), FRIDAY)).toBeUndefined();
    expect(upcomingWindows(state, FRIDAY)).toMatchObject([
      { planId, next: [], schedule: { id, refused: { reason: started!.refusal } } },
    ]);
  });

  it("a plan spent by other means (cancelled, run by hand) is due at once to be marked refused", async () => {
    const { id } = scheduleUpgrade(state, planId, { ...WHEN, windows: [WINDOW] }, FRIDAY).schedule;
    state.plans.setStatus(planId, "stale", { reason: "inputs changed" });
    expect(nextDueAt(state, FRIDAY)).toEqual(FRIDAY);
    expect(await startDueUpgrade(deps(), FRIDAY)).toEqual({
      planId,
      run: undefined,
      refusal: `plan ${planId} is stale`,
    });
    expect(state.schedules.get(id).refused?.reason).toBe(`plan ${planId} is stale`);
    expect(state.schedules.active()).toEqual([]);
    expect(nextDueAt(state, FRIDAY)).toBeUndefined();
  });

  it("a pre-gate refusal uses the schedule up with the gate's reason; the plan may be scheduled again", async () => {
    const { id } = scheduleUpgrade(state, planId, NOW, FRIDAY).schedule;
    const started = await startDueUpgrade(
      { ...deps(), imageAvailable: () => Promise.resolve(false) },
      FRIDAY,
    );
    expect(started?.run).toMatchObject({
      state: "failed",
      failure: expect.stringMatching(/^refused: /) as unknown,
    });
    expect(started?.refusal).toBe(started?.run?.failure);
    expect(state.schedules.get(id)).toMatchObject({
      runId: started?.run?.id,
      refused: { reason: started?.refusal },
    });
    expect(refusals()).toHaveLength(1);
    expect(state.plans.get(planId).status).toBe("planned");
    expect(nextDueAt(state, FRIDAY)).toBeUndefined();
    // Its slot is free: scheduled anew (no SCHEDULE_OVERLAP), it runs once the cause is fixed.
    scheduleUpgrade(state, planId, NOW, FRIDAY);
    expect((await startDueUpgrade(deps(), FRIDAY))?.run?.state).toBe("done");
  });
});
