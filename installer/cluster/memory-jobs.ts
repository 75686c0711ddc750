import { randomBytes, randomUUID } from "node:crypto";
import type { ClusterObject, ObjectRef } from "./client.js";
import { clusterError } from "./errors.js";

/** What the Job controller needs of the API server it runs in. */
export interface JobHost {
  get(ref: ObjectRef): ClusterObject | undefined;
  /** The objects of `kind` the Job owns (its pods). */
  owned(job: ClusterObject, kind: string): ClusterObject[];
  /** Stores and starts a new pod. */
  createPod(pod: ClusterObject): void;
  writeStatus(job: ClusterObject, status: Record<string, unknown>): void;
}

interface JobSpec {
  backoffLimit?: number;
  template: {
    metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
    spec: Record<string, unknown>;
  };
}

interface JobCondition {
  type: "Complete" | "Failed";
  status: "True";
  reason?: string;
  message?: string;
}

/** The label the Job controller puts on its pods. */
const JOB_NAME_LABEL = "batch.kubernetes.io/job-name";

/** Kubernetes' default: a Job fails once its pods failed this many times and once more. */
const DEFAULT_BACKOFF_LIMIT = 6;

/** What the API server refuses of a Job: a pod template that restarts always (a Job's pod must end). */
export function admitJob(job: ClusterObject, ref: ObjectRef): void {
  const policy = (job.spec as JobSpec | undefined)?.template?.spec?.restartPolicy;
  if (policy !== "Never" && policy !== "OnFailure") {
    throw clusterError(
      422,
      ref,
      `Job.batch "${job.metadata.name}" is invalid: spec.template.spec.restartPolicy: ${policy === undefined ? "Required value" : `Unsupported value: ${JSON.stringify(policy)}`}: supported values: "OnFailure", "Never"`,
    );
  }
}

/** A Job that has ended: its Complete or Failed condition. */
function jobEnded(job: ClusterObject): JobCondition | undefined {
  return ((job.status?.conditions ?? []) as JobCondition[]).find(
    (condition) => condition.type === "Complete" || condition.type === "Failed",
  );
}

function failuresOf(pods: ClusterObject[]): number {
  return pods.reduce((total, pod) => {
    const restarts = ((pod.status?.containerStatuses ?? []) as { restartCount?: number }[]).reduce(
      (sum, container) => sum + (container.restartCount ?? 0),
      0,
    );
    return total + (pod.status?.phase === "Failed" ? 1 : 0) + restarts;
  }, 0);
}

/**
 * The Job controller's one pass for a Job of one completion: a pod from the template while none runs,
 * Complete once one succeeded, Failed once the pods failed (or restarted, under OnFailure) more than
 * `backoffLimit` times; then status.
 */
export function reconcileJob(host: JobHost, ref: ObjectRef): void {
  const job = host.get(ref);
  if (job === undefined || job.metadata.deletionTimestamp !== undefined || jobEnded(job) !== undefined) {
    return;
  }
  const spec = job.spec as JobSpec;
  const pods = host.owned(job, "Pod");
  const succeeded = pods.filter((pod) => pod.status?.phase === "Succeeded").length;
  const failed = failuresOf(pods);
  const ending = (phase: unknown): boolean => phase === "Succeeded" || phase === "Failed";
  let active = pods.filter(
    (pod) => !ending(pod.status?.phase) && pod.metadata.deletionTimestamp === undefined,
  ).length;
  const backoffLimit = spec.backoffLimit ?? DEFAULT_BACKOFF_LIMIT;
  let condition: JobCondition | undefined;
  if (succeeded > 0) condition = { type: "Complete", status: "True" };
  else if (failed > backoffLimit) {
    condition = {
      type: "Failed",
      status: "True",
      reason: "BackoffLimitExceeded",
      message: "Job has reached the specified backoff limit",
    };
  } else if (active === 0) {
    createPod(host, job);
    active = 1;
  }
  const status = {
    ...(job.status ?? {}),
    startTime: (job.status?.startTime as string | undefined) ?? new Date().toISOString(),
    active: condition === undefined ? active : 0,
    succeeded,
    failed,
    ...(condition === undefined ? {} : { conditions: [condition] }),
  };
  if (JSON.stringify(status) !== JSON.stringify(job.status)) host.writeStatus(job, status);
}

function createPod(host: JobHost, job: ClusterObject): void {
  const { template } = job.spec as JobSpec;
  const name = `${job.metadata.name}-${randomBytes(3).toString("hex").slice(0, 5)}`;
  host.createPod({
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace: job.metadata.namespace,
      labels: {
        ...(template.metadata?.labels ?? {}),
        [JOB_NAME_LABEL]: job.metadata.name,
        "job-name": job.metadata.name,
      },
      ...(template.metadata?.annotations === undefined
        ? {}
        : { annotations: { ...template.metadata.annotations } }),
      uid: randomUUID(),
      ownerReferences: [{ apiVersion: "batch/v1", kind: "Job", name: job.metadata.name }],
    } as ClusterObject["metadata"],
    spec: structuredClone(template.spec),
    status: { phase: "Pending", conditions: [{ type: "Ready", status: "False" }] },
  });
}
