import { AirlockError } from "../../registry/oci/index.js";
import type { PlanStatus, State, UpgradeRun, UpgradeSchedule } from "../state/index.js";
import { executePlan } from "./execute.js";
import { parseFreeze } from "./instant-spec.js";
import { readPlan } from "./plan.js";
import { estimatedRunMs, START_MARGIN_MS } from "./plan-schedule.js";
import type { UpgradeDeps } from "./run-deps.js";
import { parseWindow } from "./window-spec.js";
import { canStartAt, pastFreezes } from "./windows.js";

interface Due {
  planId: number;
  /** The first instant the run may start, at or after `now`. */
  at: Date;
  /** The window opening it starts in, for a window schedule. */
  window: { start: Date; end: Date } | undefined;
}

/**
 * When a schedule's plan may start, at or after `now`: `--now` and `--at` at once (or at that time)
 * unless the run would overlap a freeze, a window schedule as canStartAt says (in an open window the
 * estimate plus the margin fits in, outside the freezes). Undefined when its plan is no longer
 * waiting (it ran, went stale, was cancelled) or no window in the next year fits it.
 */
function dueOf(state: State, schedule: UpgradeSchedule, now: Date): Due | undefined {
  if (state.plans.get(schedule.planId).status !== "scheduled") return undefined;
  const windows = schedule.windows.map((spec) => parseWindow(spec));
  const freezes = schedule.freezes.map((spec) => parseFreeze(spec, windows[0]?.zone));
  const estimatedMs = estimatedRunMs(readPlan(state, schedule.planId));
  if (windows.length === 0) {
    const from = Math.max(now.getTime(), schedule.at === undefined ? 0 : Date.parse(schedule.at));
    const at = pastFreezes(freezes, from, estimatedMs + START_MARGIN_MS);
    return { planId: schedule.planId, at: new Date(at), window: undefined };
  }
  try {
    const decision = canStartAt(windows, freezes, now, estimatedMs, START_MARGIN_MS);
    const { start, end } = decision.occurrence;
    return {
      planId: schedule.planId,
      at: decision.kind === "now" ? now : decision.at,
      window: { start, end },
    };
  } catch (error) {
    if (error instanceof AirlockError && error.code === "UPGRADE_NO_WINDOW_FITS") return undefined;
    throw error;
  }
}

/** The active schedules whose plan can no longer run (it went stale, ran by hand, was cancelled). */
function spentSchedules(state: State): { schedule: UpgradeSchedule; status: PlanStatus }[] {
  return state.schedules
    .active()
    .map((schedule) => ({ schedule, status: state.plans.get(schedule.planId).status }))
    .filter(({ status }) => status !== "scheduled");
}

function dueSchedules(state: State, now: Date): Due[] {
  return state.schedules
    .active()
    .map((schedule) => dueOf(state, schedule, now))
    .filter((due): due is Due => due !== undefined)
    .sort((a, b) => a.at.getTime() - b.at.getTime());
}

/**
 * When the scheduler should look next: `now` while a run is unfinished (it is to be resumed), a
 * schedule's plan can no longer run (it is to be marked refused) or a start is due, else the
 * earliest start a schedule allows; undefined when nothing waits.
 */
export function nextDueAt(state: State, now: Date): Date | undefined {
  if (state.runs.unfinished().length > 0 || spentSchedules(state).length > 0) return now;
  return dueSchedules(state, now)[0]?.at;
}

/** What startDueUpgrade did: the run it started, or the schedule it used up unrun. */
export interface DueStart {
  planId: number;
  /** The run, as it ended; absent when the plan was refused before a run was recorded. */
  run: UpgradeRun | undefined;
  /** Why its schedule was used up unrun (a stale or spent plan, a pre-gate refusal), if it was. */
  refusal: string | undefined;
}

function refuse(state: State, schedule: UpgradeSchedule, reason: string): DueStart {
  state.schedules.refuse(schedule.id, reason);
  return { planId: schedule.planId, run: undefined, refusal: reason };
}

/** Refusals that come before a run is recorded: the plan, not the site, is at fault. */
const PLAN_REFUSALS = new Set(["PLAN_STALE", "PLAN_NOT_RUNNABLE"]);

/**
 * For the site daemon: first uses up, as refused, each schedule whose plan can no longer run; then
 * starts the scheduled plan whose start is due now (see nextDueAt) and runs it to its end through
 * executePlan. A plan refused before it starts (stale, spent; a pre-gate refusal, which
 * settleUpgrade records) uses its schedule up with the reason, so it is neither retried at every
 * look nor dropped unsaid. Undefined when nothing is due, or a run is unfinished (resume that
 * first with resumeInterruptedRun). The caller holds the writer lock.
 */
export async function startDueUpgrade(deps: UpgradeDeps, now: Date): Promise<DueStart | undefined> {
  const { state } = deps;
  if (state.runs.unfinished().length > 0) return undefined;
  const spent = spentSchedules(state).map(({ schedule, status }) =>
    refuse(state, schedule, `plan ${schedule.planId} is ${status}`),
  );
  const due = dueSchedules(state, now).find((candidate) => candidate.at.getTime() <= now.getTime());
  if (due === undefined) return spent[0];
  const schedule = state.schedules.activeFor(due.planId)!;
  try {
    const { run } = await executePlan(deps, due.planId, { window: due.window });
    return { planId: due.planId, run, refusal: state.schedules.forRun(run.id)?.refused?.reason };
  } catch (error) {
    if (!(error instanceof AirlockError) || !PLAN_REFUSALS.has(error.code)) throw error;
    return refuse(state, schedule, `${error.code}: ${error.message}`);
  }
}
