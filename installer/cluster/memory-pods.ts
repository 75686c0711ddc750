import type { ClusterObject } from "./client.js";
import type { ClusterNode, ContainerState, ContainerStatus, PodContext, PodStatus } from "./node-api.js";

/** Each container's status in `state`: ready and started exactly when it runs. */
function statusesOf(
  containers: { name: string; image: string }[],
  state: (container: { image: string }) => ContainerState,
): ContainerStatus[] {
  return containers.map((container) => {
    const now = state(container);
    const running = now.running !== undefined;
    return {
      name: container.name,
      image: container.image,
      ready: running,
      started: running,
      restartCount: 0,
      state: now,
      lastState: {},
    };
  });
}

interface PodSpec {
  containers?: { name: string; image: string }[];
  restartPolicy?: string;
}

/**
 * MemoryCluster's pods when it has no node: bookkeeping only. A started pod gets ready after
 * `readyMs`, unless one of its images was made to fail, when it stays waiting with that reason. A
 * pod that runs to its end (restartPolicy Never or OnFailure: a Job's) succeeds after `readyMs`, or
 * with a failed image, fails: exit code 1, the reason as its message.
 */
export class SimulatedNode implements ClusterNode {
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly failingImages = new Map<string, string>();

  constructor(private readonly readyMs: number) {}

  failImage(imagePart: string, reason: string): void {
    this.failingImages.set(imagePart, reason);
  }

  healImage(imagePart: string): void {
    this.failingImages.delete(imagePart);
  }

  failureOf(pod: ClusterObject): string | undefined {
    for (const container of (pod.spec as PodSpec).containers ?? []) {
      for (const [part, reason] of this.failingImages) if (container.image.includes(part)) return reason;
    }
    return undefined;
  }

  runPod(pod: ClusterObject, context: PodContext): void {
    const { containers = [], restartPolicy = "Always" } = pod.spec as PodSpec;
    if (restartPolicy !== "Always") return this.runToEnd(pod, containers, context);
    const reason = this.failureOf(pod);
    if (reason !== undefined) {
      context.report({
        phase: "Pending",
        conditions: [{ type: "Ready", status: "False" }],
        containerStatuses: statusesOf(containers, (container) => ({
          waiting: { reason, message: `${reason}: ${container.image}` },
        })),
      });
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.failureOf(pod) !== undefined) return;
      const startedAt = new Date().toISOString();
      const status: PodStatus = {
        phase: "Running",
        conditions: [{ type: "Ready", status: "True" }],
        containerStatuses: statusesOf(containers, () => ({ running: { startedAt } })),
      };
      context.report(status);
    }, this.readyMs);
    this.timers.add(timer);
  }

  private runToEnd(
    pod: ClusterObject,
    containers: { name: string; image: string }[],
    context: PodContext,
  ): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      const reason = this.failureOf(pod);
      const finishedAt = new Date().toISOString();
      const terminated =
        reason === undefined
          ? { exitCode: 0, reason: "Completed", finishedAt }
          : { exitCode: 1, reason: "Error", message: reason, finishedAt };
      context.report({
        phase: reason === undefined ? "Succeeded" : "Failed",
        conditions: [{ type: "Ready", status: "False" }],
        containerStatuses: statusesOf(containers, () => ({ terminated })),
      });
    }, this.readyMs);
    this.timers.add(timer);
  }

  /** Simulated pods go at once: MemoryCluster deletes them without waiting on this. */
  stopPod(): Promise<void> {
    return Promise.resolve();
  }

  close(): void {
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
  }
}
