import { formatBytes } from "../../registry/oci/index.js";
import type { UpgradeRun } from "../state/index.js";
import type { Disruption, ScheduledUpgrade, ScheduleView, UpgradePlan } from "../upgrade/index.js";

function shown(value: unknown): string {
  const text = JSON.stringify(value) ?? "absent";
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function disruptionText(disruption: Disruption): string {
  switch (disruption.kind) {
    case "rolling-restart":
      return `rolling restart of ${disruption.pods} pods`;
    case "scale":
      return `scale ${disruption.from} → ${disruption.to}`;
    case "recreate":
      return `recreate (${disruption.fields.join(", ")})`;
    default:
      return disruption.kind;
  }
}

/** The plan as an operator reads it: path, objects with disruption and fields, values, images. */
export function planText(plan: UpgradePlan): string {
  const lines = [
    `plan ${plan.id}: ${plan.to.name} ${plan.from.version} → ${plan.to.version} (${plan.path.kind})`,
    `bundle       ${plan.to.bundleDigest}${plan.to.deltaOf === undefined ? "" : ` (delta of ${plan.to.deltaOf})`}`,
    `import       ${formatBytes(plan.bytesToImport)}; ${formatBytes(plan.freeBytes)} free`,
    `images added ${plan.imagesAdded.length === 0 ? "none" : plan.imagesAdded.join(", ")}`,
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

export function historyText(entries: HistoryEntry[]): string {
  if (entries.length === 0) return "no upgrade has run";
  return entries
    .flatMap(({ run, from, to }) => [
      `run ${run.id}: plan ${run.planId} ${from} → ${to}, ${run.state}, ${run.startedAt} – ${run.endedAt ?? "…"}${run.window === undefined ? "" : `, window ${run.window.start} – ${run.window.end}`}`,
      ...run.gates.map(
        (gate) =>
          `  ${gate.passed ? "pass" : "FAIL"} ${gate.gate}${gate.pod === undefined ? "" : ` ${gate.pod}`} ${gate.finishedAt - gate.startedAt} ms: ${gate.detail}`,
      ),
      ...(run.rollbackReason === undefined ? [] : [`  rolled back: ${run.rollbackReason}`]),
    ])
    .join("\n");
}
