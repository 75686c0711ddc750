import { GateFailure, type GateContext } from "./run-types.js";

/** Runs one gate, records its outcome with timings, and throws GateFailure when it did not pass. */
export async function runGate(
  ctx: GateContext,
  gate: string,
  pod: string | undefined,
  check: () => Promise<string>,
): Promise<void> {
  const startedAt = ctx.clock.now();
  try {
    const detail = await check();
    await ctx.recorder.gate({ gate, pod, passed: true, detail, startedAt, finishedAt: ctx.clock.now() });
  } catch (error) {
    if (ctx.signal?.aborted === true) throw error;
    const reason = error instanceof GateFailure ? error.reason : (error as Error).message;
    await ctx.recorder.gate({
      gate,
      pod,
      passed: false,
      detail: reason,
      startedAt,
      finishedAt: ctx.clock.now(),
    });
    throw new GateFailure(gate, pod, reason);
  }
}

/** Calls `attempt` every poll interval until it returns a verdict or `timeoutMs` passes; then throws what it last said. */
export async function pollUntil<T>(
  ctx: GateContext,
  timeoutMs: number,
  attempt: () => Promise<{ done: true; value: T } | { done: false; why: string }>,
): Promise<T> {
  const deadline = ctx.clock.now() + timeoutMs;
  for (;;) {
    ctx.signal?.throwIfAborted();
    const result = await attempt();
    if (result.done) return result.value;
    if (ctx.clock.now() >= deadline) {
      throw new Error(`not within ${timeoutMs / 1000} s: ${result.why}`);
    }
    await ctx.clock.sleep(ctx.config.pollIntervalMs, ctx.signal);
  }
}
