import { RELEASE_LABEL } from "../../manifests/index.js";
import { AirlockError } from "../../registry/oci/index.js";
import {
  FIELD_MANAGER,
  MANAGED_BY_LABEL,
  refOf,
  type ClusterClient,
  type ClusterObject,
} from "../cluster/index.js";
import { GateFailure, type Clock } from "./run-types.js";

interface StatefulSetShape {
  spec: {
    replicas?: number;
    serviceName?: string;
    updateStrategy?: { type?: string; rollingUpdate?: { partition?: number } };
    template: { spec: { containers: { ports?: { name?: string; containerPort: number }[] }[] } };
  };
  status?: { observedGeneration?: number; updateRevision?: string; currentRevision?: string };
}

/** The one StatefulSet of a release's objects: the workload a run rolls. */
export function statefulSetOf(objects: ClusterObject[], which: string): ClusterObject {
  const found = objects.filter((object) => object.kind === "StatefulSet");
  if (found.length !== 1) {
    throw new AirlockError(
      "UPGRADE_RELEASE_INVALID",
      `the ${which} release has ${found.length} StatefulSets`,
      {
        where: `${which} release`,
        hint: "a run rolls exactly one StatefulSet (msgbroker): re-render the release",
      },
    );
  }
  return found[0]!;
}

/** The release name its objects carry, as applyRelease labels and prunes them. */
export function releaseOf(statefulSet: ClusterObject): string {
  const release = statefulSet.metadata.labels?.[RELEASE_LABEL];
  if (release === undefined) {
    throw new AirlockError("UPGRADE_RELEASE_INVALID", `the StatefulSet has no ${RELEASE_LABEL} label`, {
      where: statefulSet.metadata.name,
      hint: "render the release with manifests' render(), which labels every object",
    });
  }
  return release;
}

export function replicasOf(statefulSet: ClusterObject): number {
  return (statefulSet as ClusterObject & StatefulSetShape).spec.replicas ?? 1;
}

export function podNameOf(statefulSet: ClusterObject, ordinal: number): string {
  return `${statefulSet.metadata.name}-${ordinal}`;
}

/** Where a pod's broker answers its monitor port: its IP, else its name under the headless Service. */
export function monitorUrl(statefulSet: ClusterObject, pod: ClusterObject, path: string): string {
  const { spec } = statefulSet as ClusterObject & StatefulSetShape;
  const ports = spec.template.spec.containers.flatMap((container) => container.ports ?? []);
  const port = ports.find((candidate) => candidate.name === "monitor")?.containerPort ?? 8222;
  const ip = (pod.status as { podIP?: string } | undefined)?.podIP;
  const host =
    ip ??
    `${pod.metadata.name}.${spec.serviceName ?? statefulSet.metadata.name}.${pod.metadata.namespace}.svc`;
  return `http://${host}:${port}${path}`;
}

export function withPartition(statefulSet: ClusterObject, partition: number): ClusterObject {
  const copy = structuredClone(statefulSet) as ClusterObject & StatefulSetShape;
  copy.spec.updateStrategy = { type: "RollingUpdate", rollingUpdate: { partition } };
  return copy;
}

/** Server-side apply as applyRelease does it: field manager airlock, labelled as the release's. */
export async function applyLabelled(
  client: ClusterClient,
  object: ClusterObject,
  release: string,
): Promise<ClusterObject> {
  const labelled: ClusterObject = {
    ...object,
    metadata: {
      ...object.metadata,
      labels: { ...object.metadata.labels, [MANAGED_BY_LABEL]: "airlock", [RELEASE_LABEL]: release },
    },
  };
  return client.apply(labelled, { fieldManager: FIELD_MANAGER, force: true });
}

/** Polls until the controller has seen the StatefulSet's generation; its update revision then. */
export async function observedRevision(
  client: ClusterClient,
  applied: ClusterObject,
  clock: Clock,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<string> {
  const deadline = clock.now() + timeoutMs;
  const generation = applied.metadata.generation ?? 0;
  for (;;) {
    signal?.throwIfAborted();
    const current = (await client.get(refOf(applied))) as (ClusterObject & StatefulSetShape) | undefined;
    const status = current?.status;
    if (status?.updateRevision !== undefined && (status.observedGeneration ?? 0) >= generation) {
      return status.updateRevision;
    }
    if (clock.now() >= deadline) {
      throw new GateFailure(
        "observed",
        undefined,
        `${applied.metadata.name}: the controller did not observe generation ${generation}`,
      );
    }
    await clock.sleep(50, signal);
  }
}

/** The pods of the StatefulSet, as the API server has them now. */
export async function podsOf(client: ClusterClient, statefulSet: ClusterObject): Promise<ClusterObject[]> {
  const selector = (statefulSet.spec as { selector?: { matchLabels?: Record<string, string> } }).selector;
  const labelSelector = Object.entries(selector?.matchLabels ?? {})
    .map(([key, value]) => `${key}=${value}`)
    .join(",");
  return client.list("v1", "Pod", { namespace: statefulSet.metadata.namespace, labelSelector });
}
