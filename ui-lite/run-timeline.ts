import type { RunGate, RunStep, UpgradeRun } from "../installer/state/index.js";
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
  /** How long it took, once finished. */
  durationMs: number | undefined;
  gates: TimelineGate[];
}

/** The per-pod gates a broker's roll passes, in order (the bundle's declared probes come between). */
const POD_GATES = ["ready", "healthz", "routez", "settle"];
const ROLLBACK = "rollback";

/** The pods the rollout rolls, highest ordinal first: from the plan's StatefulSet, and any the run rolled. */
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
  for (const step of run.steps) if (step.step.startsWith("roll ")) pods.add(step.step.slice(5));
  const ordinal = (pod: string): number => Number(/-(\d+)$/.exec(pod)?.[1] ?? -1);
  return [...pods].sort((a, b) => ordinal(b) - ordinal(a));
}

/**
 * The steps in the order they run: the rollout's (or a rollback's) expected steps, each step the run
 * recorded that is not among them placed after the one recorded before it, and a rollback last.
 */
function stepNames(run: UpgradeRun, plan: UpgradePlan): string[] {
  const names =
    run.kind === "rollback"
      ? [ROLLBACK]
      : [
          "pre-gate",
          "config",
          "statefulset",
          ...rolledPods(plan, run).map((pod) => `roll ${pod}`),
          "finish",
          "final-gate",
        ];
  let cursor = -1;
  for (const { step } of run.steps) {
    if (step === ROLLBACK && run.kind !== "rollback") continue;
    const at = names.indexOf(step);
    if (at === -1) names.splice(++cursor, 0, step);
    else cursor = Math.max(cursor, at);
  }
  if (run.kind !== "rollback" && run.steps.some(({ step }) => step === ROLLBACK)) names.push(ROLLBACK);
  return names;
}

function stepStatus(run: UpgradeRun, step: RunStep | undefined, rollingBack: boolean): StepStatus {
  if (step === undefined) return run.state === "running" && !rollingBack ? "pending" : "skipped";
  if (step.finishedAt !== undefined) return step.outcome ?? "done";
  return run.state === "running" ? "running" : "failed";
}

/** The step a gate was judged in: the latest one started at or before it. */
function stepOfGate(run: UpgradeRun, gate: RunGate): string | undefined {
  return run.steps.findLast((step) => step.startedAt <= gate.startedAt)?.step ?? run.steps[0]?.step;
}

/**
 * The run's steps as the rollout takes them (pre-gate, config, statefulset, one roll per broker from
 * the highest ordinal, finish, final-gate; rollback when it came to that, or alone for a rollback by
 * hand), each with the status the run recorded and its gates: those judged in it, and for a roll not
 * finished the ones still to come.
 */
export function timelineSteps(run: UpgradeRun, plan: UpgradePlan): TimelineStep[] {
  const latest = new Map(run.steps.map((step) => [step.step, step]));
  const rollingBack = run.kind !== "rollback" && latest.has(ROLLBACK);
  const gates = new Map<string, TimelineGate[]>();
  for (const gate of run.gates) {
    const step = stepOfGate(run, gate) ?? "";
    const list = gates.get(step) ?? [];
    list.push({
      gate: gate.gate,
      pod: gate.pod,
      status: gate.passed ? "passed" : "failed",
      durationMs: gate.finishedAt - gate.startedAt,
    });
    gates.set(step, list);
  }
  return stepNames(run, plan).map((name): TimelineStep => {
    const step = latest.get(name);
    const status = stepStatus(run, step, rollingBack && name !== ROLLBACK);
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
    const durationMs = step?.finishedAt === undefined ? undefined : step.finishedAt - step.startedAt;
    return { name, status, durationMs, gates: [...recorded, ...waiting] };
  });
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
    const took = step.durationMs === undefined ? "" : `, ${durationText(step.durationMs)}`;
    const label = `${step.name} — ${step.status}${took}`;
    parts.push(
      html`<g class="step step-${step.status}">
        <circle cx="16" cy="${y + 10}" r="8" fill="${STEP_FILL[step.status]}" stroke="#1b1f24" />
        <text x="34" y="${y + 15}" font-size="14" fill="#1b1f24">${label}</text>
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
