import { pause } from "./backoff.js";
import type { Container, HttpProbe } from "./pod-spec.js";
import { ProbeState, runHttpProbe } from "./probes.js";

export interface ProbeEvents {
  /** Readiness changed (true once the startup probe, if any, and the readiness probe pass). */
  onReady(ready: boolean, message: string | undefined): void;
  /** The startup or liveness probe failed past its threshold: kubelet restarts the container. */
  onUnhealthy(message: string): void;
}

async function loop(
  probe: HttpProbe,
  container: Container,
  ip: string,
  signal: AbortSignal,
  onResult: (state: ProbeState) => boolean,
): Promise<void> {
  const state = new ProbeState(probe);
  await pause((probe.initialDelaySeconds ?? 0) * 1000, signal);
  while (!signal.aborted) {
    state.record(await runHttpProbe(container, probe, ip));
    if (signal.aborted || onResult(state)) return;
    await pause((probe.periodSeconds ?? 10) * 1000, signal);
  }
}

/**
 * A started container's probes, as kubelet runs them: the startup probe until it passes (readiness
 * and liveness wait for it), then readiness and liveness each on its own period, until `signal`.
 */
export async function runProbes(
  container: Container,
  ip: string,
  signal: AbortSignal,
  events: ProbeEvents,
): Promise<void> {
  const { startupProbe, readinessProbe, livenessProbe } = container;
  if (startupProbe?.httpGet !== undefined) {
    let started = false;
    await loop(startupProbe, container, ip, signal, (state) => {
      if (state.passing) return (started = true);
      if (state.failedOut) events.onUnhealthy(`Startup probe failed: ${state.lastMessage}`);
      return state.failedOut;
    });
    if (!started) return;
  }
  if (readinessProbe?.httpGet === undefined) events.onReady(true, undefined);
  await Promise.all([
    readinessProbe?.httpGet === undefined
      ? undefined
      : loop(readinessProbe, container, ip, signal, (state) => {
          events.onReady(
            state.passing,
            state.passing ? undefined : `Readiness probe failed: ${state.lastMessage}`,
          );
          return false;
        }),
    livenessProbe?.httpGet === undefined
      ? undefined
      : loop(livenessProbe, container, ip, signal, (state) => {
          if (state.failedOut) events.onUnhealthy(`Liveness probe failed: ${state.lastMessage}`);
          return state.failedOut;
        }),
  ]);
}
