import { createHash, randomUUID } from "node:crypto";
import { isDeepStrictEqual } from "node:util";
import type { ClusterObject, ObjectRef } from "./client.js";
import { isReady, ordinalOf, REVISION_LABEL, revisionOf } from "./memory-objects.js";

/** What the StatefulSet controller needs of the API server it runs in. */
export interface StatefulSetHost {
  get(ref: ObjectRef): ClusterObject | undefined;
  /** The pods or ControllerRevisions the StatefulSet controls. */
  owned(statefulSet: ClusterObject, kind: "Pod" | "ControllerRevision"): ClusterObject[];
  /** Pods and ControllerRevisions its selector matches that no controller owns. */
  orphansOf(statefulSet: ClusterObject): ClusterObject[];
  /** Stores an adopted object or a new revision. */
  write(object: ClusterObject): void;
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
  adoptOrphans(host, statefulSet);
  const updateRevision = updateRevisionOf(host, statefulSet);
  const byOrdinal = new Map(host.owned(statefulSet, "Pod").map((pod) => [ordinalOf(pod), pod]));
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

/** The controller's reference on what it owns. */
function controllerReference(statefulSet: ClusterObject): Record<string, unknown>[] {
  const { name, uid } = statefulSet.metadata;
  return [
    { apiVersion: "apps/v1", kind: "StatefulSet", name, uid, controller: true, blockOwnerDeletion: true },
  ];
}

/**
 * What a StatefulSet made again after an orphaning delete finds: the pods of its own names and the
 * revisions its selector matches, which no controller owns. It adopts them, as the real controller's
 * ClaimPods and ClaimRevisions do; a pod of another name stays an orphan.
 */
function adoptOrphans(host: StatefulSetHost, statefulSet: ClusterObject): void {
  const member = new RegExp(`^${statefulSet.metadata.name.replace(/[.]/g, "\\.")}-[0-9]+$`);
  for (const orphan of host.orphansOf(statefulSet)) {
    if (orphan.kind === "Pod" && !member.test(orphan.metadata.name)) continue;
    (orphan.metadata as { ownerReferences?: unknown[] }).ownerReferences = controllerReference(statefulSet);
    host.write(orphan);
  }
}

/**
 * The revision the template is: one in the StatefulSet's history (its ControllerRevisions, adopted
 * ones included) holding the same template, else a new ControllerRevision. So pods adopted from a
 * StatefulSet with the same template are on the update revision already, and others are not.
 */
function updateRevisionOf(host: StatefulSetHost, statefulSet: ClusterObject): string {
  const { template } = statefulSet.spec as StatefulSetSpec;
  const history = host.owned(statefulSet, "ControllerRevision");
  const same = history.find((revision) =>
    isDeepStrictEqual(
      (revision.data as { spec?: { template?: unknown } } | undefined)?.spec?.template,
      template,
    ),
  );
  if (same !== undefined) return same.metadata.name;
  const hash = createHash("sha256").update(JSON.stringify(template)).digest("hex").slice(0, 10);
  const name = `${statefulSet.metadata.name}-${hash}`;
  const number = Math.max(0, ...history.map((revision) => Number(revision.revision ?? 0)));
  host.write({
    apiVersion: "apps/v1",
    kind: "ControllerRevision",
    metadata: {
      name,
      namespace: statefulSet.metadata.namespace,
      labels: { ...(template.metadata?.labels ?? {}), [REVISION_LABEL]: name },
      uid: randomUUID(),
      ownerReferences: controllerReference(statefulSet),
    } as ClusterObject["metadata"],
    data: { spec: { template: structuredClone(template) } },
    revision: number + 1,
  });
  return name;
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
      ownerReferences: controllerReference(statefulSet),
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
