import {
  DEFAULT_GATES,
  type Clock,
  type DeclaredGate,
  type GateConfig,
  type GateContext,
  type HttpProber,
  type RunRecorder,
} from "./run-types.js";

/** Real time: sleeps end early, with the abort's reason, when `signal` aborts. */
export const SYSTEM_CLOCK: Clock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve, reject) => {
      signal?.throwIfAborted();
      const onAbort = (): void => {
        clearTimeout(timer);
        reject(signal!.reason as Error);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    }),
};

/** Each probe may take this long before it counts as unanswered. */
const PROBE_TIMEOUT_MS = 5_000;

/** A plain HTTP GET (the broker's monitor port has no TLS), cut after 5 s. */
export const httpGet: HttpProber = async (url, signal) => {
  const response = await fetch(url, {
    signal: AbortSignal.any([signal, AbortSignal.timeout(PROBE_TIMEOUT_MS)]),
  });
  return { status: response.status, body: await response.text() };
};

export function gateContext(options: {
  recorder: RunRecorder;
  gates?: Partial<GateConfig> | undefined;
  declaredGates?: DeclaredGate[] | undefined;
  probe?: HttpProber | undefined;
  clock?: Clock | undefined;
  signal?: AbortSignal | undefined;
}): GateContext {
  return {
    config: { ...DEFAULT_GATES, ...options.gates },
    clock: options.clock ?? SYSTEM_CLOCK,
    probe: options.probe ?? httpGet,
    recorder: options.recorder,
    declared: options.declaredGates ?? [],
    signal: options.signal,
  };
}

/** Records the step's start and end around `run`; a failure is recorded with its message and rethrown. */
export async function runStep(ctx: GateContext, step: string, run: () => Promise<void>): Promise<void> {
  await ctx.recorder.stepStarted(step, ctx.clock.now());
  try {
    await run();
  } catch (error) {
    await ctx.recorder.stepFinished(step, ctx.clock.now(), "failed", (error as Error).message);
    throw error;
  }
  await ctx.recorder.stepFinished(step, ctx.clock.now(), "done");
}
