import { formatBytes } from "../../registry/oci/index.js";
import { seconds } from "./output.js";
import type { RunGate, RunStep, UpgradeRun } from "../state/index.js";
import {
  disruptionText,
  type ResumeReport,
  type RunProgress,
  type RunReport,
  type ScheduledUpgrade,
  type ScheduleView,
  type UpgradePlan,
} from "../upgrade/index.js";

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? "absent";
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function k3sText(k3s: UpgradePlan["k3s"]): string {
  if (k3s === undefined) return "unchanged";
  const size = formatBytes(k3s.size);
  if (k3s.versions === undefined) {
    const digests = `${k3s.from?.slice(0, 12) ?? "(none)"} → ${k3s.to.slice(0, 12)}`;
    return `bin/k3s ${digests} (${size}) not used: the plane runs on a cluster Airlock did not install`;
  }
  return `${k3s.versions.from} → ${k3s.versions.to} (${size}): upgraded first, then the plane`;
}

/** The plan as an operator reads it: path, objects with disruption and fields, values, images. */
export function planText(plan: UpgradePlan): string {
  const lines = [
    `plan ${plan.id}: ${plan.to.name} ${plan.from.version} → ${plan.to.version} (${plan.path.kind})`,
    `bundle       ${plan.to.bundleDigest}${plan.to.deltaOf === undefined ? "" : ` (delta of ${plan.to.deltaOf})`}`,
    `import       ${formatBytes(plan.bytesToImport)}; ${formatBytes(plan.freeBytes)} free`,
    `images added ${plan.imagesAdded.length === 0 ? "none" : plan.imagesAdded.join(", ")}`,
    `k3s          ${k3sText(plan.k3s)}`,
    "objects:",
  ];
  for (const object of plan.objects) {
    const name = `${object.ref.kind}/${object.ref.name}`;
    lines.push(`  ${object.change.padEnd(10)} ${name.padEnd(40)} ${disruptionText(object.disruption)}`);
    for (const field of object.fields) {
      lines.push(`      ${field.path}: ${shown(field.current)} → ${shown(field.incoming)}`);
    }
    for (const note of object.notes) lines.push(`      note: ${note}`);
  }
  lines.push(
    plan.values.length === 0 ? "values: unchanged" : "values (* = set by the operator, carried over):",
  );
  for (const value of plan.values) {
    lines.push(
      `  ${value.overridden ? "*" : " "} ${value.path}: ${shown(value.installed)} → ${shown(value.rendered)} (bundle default ${shown(value.incomingDefault)})`,
    );
  }
  lines.push(`inputs       ${plan.inputsDigest}`);
  return lines.join("\n");
}

export function scheduledText(scheduled: ScheduledUpgrade): string {
  const where =
    scheduled.occurrence === undefined
      ? ""
      : ` in the window ${scheduled.occurrence.window.spec} (${scheduled.occurrence.localStart} – ${scheduled.occurrence.localEnd})`;
  return `plan ${scheduled.schedule.planId} scheduled: starts ${scheduled.nextStart.toISOString()}${where}; estimated ${Math.ceil(scheduled.estimatedMs / 60_000)} min`;
}

export function windowsText(views: ScheduleView[]): string {
  if (views.length === 0) return "no upgrade is scheduled";
  return views
    .flatMap((view) => {
      const head = `plan ${view.planId}: ${view.from} → ${view.to}`;
      const { refused } = view.schedule;
      if (refused !== undefined) return [`${head}, refused ${refused.at}: ${refused.reason}`];
      if (view.schedule.now) return [`${head}, now`];
      if (view.schedule.at !== undefined) return [`${head}, at ${view.schedule.at}`];
      return [
        `${head}${view.schedule.hardDeadline ? ", hard deadline" : ""}`,
        ...view.next.map((next) => `  ${next.start} – ${next.end}  (${next.localStart} – ${next.localEnd})`),
      ];
    })
    .join("\n");
}

export interface HistoryEntry {
  run: UpgradeRun;
  from: string;
  to: string;
}

function gateLine(gate: RunGate): string {
  const on = gate.pod === undefined ? "" : ` ${gate.pod}`;
  return `  ${gate.passed ? "pass" : "FAIL"} ${gate.gate}${on} ${gate.finishedAt - gate.startedAt} ms: ${gate.detail}`;
}

function stepLine(step: RunStep): string {
  const took = step.finishedAt === undefined ? "not finished" : seconds(step.finishedAt - step.startedAt);
  return `  step ${step.step} ${step.outcome ?? "…"} ${took}${step.detail === undefined ? "" : `: ${step.detail}`}`;
}

/** One line per step, gate, partition move and rollback as a run goes (stderr). */
export function progressLine(progress: RunProgress): string {
  switch (progress.kind) {
    case "step":
      if (progress.outcome === "started") return `start ${progress.step}`;
      return `${progress.outcome} ${progress.step} ${seconds(progress.ms ?? 0)}${progress.detail === undefined ? "" : `: ${progress.detail}`}`;
    case "gate":
      return gateLine(progress.gate);
    case "partition":
      return `  partition ${progress.statefulSet} → ${progress.partition}`;
    case "rolled-back":
      return `rolled back: ${progress.reason}`;
    case "resume":
      return `run ${progress.run} was interrupted: ${progress.decision.why}`;
  }
}

/** How a run ended, and the interrupted run taken up first. */
export function reportText(report: RunReport, resumed: ResumeReport | null): string {
  const lines: string[] = [];
  if (resumed !== null && resumed.run.id !== report.run.id) {
    lines.push(`run ${resumed.run.id} (interrupted, ${resumed.decision.action}): ${resumed.status}`);
  }
  lines.push(`run ${report.run.id}: ${report.status} in ${seconds(report.durationMs)}`);
  if (report.notice !== undefined) lines.push(`note: ${report.notice}`);
  return lines.join("\n");
}

export function historyText(entries: HistoryEntry[]): string {
  if (entries.length === 0) return "no upgrade has run";
  return entries
    .flatMap(({ run, from, to }) => [
      `run ${run.id}: ${run.kind} plan ${run.planId} ${from} → ${to}, ${run.state}, ${run.startedAt} – ${run.endedAt ?? "…"}${run.window === undefined ? "" : `, window ${run.window.start} – ${run.window.end}`}${run.resumed === 0 ? "" : `, resumed ${run.resumed}×`}`,
      ...run.steps.map(stepLine),
      ...run.gates.map(gateLine),
      ...(run.rollbackReason === undefined ? [] : [`  rolled back: ${run.rollbackReason}`]),
      ...(run.failure === undefined ? [] : [`  failed: ${run.failure}`]),
    ])
    .join("\n");
}
