/** Kubelet's back-off: 10 s doubling to 5 min by default, for image pulls and crashed containers alike. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const KUBELET_BACKOFF: BackoffOptions = { initialMs: 10_000, maxMs: 300_000 };

export function backoffDelay(options: BackoffOptions, failures: number): number {
  return Math.min(options.maxMs, options.initialMs * 2 ** Math.max(0, failures));
}

/** Resolves after `ms`, or at once when `signal` aborts (a stopping pod cuts its back-off short). */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
