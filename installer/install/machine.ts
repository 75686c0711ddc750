import { AirlockError, type ErrorCode } from "../../registry/oci/index.js";
import type { Install, State } from "../state/index.js";

/** What a step leaves for a re-run and for the steps after it: plain JSON, kept in its step row. */
export type StepDetail = Record<string, unknown>;

export interface StepOutcome {
  detail: StepDetail;
  /** One line for the operator: what the step did. */
  summary: string;
}

/**
 * One step of a resumable flow. `run` does the work and must be safe to repeat (a crash can come
 * after the work and before its row says done); `stillDone` re-checks cheaply, on a re-run, that
 * what a finished step did still holds, so the step is skipped.
 */
export interface StepDefinition<C> {
  name: string;
  title: string;
  stillDone(context: C, detail: StepDetail): Promise<boolean>;
  run(context: C): Promise<StepOutcome>;
}

export type StepPhase = "start" | "done" | "already-done" | "failed";

export interface StepEvent {
  name: string;
  title: string;
  phase: StepPhase;
  /** Set once the step ended (done, already-done, failed). */
  durationMs?: number;
  summary?: string;
  error?: { code: ErrorCode; message: string };
}

export interface StepReport {
  name: string;
  title: string;
  outcome: Exclude<StepPhase, "start">;
  durationMs: number;
  summary: string;
}

export interface MachineIdentity {
  bundleDigest: string;
  bundleName: string;
  version: string;
}

export interface MachineOptions<C> {
  state: State;
  identity: MachineIdentity;
  steps: StepDefinition<C>[];
  context: C;
  /** Each finished step's detail, by step name: what later steps read (filled as steps end or are skipped). */
  details: Map<string, StepDetail>;
  signal?: AbortSignal | undefined;
  /** Told which install the run records under, before its first step. */
  onInstall?: ((install: Install) => void) | undefined;
  onStep?: ((event: StepEvent) => void) | undefined;
}

export interface MachineResult {
  install: Install;
  /** True when this run started the install; false when it resumed an unfinished one. */
  started: boolean;
  steps: StepReport[];
}

function errorOf(error: unknown): { code: ErrorCode; message: string } {
  if (error instanceof AirlockError) return { code: error.code, message: error.message };
  if (error instanceof Error && error.name === "AbortError")
    return { code: "INTERRUPTED", message: "interrupted" };
  return { code: "INTERNAL", message: error instanceof Error ? error.message : String(error) };
}

/** A re-check that cannot even look (a file gone, a service down) says the step must run again. */
async function holds<C>(step: StepDefinition<C>, context: C, detail: StepDetail): Promise<boolean> {
  try {
    return await step.stillDone(context, detail);
  } catch {
    return false;
  }
}

/** The unfinished install of this bundle to resume, or a new one with every step pending. */
function installToRun(
  state: State,
  identity: MachineIdentity,
  names: string[],
): { install: Install; started: boolean } {
  const latest = state.installs.latest();
  if (latest !== undefined && latest.state !== "done" && latest.bundleDigest === identity.bundleDigest) {
    const recorded = state.installs.steps(latest.id).map((step) => step.name);
    if (recorded.join(",") === names.join(",")) return { install: latest, started: false };
  }
  return { install: state.installs.start({ ...identity, steps: names }), started: true };
}

/**
 * Runs the steps in order under the state's records: a step a previous run finished is re-checked
 * and skipped while it still holds; the first that does not is run, and every one after it. A
 * failing step is recorded failed (the install with it) and its error rethrown: the next run starts
 * there. The caller holds the site's writer lock.
 */
export async function runMachine<C>(options: MachineOptions<C>): Promise<MachineResult> {
  const { state, steps, context, details } = options;
  const { install, started } = installToRun(
    state,
    options.identity,
    steps.map((step) => step.name),
  );
  options.onInstall?.(install);
  const reports: StepReport[] = [];
  let resuming = true;
  for (const step of steps) {
    options.signal?.throwIfAborted();
    const begun = Date.now();
    const recorded = state.installs.step(install.id, step.name);
    if (resuming && recorded.state === "done" && (await holds(step, context, recorded.detail))) {
      details.set(step.name, recorded.detail);
      const report: StepReport = {
        name: step.name,
        title: step.title,
        outcome: "already-done",
        durationMs: Date.now() - begun,
        summary: "already done",
      };
      reports.push(report);
      options.onStep?.({ ...report, phase: report.outcome });
      continue;
    }
    resuming = false;
    state.installs.startStep(install.id, step.name);
    options.onStep?.({ name: step.name, title: step.title, phase: "start" });
    let outcome: StepOutcome;
    try {
      outcome = await step.run(context);
    } catch (error) {
      const failure = errorOf(error);
      state.installs.failStep(install.id, step.name, failure);
      options.onStep?.({
        name: step.name,
        title: step.title,
        phase: "failed",
        durationMs: Date.now() - begun,
        error: failure,
      });
      throw error;
    }
    state.installs.finishStep(install.id, step.name, outcome.detail);
    details.set(step.name, outcome.detail);
    const report: StepReport = {
      name: step.name,
      title: step.title,
      outcome: "done",
      durationMs: Date.now() - begun,
      summary: outcome.summary,
    };
    reports.push(report);
    options.onStep?.({ ...report, phase: report.outcome });
  }
  return { install: state.installs.finish(install.id, "done"), started, steps: reports };
}
