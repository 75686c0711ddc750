import type { UpgradeRun } from "../../installer/state/index.js";
import { readPlan, type UpgradePlan } from "../../installer/upgrade/index.js";
import type { ConsoleContext } from "../context.js";
import { DATA_NOT_ROLLED_BACK_SENTENCE, formatTime } from "../format.js";
import { html, type SafeHtml } from "../html.js";
import { dataTable } from "../layout.js";
import { durationText, timelineSteps, timelineSvg } from "../run-timeline.js";

function gatesSummary(run: UpgradeRun): SafeHtml {
  if (run.gates.length === 0) return html`<span class="muted">none yet</span>`;
  const failed = run.gates.filter((gate) => !gate.passed);
  return html`${run.gates.length - failed.length}
  passed${
    failed.length === 0
      ? ""
      : html`, <span class="status-failed">${failed.length} failed</span>:
          ${failed.map((gate) => html`<code>${gate.gate}${gate.pod === undefined ? "" : ` ${gate.pod}`}</code> `)}`
  }`;
}

function windowText(run: UpgradeRun, timeZone: string): SafeHtml {
  return run.window === undefined
    ? html`<span class="muted">none (run now or at a time)</span>`
    : html`${formatTime(run.window.start, timeZone)} – ${formatTime(run.window.end, timeZone)}`;
}

/** Runs, newest first: plan, window, start and end, state, gates, and why a rollback happened. */
export function runsTable(context: ConsoleContext, runs: UpgradeRun[], caption: string): SafeHtml {
  const { state, timeZone } = context;
  const versions = new Map<number, string>();
  const planText = (planId: number): string => {
    let text = versions.get(planId);
    if (text === undefined) {
      const plan = state.plans.summary(planId);
      text = `${plan.fromVersion} → ${plan.toVersion}`;
      versions.set(planId, text);
    }
    return text;
  };
  return dataTable({
    caption,
    columns: ["Run", "Plan", "Window", "Started", "Ended", "State", "Gates", "Rollback reason or failure"],
    rows: runs.map((run) => [
      html`<a href="/upgrades/runs/${run.id}">Run ${run.id}</a
        >${run.kind === "rollback" ? " (rollback)" : ""}`,
      html`<a href="/upgrades/plans/${run.planId}">Plan ${run.planId}</a> ${planText(run.planId)}`,
      windowText(run, timeZone),
      formatTime(run.startedAt, timeZone),
      run.endedAt === undefined
        ? html`<span class="muted">running</span>`
        : formatTime(run.endedAt, timeZone),
      html`<span class="run-${run.state}">${run.state}</span>`,
      gatesSummary(run),
      html`${run.rollbackReason ?? ""}${run.failure === undefined ? "" : html`<span class="status-failed">${run.failure}</span>`}`,
    ]),
  });
}

function gatesTable(run: UpgradeRun): SafeHtml {
  if (run.gates.length === 0) return html`<p class="muted">No gate has been judged yet.</p>`;
  return dataTable({
    caption: `The ${run.gates.length} gates judged, in order`,
    columns: ["Gate", "Pod", "Outcome", "Took", "Detail"],
    rows: run.gates.map((gate) => [
      html`<code>${gate.gate}</code>`,
      html`${gate.pod ?? "the plane"}`,
      html`<span class="status-${gate.passed ? "ok" : "failed"}">${gate.passed ? "passed" : "failed"}</span>`,
      html`${durationText(gate.finishedAt - gate.startedAt)}`,
      html`${gate.detail}`,
    ]),
  });
}

function stateLine(run: UpgradeRun, timeZone: string): SafeHtml {
  return run.endedAt === undefined
    ? outcomeText(run)
    : html`${outcomeText(run)} Ended ${formatTime(run.endedAt, timeZone)}.`;
}

function outcomeText(run: UpgradeRun): SafeHtml {
  const why = run.failure ?? run.rollbackReason;
  switch (run.state) {
    case "running":
      return html`Running: ${run.currentStep ?? "starting"}.`;
    case "done":
      return html`Done: the new release runs.`;
    case "rolled-back":
      return html`Rolled back${run.rollbackReason === undefined ? "" : html`: ${run.rollbackReason}`}.
      ${DATA_NOT_ROLLED_BACK_SENTENCE}.`;
    default:
      return html`${run.state === "failed" ? "Failed" : "Interrupted"}${why === undefined ? "" : html`: ${why}`}.`;
  }
}

/** What the live timeline replaces on each change: the state line, the SVG, the gates. */
export function liveFragment(run: UpgradeRun, plan: UpgradePlan, timeZone: string): SafeHtml {
  return html`<p class="run-line run-${run.state}">${stateLine(run, timeZone)}</p>
    ${timelineSvg(run, timelineSteps(run, plan))} ${gatesTable(run)}`;
}

/** A run's timeline, updated over server-sent events by /assets/timeline.js; a reload shows the same. */
export function liveTimeline(context: ConsoleContext, run: UpgradeRun): SafeHtml {
  const plan = readPlan(context.state, run.planId);
  const live = run.state === "running";
  return html`<section aria-labelledby="timeline-${run.id}">
    <h2 id="timeline-${run.id}">Run ${run.id} timeline</h2>
    ${
      live
        ? html`<p class="muted" data-live-hint>
            Updates live while the run goes on; without JavaScript, <a href="">reload</a>.
          </p>`
        : ""
    }
    <div
      class="timeline-wrap"
      id="run-${run.id}-live"
      ${live ? html`data-run-events="/upgrades/runs/${run.id}/events"` : ""}
    >
      ${liveFragment(run, plan, context.timeZone)}
    </div>
    ${live ? html`<script src="/assets/timeline.js" defer></script>` : ""}
  </section>`;
}

/** One run: what does not change (plan, kind, window, start), then the timeline, live while it runs. */
export function renderRun(context: ConsoleContext, id: number): SafeHtml {
  const run = context.state.runs.get(id);
  const plan = context.state.plans.summary(run.planId);
  return html`<dl class="facts">
      <dt>Plan</dt>
      <dd>
        <a href="/upgrades/plans/${plan.id}">Plan ${plan.id}</a>: ${plan.fromVersion} → ${plan.toVersion}
      </dd>
      <dt>Kind</dt>
      <dd>${run.kind === "rollback" ? "a rollback asked for by hand" : "an upgrade"}</dd>
      <dt>Window</dt>
      <dd>${windowText(run, context.timeZone)}</dd>
      <dt>Started</dt>
      <dd>${formatTime(run.startedAt, context.timeZone)}</dd>
    </dl>
    ${liveTimeline(context, run)}`;
}
