import { randomBytes } from "node:crypto";
import { FIELD_MANAGER, refOf, type ClusterClient, type ClusterObject } from "../cluster/index.js";
import { pollUntil, runGate } from "./gate-run.js";
import type { BundleUpgradeGate } from "../../bundle/index.js";
import type { DeclaredGate, DeclaredHttpGate, DeclaredJobGate, GateContext } from "./run-types.js";

/** The label the Job controller puts on a Job's pods. */
const JOB_NAME_LABEL = "batch.kubernetes.io/job-name";
/** Kubernetes names are DNS labels: the Job's name and its suffix must fit 63 characters. */
const NAME_MAX = 63;

interface JobStatus {
  active?: number;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
}

interface PodTermination {
  state?: { terminated?: { exitCode: number; reason?: string; message?: string } };
  lastState?: { terminated?: { exitCode: number; reason?: string; message?: string } };
}

/** GET `url` answers the status it should, within brokerTimeoutMs. */
function httpGate(ctx: GateContext, declared: DeclaredHttpGate): Promise<string> {
  const expected = declared.status ?? 200;
  return pollUntil(ctx, declared.timeoutMs ?? ctx.config.brokerTimeoutMs, async () => {
    const answer = await ctx
      .probe(declared.url, ctx.signal ?? new AbortController().signal)
      .catch((error: Error) => error);
    if (answer instanceof Error) return { done: false, why: answer.message };
    return answer.status === expected
      ? { done: true, value: `${declared.url} answered ${expected}` }
      : { done: false, why: `${declared.url} answered ${answer.status}, not ${expected}` };
  });
}

/** How the Job's pods ended: each container's exit code and the end of its log, as kubelet reports it. */
async function podEndings(client: ClusterClient, job: ClusterObject): Promise<string> {
  const pods = await client.list("v1", "Pod", {
    namespace: job.metadata.namespace,
    labelSelector: `${JOB_NAME_LABEL}=${job.metadata.name}`,
  });
  const endings = pods.flatMap((pod) =>
    ((pod.status?.containerStatuses ?? []) as PodTermination[]).flatMap((container) => {
      const ended = container.state?.terminated ?? container.lastState?.terminated;
      if (ended === undefined) return [];
      return [
        `${pod.metadata.name} exited ${ended.exitCode}${ended.message === undefined ? "" : `: ${ended.message.trim()}`}`,
      ];
    }),
  );
  return endings.length === 0 ? "" : ` (${endings.join("; ")})`;
}

/**
 * Creates a Job from the declared one under a fresh name and waits until it succeeds (passed), fails
 * (its condition and how its pods ended; the Job is left for `kubectl logs`) or runs out of time
 * (the Job is deleted, its pods with it).
 */
async function jobGate(
  client: ClusterClient,
  ctx: GateContext,
  declared: DeclaredJobGate,
  namespace: string | undefined,
): Promise<string> {
  const suffix = `-${randomBytes(3).toString("hex")}`;
  const base = declared.job.metadata.name ?? declared.name;
  const job: ClusterObject = {
    ...declared.job,
    metadata: {
      ...declared.job.metadata,
      name: `${base.slice(0, NAME_MAX - suffix.length)}${suffix}`,
      namespace: declared.job.metadata.namespace ?? namespace,
    },
  };
  const created = await client.apply(job, { fieldManager: FIELD_MANAGER, force: true });
  const where = `${created.metadata.namespace ?? "default"}/${created.metadata.name}`;
  const timeoutMs = declared.timeoutMs ?? ctx.config.brokerTimeoutMs;
  let failed: string | undefined;
  try {
    await pollUntil(ctx, timeoutMs, async () => {
      const current = await client.get(refOf(created));
      if (current === undefined) throw new Error(`Job ${where} was deleted before it ended`);
      const status = (current.status ?? {}) as JobStatus;
      const ended = (status.conditions ?? []).find(
        (condition) =>
          (condition.type === "Complete" || condition.type === "Failed") && condition.status === "True",
      );
      if (ended?.type === "Complete") return { done: true, value: undefined };
      if (ended?.type === "Failed") {
        failed = `Job ${where} failed: ${ended.reason ?? "Failed"}${ended.message === undefined ? "" : ` (${ended.message})`}${await podEndings(client, current)}; its logs: kubectl -n ${created.metadata.namespace ?? "default"} logs job/${created.metadata.name}`;
        throw new Error(failed);
      }
      return { done: false, why: `Job ${where} has not finished (${status.active ?? 0} pods active)` };
    });
  } catch (error) {
    if (failed === undefined) await client.delete(refOf(created)).catch(() => false);
    throw error;
  }
  await client.delete(refOf(created));
  return `Job ${where} succeeded`;
}

/** The gates a bundle declares (airlock.json's upgradeGates) as a run takes them. */
export function declaredGatesOf(gates: BundleUpgradeGate[] | undefined): DeclaredGate[] {
  return (gates ?? []).map((gate) => {
    const timeoutMs = gate.timeoutSeconds === undefined ? undefined : gate.timeoutSeconds * 1000;
    if (gate.job !== undefined) {
      const metadata = { name: gate.name, ...gate.job.metadata } as ClusterObject["metadata"];
      return { name: gate.name, job: { ...gate.job, metadata }, timeoutMs };
    }
    return { name: gate.name, url: gate.http!.url, status: gate.http!.status, timeoutMs };
  });
}

/** The bundle's declared gates in order, each once: HTTP probes and Jobs. */
export async function declaredGates(
  client: ClusterClient,
  ctx: GateContext,
  statefulSet: ClusterObject,
  pod: string | undefined,
): Promise<void> {
  for (const declared of ctx.declared) {
    if ("job" in declared) {
      await runGate(ctx, `job:${declared.name}`, pod, () =>
        jobGate(client, ctx, declared, statefulSet.metadata.namespace),
      );
    } else {
      await runGate(ctx, `http:${declared.name}`, pod, () => httpGate(ctx, declared));
    }
  }
}
