import { createHash, randomUUID } from "node:crypto";
import type { ClusterObject, ObjectRef } from "./client.js";
import { isReady, ordinalOf, REVISION_LABEL, revisionOf } from "./memory-objects.js";

/** What the StatefulSet controller needs of the API server it runs in. */
export interface StatefulSetHost {
  get(ref: ObjectRef): ClusterObject | undefined;
  podsOf(statefulSet: ClusterObject): ClusterObject[];
  /** Stores and starts a new pod. */
  createPod(pod: ClusterObject): void;
  /** Deletes a pod: true when it is gone at once, false while it terminates (a node stops it). */
  deletePod(pod: ClusterObject): boolean;
  /** Creates the claim unless it exists: claims outlive their pods, as PVCs do. */
  ensureClaim(claim: ClusterObject): void;
  /** Writes the StatefulSet's status. */
  writeStatus(statefulSet: ClusterObject, status: Record<string, unknown>): void;
}

interface ClaimTemplate {
  metadata: { name: string; labels?: Record<string, string> };
  spec?: Record<string, unknown>;
}

export interface StatefulSetSpec {
  replicas?: number;
  podManagementPolicy?: string;
  updateStrategy?: { rollingUpdate?: { partition?: number } };
  template: {
    metadata?: { labels?: Record<string, string>; annotations?: Record<string, string> };
    spec: { volumes?: Record<string, unknown>[] } & Record<string, unknown>;
  };
  volumeClaimTemplates?: ClaimTemplate[];
}

/**
 * The StatefulSet controller's one pass: create, delete and roll pods (one at a time from the highest
 * ordinal, never replacing a pod until the old one is gone), then write status.
 */
export function reconcileStatefulSet(host: StatefulSetHost, ref: ObjectRef): void {
  const statefulSet = host.get(ref);
  if (statefulSet === undefined) return;
  const spec = statefulSet.spec as StatefulSetSpec;
  const replicas = spec.replicas ?? 1;
  const partition = spec.updateStrategy?.rollingUpdate?.partition ?? 0;
  const updateRevision = `${ref.name}-${createHash("sha256").update(JSON.stringify(spec.template)).digest("hex").slice(0, 10)}`;
  const byOrdinal = new Map(host.podsOf(statefulSet).map((pod) => [ordinalOf(pod), pod]));
  const parallel = spec.podManagementPolicy === "Parallel";
  const previous = statefulSet.status?.currentRevision as string | undefined;

  for (const [ordinal, pod] of byOrdinal) {
    if (ordinal >= replicas) {
      host.deletePod(pod);
      byOrdinal.delete(ordinal);
    }
  }
  for (let ordinal = 0; ordinal < replicas; ordinal++) {
    if (byOrdinal.has(ordinal)) continue;
    const lowerReady = [...Array(ordinal).keys()].every((o) => isReady(byOrdinal.get(o)));
    if (!parallel && !lowerReady) break;
    // A pod below the partition is recreated at the current revision, as the controller does.
    const revision = ordinal < partition && previous !== undefined ? previous : updateRevision;
    byOrdinal.set(ordinal, createPod(host, statefulSet, ordinal, revision));
  }
  const allReady = [...byOrdinal.values()].every(isReady) && byOrdinal.size === replicas;
  if (allReady) {
    const stale = [...byOrdinal.entries()]
      .filter(([ordinal, pod]) => ordinal >= partition && revisionOf(pod) !== updateRevision)
      .sort(([a], [b]) => b - a)[0];
    if (stale !== undefined && host.deletePod(stale[1])) {
      byOrdinal.set(stale[0], createPod(host, statefulSet, stale[0], updateRevision));
    }
  }

  const pods = [...byOrdinal.values()];
  const updated = pods.filter((pod) => revisionOf(pod) === updateRevision).length;
  const currentRevision =
    updated === replicas && pods.length === replicas ? updateRevision : (previous ?? updateRevision);
  const status = {
    observedGeneration: statefulSet.metadata.generation,
    replicas: pods.length,
    readyReplicas: pods.filter(isReady).length,
    availableReplicas: pods.filter(isReady).length,
    currentReplicas: pods.filter((pod) => revisionOf(pod) === currentRevision).length,
    updatedReplicas: updated,
    currentRevision,
    updateRevision,
  };
  if (JSON.stringify(status) !== JSON.stringify(statefulSet.status)) host.writeStatus(statefulSet, status);
}

/** The pod of `ordinal`, with a volume per claim template naming its claim `<template>-<pod>`. */
function createPod(
  host: StatefulSetHost,
  statefulSet: ClusterObject,
  ordinal: number,
  revision: string,
): ClusterObject {
  const { template, volumeClaimTemplates = [] } = statefulSet.spec as StatefulSetSpec;
  const name = `${statefulSet.metadata.name}-${ordinal}`;
  const namespace = statefulSet.metadata.namespace;
  const claimVolumes = volumeClaimTemplates.map((claim) => {
    const claimName = `${claim.metadata.name}-${name}`;
    host.ensureClaim({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: claimName, namespace, labels: claim.metadata.labels ?? {} },
      spec: structuredClone(claim.spec ?? {}),
      status: { phase: "Bound" },
    });
    return { name: claim.metadata.name, persistentVolumeClaim: { claimName } };
  });
  const spec = structuredClone(template.spec);
  if (claimVolumes.length > 0) spec.volumes = [...(spec.volumes ?? []), ...claimVolumes];
  const pod: ClusterObject = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name,
      namespace,
      labels: {
        ...(template.metadata?.labels ?? {}),
        [REVISION_LABEL]: revision,
        "statefulset.kubernetes.io/pod-name": name,
      },
      ...(template.metadata?.annotations === undefined
        ? {}
        : { annotations: { ...template.metadata.annotations } }),
      uid: randomUUID(),
      ownerReferences: [{ apiVersion: "apps/v1", kind: "StatefulSet", name: statefulSet.metadata.name }],
    } as ClusterObject["metadata"],
    // The headless Service names the pod `<pod>.<serviceName>`, as the real controller's pods are.
    spec: { ...spec, hostname: name, ...subdomainOf(statefulSet) },
    status: { phase: "Pending", conditions: [{ type: "Ready", status: "False" }] },
  };
  host.createPod(pod);
  return pod;
}

function subdomainOf(statefulSet: ClusterObject): { subdomain?: string } {
  const serviceName = (statefulSet.spec as { serviceName?: string }).serviceName;
  return serviceName === undefined ? {} : { subdomain: serviceName };
}
