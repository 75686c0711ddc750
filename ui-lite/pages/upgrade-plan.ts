import type { UpgradePlanRecord } from "../../installer/state/index.js";
import { readPlan, type UpgradePlan } from "../../installer/upgrade/index.js";
import { formatBytes, type AirlockError } from "../../registry/oci/index.js";
import type { ConsoleContext } from "../context.js";
import { formatTime, shortDigest } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import type { ConsoleSession } from "../sessions.js";
import { planShownStale } from "../upgrade-facts.js";
import { refusalNotice } from "./refusal.js";
import { imagesAdded, objectsDiff, valuesDiff } from "./plan-diff.js";
import { runsTable, liveTimeline } from "./upgrade-runs.js";
import {
  EMPTY_SCHEDULE,
  scheduleForm,
  scheduleView,
  type ScheduleFormError,
  type ScheduleFormValues,
} from "./upgrade-schedule.js";

/** What a POST to the plan's page got wrong, shown again in it. */
export interface PlanPageProblem {
  schedule?: { values: ScheduleFormValues; failure: ScheduleFormError };
  action?: AirlockError;
}

function facts(
  context: ConsoleContext,
  plan: UpgradePlan,
  record: UpgradePlanRecord,
  stale: boolean,
): SafeHtml {
  return html`<dl class="facts">
    <dt>Upgrade</dt>
    <dd>${plan.to.name} ${plan.from.version} → <strong>${plan.to.version}</strong> (${plan.path.kind})</dd>
    <dt>Status</dt>
    <dd><span class="plan-${stale ? "stale" : record.status}">${stale ? "stale" : record.status}</span></dd>
    <dt>Planned</dt>
    <dd>${formatTime(plan.createdAt, context.timeZone)}</dd>
    <dt>Bundle</dt>
    <dd>
      <code title="${plan.to.bundleDigest}">${shortDigest(plan.to.bundleDigest)}</code>${
        plan.to.deltaOf === undefined
          ? ""
          : html` <span class="muted">(a delta of <code>${shortDigest(plan.to.deltaOf)}</code>)</span>`
      }
    </dd>
    <dt>To import</dt>
    <dd>${formatBytes(plan.bytesToImport)}; ${formatBytes(plan.freeBytes)} were free when planned</dd>
  </dl>`;
}

function staleNotice(record: UpgradePlanRecord, admin: boolean, csrf: string): SafeHtml {
  return html`<section class="error" aria-labelledby="stale">
    <h2 id="stale">This plan is stale</h2>
    <p>
      It was computed for release ${record.fromReleaseId} (${record.fromVersion}), and what it was computed
      from has changed since: the installed release or its values. It will not run. Re-plan: a new plan for
      ${record.toVersion} from what is installed now.
    </p>
    ${
      admin
        ? html`<form method="post" action="/upgrades/plans">
            <input type="hidden" name="_csrf" value="${csrf}" />
            <input type="hidden" name="version" value="${record.toVersion}" />
            <button type="submit">Re-plan for ${record.toVersion}</button>
          </form>`
        : ""
    }
  </section>`;
}

function runNow(context: ConsoleContext, planId: number, csrf: string): SafeHtml {
  if (context.upgrades === undefined) {
    return html`<p class="notice" id="run-now">
      Run now: the site daemon (<code>airlock serve</code>) runs upgrades, and this console runs without it.
      Schedule the plan here; the daemon starts it when it is due.
    </p>`;
  }
  return html`<form method="post" action="/upgrades/plans/${planId}/run-now" id="run-now">
    <input type="hidden" name="_csrf" value="${csrf}" />
    <button type="submit">Run now</button>
  </form>`;
}

function actions(
  context: ConsoleContext,
  session: ConsoleSession,
  record: UpgradePlanRecord,
  problem: PlanPageProblem,
): SafeHtml {
  const waiting = record.status === "planned" || record.status === "scheduled";
  if (!waiting) return html``;
  if (session.user.role !== "admin") {
    return html`<p class="muted">An admin schedules, runs and cancels plans.</p>`;
  }
  const csrf = session.csrfToken;
  const planned = record.status === "planned";
  return html`<section aria-labelledby="act">
    <h2 id="act">${planned ? "Schedule or run" : "Change"}</h2>
    ${
      planned
        ? html`${scheduleForm(record.id, session, problem.schedule?.values ?? EMPTY_SCHEDULE, problem.schedule?.failure)} `
        : html`<p>A plan runs once: to change its schedule, cancel it and plan again.</p>`
    }
    <div class="actions">
      ${planned ? runNow(context, record.id, csrf) : ""}
      <form method="post" action="/upgrades/plans/${record.id}/cancel">
        <input type="hidden" name="_csrf" value="${csrf}" />
        <button type="submit" class="secondary">Cancel this plan</button>
      </form>
    </div>
  </section>`;
}

/** One plan as the operator reviews it: facts, what to do with it, its schedule and runs, then the diff. */
export function renderPlan(
  context: ConsoleContext,
  session: ConsoleSession,
  id: number,
  problem: PlanPageProblem = {},
): SafeHtml {
  const { state } = context;
  const record = state.plans.get(id);
  const plan = readPlan(state, id);
  const stale = planShownStale(state, record, state.releases.current());
  const schedule = state.schedules.activeFor(id);
  const runs = state.runs.list().filter((run) => run.planId === id);
  const running = runs.find((run) => run.state === "running");
  return html`${problem.action === undefined ? "" : refusalNotice(problem.action)}
  ${facts(context, plan, record, stale)}
  ${stale ? staleNotice(record, session.user.role === "admin", session.csrfToken) : actions(context, session, record, problem)}
  ${schedule === undefined ? "" : scheduleView(context, schedule)}
  ${running === undefined ? "" : liveTimeline(context, running)}
  ${runs.length === 0 ? "" : runsTable(context, runs, `Runs of plan ${id}`)} ${objectsDiff(plan)}
  ${valuesDiff(plan)} ${imagesAdded(plan)}`;
}
