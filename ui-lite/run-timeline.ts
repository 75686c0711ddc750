import type { RunGate, UpgradeRun } from "../installer/state/index.js";
import type { UpgradePlan } from "../installer/upgrade/index.js";
import { html, type SafeHtml } from "./html.js";

export type StepStatus = "pending" | "running" | "done" | "failed" | "skipped";
type GateStatus = "pending" | "passed" | "failed";

export interface TimelineGate {
  gate: string;
  pod: string | undefined;
  status: GateStatus;
  durationMs: number | undefined;
}

export interface TimelineStep {
  name: string;
  status: StepStatus;
  gates: TimelineGate[];
}

/** The per-pod gates a broker's roll passes, in order (the bundle's declared probes come between). */
const POD_GATES = ["ready", "healthz", "routez", "settle"];
const ROLLBACK = "rollback";

/** The pods the rollout rolls, highest ordinal first: from the plan's StatefulSet, and any the run names. */
function rolledPods(plan: UpgradePlan, run: UpgradeRun): string[] {
  const pods = new Set<string>();
  const workload = plan.objects.find((object) => object.ref.kind === "StatefulSet");
  const disruption = workload?.disruption;
  const replicas =
    disruption?.kind === "rolling-restart"
      ? (disruption.scale?.to ?? disruption.pods)
      : disruption?.kind === "scale"
        ? disruption.to
        : 0;
  for (let ordinal = 0; ordinal < replicas; ordinal++) pods.add(`${workload!.ref.name}-${ordinal}`);
  for (const gate of run.gates) if (gate.pod !== undefined && !gate.gate.includes(":")) pods.add(gate.pod);
  if (run.currentStep?.startsWith("roll ") === true) pods.add(run.currentStep.slice(5));
  const ordinal = (pod: string): number => Number(/-(\d+)$/.exec(pod)?.[1] ?? -1);
  return [...pods].sort((a, b) => ordinal(b) - ordinal(a));
}

/** The step a recorded gate belongs to: by its prefix, else by its pod, else the step then current. */
function stepOfGate(gate: RunGate, current: string | undefined): string {
  if (gate.gate.startsWith("pre:")) return "pre-gate";
  if (gate.gate.startsWith("final:")) return "final-gate";
  if (gate.gate.startsWith("rollback:")) return ROLLBACK;
  if (gate.pod !== undefined) return `roll ${gate.pod}`;
  return current ?? "pre-gate";
}

function forwardStatus(run: UpgradeRun, index: number, current: number, failed: number): StepStatus {
  if (failed !== -1) return index < failed ? "done" : index === failed ? "failed" : "skipped";
  if (run.state === "done") return "done";
  if (index < current) return "done";
  if (index > current) return "pending";
  return run.state === "running" ? "running" : "failed";
}

/**
 * The run's steps as the rollout takes them (pre-gate, config, statefulset, one roll per broker from
 * the highest ordinal, finish, final-gate, and rollback when it came to that), each with its status
 * and its gates: those recorded, and for a roll not finished the ones still to come.
 */
export function timelineSteps(run: UpgradeRun, plan: UpgradePlan): TimelineStep[] {
  const names = [
    "pre-gate",
    "config",
    "statefulset",
    ...rolledPods(plan, run).map((pod) => `roll ${pod}`),
    "finish",
    "final-gate",
  ];
  if (run.currentStep !== undefined && run.currentStep !== ROLLBACK && !names.includes(run.currentStep)) {
    names.push(run.currentStep);
  }
  const rolledBack = run.currentStep === ROLLBACK || run.state === "rolled-back";
  const gates = new Map<string, TimelineGate[]>();
  let failedStep: string | undefined;
  for (const gate of run.gates) {
    const step = stepOfGate(gate, run.currentStep);
    if (!gate.passed && step !== ROLLBACK) failedStep ??= step;
    const list = gates.get(step) ?? [];
    list.push({
      gate: gate.gate,
      pod: gate.pod,
      status: gate.passed ? "passed" : "failed",
      durationMs: gate.finishedAt - gate.startedAt,
    });
    gates.set(step, list);
  }
  const current = names.indexOf(run.currentStep ?? "");
  const failed = failedStep === undefined ? -1 : names.indexOf(failedStep);
  // Rolled back with no gate failed (an operator's rollback): the rollout's steps are those it reached.
  const asked = rolledBack && failed === -1;
  const forward = asked ? names.filter((name) => gates.has(name)) : names;
  const steps = forward.map((name, index): TimelineStep => {
    const status = asked ? "done" : forwardStatus(run, index, current, failed);
    const recorded = gates.get(name) ?? [];
    const pod = name.startsWith("roll ") ? name.slice(5) : undefined;
    const waiting =
      pod !== undefined && (status === "pending" || status === "running")
        ? POD_GATES.filter((gate) => !recorded.some((r) => r.gate === gate)).map((gate): TimelineGate => ({
            gate,
            pod,
            status: "pending",
            durationMs: undefined,
          }))
        : [];
    return { name, status, gates: [...recorded, ...waiting] };
  });
  if (rolledBack) {
    const status: StepStatus =
      run.state === "running" ? "running" : run.state === "rolled-back" ? "done" : "failed";
    steps.push({ name: ROLLBACK, status, gates: gates.get(ROLLBACK) ?? [] });
  }
  return steps;
}

