import { AirlockError } from "../../registry/oci/index.js";
import type { State, UpgradeSchedule } from "../state/index.js";
import { parseAt, parseFreeze, type Freeze } from "./instant-spec.js";
import { readPlan, type UpgradePlan } from "./plan.js";
import { parseWindow, type MaintenanceWindow } from "./window-spec.js";
import { canStartAt, nextOccurrences, type WindowOccurrence } from "./windows.js";

export interface ScheduleRequest {
  windows: string[];
  freezes: string[];
  at?: string | undefined;
  now: boolean;
  hardDeadline: boolean;
}

export interface ScheduledUpgrade {
  schedule: UpgradeSchedule;
  /** The first instant the run may start: now, the `--at` time, or the first window it fits in. */
  nextStart: Date;
  occurrence: WindowOccurrence | undefined;
  estimatedMs: number;
}

const POD_MS = 5 * 60_000;
/** Beyond the estimate, what a window must still hold when a run starts in it. */
export const START_MARGIN_MS = 10 * 60_000;

/** A run's estimate: the pods it restarts one at a time (each gated and settled), at least one's worth. */
export function estimatedRunMs(plan: UpgradePlan): number {
  const pods = plan.objects.reduce(
    (sum, object) =>
      sum +
      (object.disruption.kind === "rolling-restart"
        ? object.disruption.pods
        : object.disruption.kind === "recreate"
          ? 1
          : 0),
    0,
  );
  return Math.max(1, pods) * POD_MS;
}

function exactlyOneWhen(request: ScheduleRequest): void {
  const given = [request.windows.length > 0, request.at !== undefined, request.now].filter(Boolean).length;
  if (given !== 1) {
    throw new AirlockError("USAGE", "say when: --window SPEC (one or more), --at TIME, or --now", {
      hint: 'e.g. airlock upgrade schedule 3 --window "Sat 02:00-04:00 Europe/Berlin"',
    });
  }
}

function parsed(request: ScheduleRequest): { windows: MaintenanceWindow[]; freezes: Freeze[] } {
  const windows = request.windows.map((spec) => parseWindow(spec));
  const zone = windows[0]?.zone;
  return { windows, freezes: request.freezes.map((spec) => parseFreeze(spec, zone)) };
}

/**
 * Schedules a plan: every window, freeze and `--at` is parsed before anything is written (a bad one
 * is exit 2 pointing at its token), a window schedule must fit the run somewhere in the next year,
 * and a plan keeps one active schedule (SCHEDULE_OVERLAP otherwise). The plan becomes `scheduled`.
 */
export function scheduleUpgrade(
  state: State,
  planId: number,
  request: ScheduleRequest,
  now: Date,
): ScheduledUpgrade {
  exactlyOneWhen(request);
  const plan = readPlan(state, planId);
  const record = state.plans.get(planId);
  if (record.status !== "planned" && record.status !== "scheduled") {
    throw new AirlockError("PLAN_NOT_RUNNABLE", `plan ${planId} is ${record.status}`, {
      where: `plan/${planId}`,
      hint: "make a new plan with `airlock upgrade plan`",
    });
  }
  const { windows, freezes } = parsed(request);
  const at = request.at === undefined ? undefined : parseAt(request.at, now);
  const estimatedMs = estimatedRunMs(plan);
  const decision =
    windows.length === 0 ? undefined : canStartAt(windows, freezes, now, estimatedMs, START_MARGIN_MS);
  const schedule = state.transaction(() => {
    const created = state.schedules.create({
      planId,
      windows: request.windows,
      freezes: request.freezes,
      at: at?.toISOString(),
      now: request.now,
      hardDeadline: request.hardDeadline,
    });
    state.plans.setStatus(planId, "scheduled", { schedule: created.id });
    return created;
  });
  const nextStart = decision === undefined ? (at ?? now) : decision.kind === "now" ? now : decision.at;
  return { schedule, nextStart, occurrence: decision?.occurrence, estimatedMs };
}

/** Cancels a plan's schedule and the plan; a running plan is refused (roll it back instead). */
export function cancelUpgrade(state: State, planId: number): UpgradeSchedule | undefined {
  return state.transaction(() => {
    const plan = state.plans.get(planId);
    if (plan.status === "running") {
      throw new AirlockError("UPGRADE_RUNNING", `plan ${planId} is running`, {
        where: `plan/${planId}`,
        hint: "a run is not cancelled half-way: let it finish, or roll it back with `airlock upgrade rollback`",
      });
    }
    const schedule = state.schedules.cancel(planId);
    if (plan.status === "planned" || plan.status === "scheduled") state.plans.setStatus(planId, "cancelled");
    return schedule;
  });
}

export interface ScheduleView {
  planId: number;
  from: string;
  to: string;
  schedule: UpgradeSchedule;
  next: { start: string; end: string; localStart: string; localEnd: string; window: string }[];
}

/**
 * Each active schedule with its next `count` window openings (UTC and the window's zone), then the
 * last few schedules refused unrun (`schedule.refused` says when and why; no openings).
 */
export function upcomingWindows(state: State, now: Date, count = 3): ScheduleView[] {
  const refused = state.schedules.refusedRecently().map((schedule) => {
    const plan = state.plans.get(schedule.planId);
    return { planId: plan.id, from: plan.fromVersion, to: plan.toVersion, schedule, next: [] };
  });
  const active = state.schedules.active().map((schedule) => {
    const plan = state.plans.get(schedule.planId);
    const windows = schedule.windows.map((spec) => parseWindow(spec));
    const next = nextOccurrences(windows, now, count).map((occurrence) => ({
      start: occurrence.start.toISOString(),
      end: occurrence.end.toISOString(),
      localStart: occurrence.localStart,
      localEnd: occurrence.localEnd,
      window: occurrence.window.spec,
    }));
    return { planId: plan.id, from: plan.fromVersion, to: plan.toVersion, schedule, next };
  });
  return [...active, ...refused];
}
