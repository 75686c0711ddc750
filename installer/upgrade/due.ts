import { AirlockError } from "../../registry/oci/index.js";
import type { State, UpgradeRun, UpgradeSchedule } from "../state/index.js";
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

function dueSchedules(state: State, now: Date): Due[] {
  return state.schedules
    .active()
    .map((schedule) => dueOf(state, schedule, now))
    .filter((due): due is Due => due !== undefined)
    .sort((a, b) => a.at.getTime() - b.at.getTime());
}

/**
 * When the scheduler should look next: `now` while a run is unfinished (it is to be resumed) or a
 * start is due, else the earliest start a schedule allows; undefined when nothing waits.
 */
export function nextDueAt(state: State, now: Date): Date | undefined {
  if (state.runs.unfinished().length > 0) return now;
  return dueSchedules(state, now)[0]?.at;
}

/**
 * For the site daemon: starts the scheduled plan whose start is due now (see nextDueAt) and runs it
 * to its end through executePlan; undefined when none is due, or a run is unfinished (resume that
 * first with resumeInterruptedRun). The caller holds the writer lock.
 */
export async function startDueUpgrade(deps: UpgradeDeps, now: Date): Promise<UpgradeRun | undefined> {
  if (deps.state.runs.unfinished().length > 0) return undefined;
  const due = dueSchedules(deps.state, now).find((candidate) => candidate.at.getTime() <= now.getTime());
  if (due === undefined) return undefined;
  return (await executePlan(deps, due.planId, { window: due.window })).run;
}