export function durationText(ms: number): string {
  if (ms < 1_000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1_000)} s`;
}

const STEP_FILL: Record<StepStatus, string> = {
  pending: "#ffffff",
  running: "#0a58ca",
  done: "#1a7f37",
  failed: "#b42318",
  skipped: "#d0d7de",
};
const GATE_COLOURS: Record<GateStatus, { fill: string; stroke: string }> = {
  pending: { fill: "#f6f8fa", stroke: "#57606a" },
  passed: { fill: "#dafbe1", stroke: "#1a7f37" },
  failed: { fill: "#fdecea", stroke: "#b42318" },
};

const WIDTH = 720;
const STEP_HEIGHT = 30;
const GATE_WIDTH = 200;
const GATE_HEIGHT = 54;
const GATES_PER_ROW = 3;

function gateBox(gate: TimelineGate, x: number, y: number): SafeHtml {
  const colours = GATE_COLOURS[gate.status];
  const duration = gate.durationMs === undefined ? "" : `, ${durationText(gate.durationMs)}`;
  return html`<g class="gate gate-${gate.status}">
    <rect
      x="${x}"
      y="${y}"
      width="${GATE_WIDTH}"
      height="${GATE_HEIGHT - 8}"
      rx="4"
      fill="${colours.fill}"
      stroke="${colours.stroke}"
    />
    <text x="${x + 8}" y="${y + 17}" font-size="13" font-weight="600" fill="#1b1f24"
      >${gate.gate}: ${gate.status}</text
    >
    <text x="${x + 8}" y="${y + 35}" font-size="12" fill="#1b1f24"
      >${gate.pod ?? "the plane"}${duration}</text
    >
  </g>`;
}

/** The timeline as SVG, drawn on the server: a marker per step, a box per gate (pending, passed, failed). */
export function timelineSvg(run: UpgradeRun, steps: TimelineStep[]): SafeHtml {
  let y = 8;
  const parts: SafeHtml[] = [];
  for (const step of steps) {
    parts.push(
      html`<g class="step step-${step.status}">
        <circle cx="16" cy="${y + 10}" r="8" fill="${STEP_FILL[step.status]}" stroke="#1b1f24" />
        <text x="34" y="${y + 15}" font-size="14" fill="#1b1f24">${step.name} — ${step.status}</text>
      </g>`,
    );
    y += STEP_HEIGHT;
    step.gates.forEach((gate, index) => {
      const column = index % GATES_PER_ROW;
      if (index > 0 && column === 0) y += GATE_HEIGHT;
      parts.push(gateBox(gate, 34 + column * (GATE_WIDTH + 10), y));
    });
    if (step.gates.length > 0) y += GATE_HEIGHT;
  }
  const height = y + 4;
  const done = steps.filter((step) => step.status === "done").length;
  const now = steps.find((step) => step.status === "running" || step.status === "failed");
  const summary = `${done} of ${steps.length} steps done${now === undefined ? "" : `; ${now.name} ${now.status}`}; run ${run.state}`;
  return html`<svg
    class="timeline"
    role="img"
    aria-labelledby="timeline-title-${run.id}"
    viewBox="0 0 ${WIDTH} ${height}"
    width="${WIDTH}"
    height="${height}"
    xmlns="http://www.w3.org/2000/svg"
  >
    <title id="timeline-title-${run.id}">Run ${run.id}: ${summary}</title>
    <line x1="16" y1="18" x2="16" y2="${Math.max(18, height - 30)}" stroke="#d0d7de" stroke-width="2" />
    ${parts}
  </svg>`;
}
