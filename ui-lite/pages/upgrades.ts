import { upcomingWindows } from "../../installer/upgrade/index.js";
import { AirlockError } from "../../registry/oci/index.js";
import type { ConsoleContext } from "../context.js";
import { formatTime } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import { dataTable } from "../layout.js";
import type { ConsoleSession } from "../sessions.js";
import { planShownStale, plannableVersions, rollbackChoice } from "../upgrade-facts.js";
import { refusalNotice } from "./refusal.js";
import { liveTimeline, runsTable } from "./upgrade-runs.js";

export const PLANS_SHOWN = 50;
export const RUNS_SHOWN = 100;

function plansTable(context: ConsoleContext): SafeHtml {
  const { state, timeZone } = context;
  const summaries = state.plans.summaries(PLANS_SHOWN);
  if (summaries.length === 0) return html`<p>No plan yet.</p>`;
  const release = state.releases.current();
  return dataTable({
    caption: `Plans, newest first${summaries.length === PLANS_SHOWN ? ` (the latest ${PLANS_SHOWN})` : ""}`,
    columns: ["Plan", "From → to", "Status", "Planned"],
    rows: summaries.map((summary) => {
      const stale = planShownStale(state, summary, release);
      return [
        html`<a href="/upgrades/plans/${summary.id}">Plan ${summary.id}</a>`,
        html`${summary.fromVersion} → ${summary.toVersion}`,
        stale
          ? html`<span class="plan-stale">stale: re-plan</span>`
          : html`<span class="plan-${summary.status}">${summary.status}</span>`,
        formatTime(summary.createdAt, timeZone),
      ];
    }),
  });
}

function scheduledTable(context: ConsoleContext): SafeHtml {
  const views = upcomingWindows(context.state, context.clock(), 1);
  if (views.length === 0) return html`<p>No upgrade is scheduled.</p>`;
  return dataTable({
    caption: "Scheduled upgrades and when each may start next",
    columns: ["Plan", "From → to", "Next start"],
    rows: views.map((view) => [
      html`<a href="/upgrades/plans/${view.planId}">Plan ${view.planId}</a>`,
      html`${view.from} → ${view.to}`,
      view.schedule.refused !== undefined
        ? html`<span class="plan-refused"
            >refused ${formatTime(view.schedule.refused.at, context.timeZone)}:
            ${view.schedule.refused.reason}</span
          >`
        : view.schedule.now
          ? html`now`
          : view.schedule.at !== undefined
            ? formatTime(view.schedule.at, context.timeZone)
            : view.next[0] === undefined
              ? html`<span class="muted">no opening</span>`
              : html`${formatTime(view.next[0].start, context.timeZone)} <code>${view.next[0].window}</code>`,
    ]),
  });
}

function newPlanForm(
  context: ConsoleContext,
  session: ConsoleSession,
  failure: AirlockError | undefined,
): SafeHtml {
  if (session.user.role !== "admin") return html``;
  const release = context.state.releases.current();
  const versions = plannableVersions(context, release);
  const body =
    release === undefined
      ? html`<p>Nothing is installed yet: <code>airlock install</code> deploys the plane first.</p>`
      : versions.length === 0
        ? html`<p>
            No other version of ${release.bundleName} is imported: <a href="/bundles">upload one</a> first.
          </p>`
        : html`<form class="stack" method="post" action="/upgrades/plans">
            <input type="hidden" name="_csrf" value="${session.csrfToken}" />
            <label for="plan-version">Version to upgrade ${release.bundleName} ${release.version} to</label>
            <select
              id="plan-version"
              name="version"
              ${failure === undefined ? "" : html` aria-describedby="plan-error" aria-invalid="true"`}
            >
              ${versions.map((version) => html`<option value="${version}">${version}</option>`)}
            </select>
            ${
              failure === undefined
                ? ""
                : refusalNotice(failure, { id: "plan-error", className: "field-error" })
            }
            <label class="inline"><input type="checkbox" name="allowDowngrade" /> Allow a downgrade</label>
            <button type="submit">Make the plan</button>
          </form>`;
  return html`<section aria-labelledby="new-plan">
    <h2 id="new-plan">New plan</h2>
    <p class="muted">
      The same plan <code>airlock upgrade plan --to-version V</code> makes; nothing in the cluster changes.
    </p>
    ${body}
  </section>`;
}

function rollbackEntry(context: ConsoleContext, session: ConsoleSession): SafeHtml {
  if (session.user.role !== "admin") return html``;
  const choice = rollbackChoice(context.state);
  const body =
    context.upgrades === undefined
      ? html`<p>
          The site daemon (<code>airlock serve</code>) rolls the plane back; this console runs without it.
        </p>`
      : choice instanceof AirlockError
        ? html`<p>Nothing to roll back to: ${choice.message}.</p>`
        : html`<p>
            <a href="/upgrades/rollback"
              >Roll back to ${choice.previous.bundleName} ${choice.previous.version}…</a
            >
            (asks to confirm)
          </p>`;
  return html`<section aria-labelledby="rollback">
    <h2 id="rollback">Roll back</h2>
    ${body}
  </section>`;
}

/** Upgrades: what runs now, what is scheduled, the plans, a new plan, rollback, and every run. */
export function renderUpgrades(
  context: ConsoleContext,
  session: ConsoleSession,
  failure?: AirlockError,
): SafeHtml {
  const runs = context.state.runs.list();
  const running = runs.filter((run) => run.state === "running");
  return html`${running.map((run) => liveTimeline(context, run))}
    <section aria-labelledby="scheduled">
      <h2 id="scheduled">Scheduled</h2>
      ${scheduledTable(context)}
    </section>
    <section aria-labelledby="plans">
      <h2 id="plans">Plans</h2>
      ${plansTable(context)}
    </section>
    ${newPlanForm(context, session, failure)} ${rollbackEntry(context, session)}
    <section aria-labelledby="history">
      <h2 id="history">History</h2>
      ${
        runs.length === 0
          ? html`<p>No upgrade has run.</p>`
          : runsTable(
              context,
              runs.slice(0, RUNS_SHOWN),
              `Every run, newest first${runs.length > RUNS_SHOWN ? ` (the latest ${RUNS_SHOWN})` : ""}`,
            )
      }
    </section>`;
}
