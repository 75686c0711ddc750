/**
 * The in-memory cluster refuses in-place changes to what kube-apiserver 1.32 fixes at creation, with
 * its status and words; an orphaning delete leaves a StatefulSet's pods running, and the StatefulSet
 * made again adopts them, its ControllerRevision history saying whether they are up to date.
 */
import { afterEach, describe, expect, it } from "vitest";
import {
  ClusterInvalidError,
  MemoryCluster,
  type ClusterObject,
  type ObjectRef,
} from "../../../installer/cluster/index.js";

const clusters: MemoryCluster[] = [];
afterEach(() => {
  for (const cluster of clusters.splice(0)) cluster.close();
});

const NS = "hubble-system";
const manager = { fieldManager: "airlock", force: true };
const labels = { app: "msgbroker" };

async function newCluster(): Promise<MemoryCluster> {
  const cluster = new MemoryCluster({ podReadyMs: 0 });
  clusters.push(cluster);
  await cluster.apply({ apiVersion: "v1", kind: "Namespace", metadata: { name: NS } }, manager);
  return cluster;
}

function statefulSet(
  change: { image?: string; claims?: boolean; selector?: Record<string, string>; partition?: number } = {},
): ClusterObject {
  const selector = change.selector ?? labels;
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: { name: "msgbroker", namespace: NS },
    spec: {
      replicas: 2,
      serviceName: "msgbroker-headless",
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { partition: change.partition ?? 0 } },
      selector: { matchLabels: selector },
      template: {
        metadata: { labels: selector },
        spec: { containers: [{ name: "nats", image: change.image ?? "nats:1" }] },
      },
      ...(change.claims === true
        ? {
            volumeClaimTemplates: [
              {
                metadata: { name: "data" },
                spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } },
              },
            ],
          }
        : {}),
    },
  };
}

/** The error an apply rejects with. */
async function refusal(
  cluster: MemoryCluster,
  object: ClusterObject,
  dryRun = false,
): Promise<ClusterInvalidError> {
  const error = await cluster.apply(object, { ...manager, dryRun }).then(
    () => undefined,
    (failure: unknown) => failure,
  );
  expect(error).toBeInstanceOf(ClusterInvalidError);
  return error as ClusterInvalidError;
}

function ref(kind: string, name: string, apiVersion = "v1"): ObjectRef {
  return { apiVersion, kind, name, namespace: NS };
}

/** Polls the cluster (bounded) until `check` holds of it. */
async function eventually(check: () => Promise<boolean>): Promise<void> {
  for (let attempt = 0; attempt < 400; attempt++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  throw new Error("the condition did not hold within 2 s");
}

async function podsByName(cluster: MemoryCluster): Promise<Map<string, ClusterObject>> {
  const pods = await cluster.list("v1", "Pod", { namespace: NS });
  return new Map(pods.map((pod) => [pod.metadata.name, pod]));
}

const ready = (pod: ClusterObject | undefined): boolean =>
  ((pod?.status?.conditions ?? []) as { type: string; status: string }[]).some(
    (condition) => condition.type === "Ready" && condition.status === "True",
  );

describe("MemoryCluster refuses what kube-apiserver 1.32 refuses to change in place", () => {
  it("a StatefulSet's claim templates: 422 Invalid, spec Forbidden, in the API server's words; nothing stored, dry runs too", async () => {
    const cluster = await newCluster();
    const stored = await cluster.apply(statefulSet(), manager);
    for (const dryRun of [true, false]) {
      const error = await refusal(cluster, statefulSet({ claims: true }), dryRun);
      expect(error.code).toBe("CLUSTER_FIELD_IMMUTABLE");
      expect(error.message).toBe(
        `StatefulSet.apps "msgbroker" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden`,
      );
      expect(error.causes).toEqual([
        {
          reason: "FieldValueForbidden",
          field: "spec",
          message: expect.stringMatching(/^Forbidden: updates/) as unknown,
        },
      ]);
      expect(error.hint).toMatch(/deleted and created again/);
    }
    const after = await cluster.get(ref("StatefulSet", "msgbroker", "apps/v1"));
    expect(after?.spec).toEqual(stored.spec);
    expect(after?.metadata.generation).toBe(stored.metadata.generation);
  });

  it("a StatefulSet's selector is outside the list too; the listed fields change", async () => {
    const cluster = await newCluster();
    await cluster.apply(statefulSet(), manager);
    expect((await refusal(cluster, statefulSet({ selector: { app: "broker" } }))).message).toMatch(
      /^StatefulSet\.apps "msgbroker" is invalid: spec: Forbidden: updates to statefulset spec/,
    );
    const changed = await cluster.apply(statefulSet({ image: "nats:2", partition: 1 }), manager);
    expect(changed.metadata.generation).toBe(2);
  });

  it("a Deployment's selector: spec.selector field is immutable, the value as Go prints it", async () => {
    const cluster = await newCluster();
    const deployment = (app: string): ClusterObject => ({
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name: "console", namespace: NS },
      spec: {
        selector: { matchLabels: { app, tier: "web" } },
        template: { metadata: { labels: { app, tier: "web" } }, spec: { containers: [] } },
      },
    });
    await cluster.apply(deployment("console"), manager);
    const error = await refusal(cluster, deployment("ui"));
    expect(error.code).toBe("CLUSTER_FIELD_IMMUTABLE");
    expect(error.message).toBe(
      `Deployment.apps "console" is invalid: spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"ui", "tier":"web"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable`,
    );
  });

  it("a Service's cluster IP: headless to allocated, allocated to headless; leaving it out keeps it", async () => {
    const cluster = await newCluster();
    const service = (name: string, clusterIP?: string): ClusterObject => ({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: NS },
      spec: { selector: labels, ports: [{ port: 4222 }], ...(clusterIP === undefined ? {} : { clusterIP }) },
    });
    await cluster.apply(service("msgbroker-headless", "None"), manager);
    await cluster.apply(service("msgbroker"), manager);
    expect((await refusal(cluster, service("msgbroker-headless", "10.43.0.20"))).message).toBe(
      `Service "msgbroker-headless" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.43.0.20"}: may not change once set`,
    );
    expect((await refusal(cluster, service("msgbroker", "None"))).message).toBe(
      `Service "msgbroker" is invalid: spec.clusterIPs[0]: Invalid value: []string{"None"}: may not change once set`,
    );
    await cluster.apply(service("msgbroker-headless", "None"), manager);
    await cluster.apply(service("msgbroker"), manager);
  });

  it("a claim's spec but its storage request", async () => {
    const cluster = await newCluster();
    const claim = (storage: string, storageClassName?: string): ClusterObject => ({
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: { name: "data-msgbroker-0", namespace: NS },
      spec: {
        accessModes: ["ReadWriteOnce"],
        resources: { requests: { storage } },
        ...(storageClassName === undefined ? {} : { storageClassName }),
      },
    });
    await cluster.apply(claim("1Gi"), manager);
    await cluster.apply(claim("2Gi"), manager);
    const error = await refusal(cluster, claim("2Gi", "fast"));
    expect(error.code).toBe("CLUSTER_FIELD_IMMUTABLE");
    expect(error.message).toMatch(
      /^PersistentVolumeClaim "data-msgbroker-0" is invalid: spec: Forbidden: spec is immutable after creation except resources\.requests for bound claims\n {2}core\.PersistentVolumeClaimSpec\{\n/,
    );
    expect(error.message).toContain(`+\tstorageClassName: "fast",`);
  });

  it("an immutable Secret's data and flag, a Secret's type, an immutable ConfigMap's data", async () => {
    const cluster = await newCluster();
    const secret = (value: string, immutable: boolean, type = "Opaque"): ClusterObject => ({
      apiVersion: "v1",
      kind: "Secret",
      metadata: { name: "msgbroker-tls", namespace: NS },
      type,
      immutable,
      data: { key: Buffer.from(value).toString("base64") },
    });
    await cluster.apply(secret("a", true), manager);
    expect((await refusal(cluster, secret("b", true))).message).toBe(
      'Secret "msgbroker-tls" is invalid: data: Forbidden: field is immutable when `immutable` is set',
    );
    expect((await refusal(cluster, secret("b", false))).message).toBe(
      'Secret "msgbroker-tls" is invalid: [immutable: Forbidden: field is immutable when `immutable` is set, data: Forbidden: field is immutable when `immutable` is set]',
    );
    expect((await refusal(cluster, secret("a", true, "kubernetes.io/tls"))).message).toBe(
      'Secret "msgbroker-tls" is invalid: type: Invalid value: "kubernetes.io/tls": field is immutable',
    );
    const configMap = (value: string, immutable?: boolean): ClusterObject => ({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: "msgbroker-config", namespace: NS },
      ...(immutable === undefined ? {} : { immutable }),
      data: { "nats.conf": value },
    });
    await cluster.apply(configMap("a"), manager);
    await cluster.apply(configMap("b", true), manager);
    expect((await refusal(cluster, configMap("c", true))).message).toBe(
      'ConfigMap "msgbroker-config" is invalid: data: Forbidden: field is immutable when `immutable` is set',
    );
  });
});

describe("MemoryCluster orphans and adopts as the garbage collector and StatefulSet controller do", () => {
  it("an orphaning delete leaves the pods running; a new StatefulSet adopts them and rolls them only below its partition's reach", async () => {
    const cluster = await newCluster();
    await cluster.apply(statefulSet(), manager);
    await eventually(async () => [...(await podsByName(cluster)).values()].filter(ready).length === 2);
    const before = await podsByName(cluster);
    const oldRevision = before.get("msgbroker-0")!.metadata.labels!["controller-revision-hash"];

    expect(
      await cluster.delete(ref("StatefulSet", "msgbroker", "apps/v1"), { propagationPolicy: "Orphan" }),
    ).toBe(true);
    const orphans = await podsByName(cluster);
    for (const [name, pod] of orphans) {
      expect(pod.metadata.uid).toBe(before.get(name)!.metadata.uid);
      expect((pod.metadata as { ownerReferences?: unknown[] }).ownerReferences).toBeUndefined();
      expect(ready(pod)).toBe(true);
    }
    const revisions = await cluster.list("apps/v1", "ControllerRevision", { namespace: NS });
    expect(revisions.map((revision) => revision.metadata.name)).toEqual([oldRevision]);

    await cluster.apply(statefulSet({ claims: true, partition: 2 }), manager);
    await eventually(async () => {
      const sts = await cluster.get(ref("StatefulSet", "msgbroker", "apps/v1"));
      return (sts?.status?.replicas as number | undefined) === 2;
    });
    const adopted = await podsByName(cluster);
    const sts = await cluster.get(ref("StatefulSet", "msgbroker", "apps/v1"));
    for (const [name, pod] of adopted) {
      expect(pod.metadata.uid).toBe(before.get(name)!.metadata.uid);
      expect(
        (pod.metadata as { ownerReferences?: { uid: string; controller: boolean }[] }).ownerReferences,
      ).toEqual([
        expect.objectContaining({
          kind: "StatefulSet",
          name: "msgbroker",
          uid: sts!.metadata.uid,
          controller: true,
        }),
      ]);
    }
    // The template is the same, so the adopted revision is the update revision: nothing to roll.
    expect(sts!.status).toMatchObject({ updateRevision: oldRevision, updatedReplicas: 2, readyReplicas: 2 });
  });

  it("adopted pods of an older template are not updated; lowering the partition rolls them, one at a time, onto claims", async () => {
    const cluster = await newCluster();
    await cluster.apply(statefulSet(), manager);
    await eventually(async () => [...(await podsByName(cluster)).values()].filter(ready).length === 2);
    await cluster.delete(ref("StatefulSet", "msgbroker", "apps/v1"), { propagationPolicy: "Orphan" });
    await cluster.apply(statefulSet({ image: "nats:2", claims: true, partition: 2 }), manager);
    const stsRef = ref("StatefulSet", "msgbroker", "apps/v1");
    await eventually(async () => ((await cluster.get(stsRef))?.status?.replicas as number | undefined) === 2);
    const status = (await cluster.get(stsRef))!.status!;
    expect(status.updatedReplicas).toBe(0);
    const history = await cluster.list("apps/v1", "ControllerRevision", { namespace: NS });
    expect(history.map((revision) => revision.revision).sort()).toEqual([1, 2]);

    await cluster.apply(statefulSet({ image: "nats:2", claims: true, partition: 1 }), manager);
    await eventually(async () => {
      const pod = (await podsByName(cluster)).get("msgbroker-1");
      return pod?.metadata.labels?.["controller-revision-hash"] === status.updateRevision && ready(pod);
    });
    const pods = await podsByName(cluster);
    expect(pods.get("msgbroker-0")!.metadata.labels!["controller-revision-hash"]).not.toBe(
      status.updateRevision,
    );
    const volumes = (
      pods.get("msgbroker-1")!.spec as { volumes?: { persistentVolumeClaim?: { claimName: string } }[] }
    ).volumes;
    expect(volumes).toContainEqual({
      name: "data",
      persistentVolumeClaim: { claimName: "data-msgbroker-1" },
    });
    expect(await cluster.get(ref("PersistentVolumeClaim", "data-msgbroker-1"))).toBeDefined();
  });

  it("a background delete takes the pods and the revisions with it", async () => {
    const cluster = await newCluster();
    await cluster.apply(statefulSet(), manager);
    await eventually(async () => (await podsByName(cluster)).size === 2);
    await cluster.delete(ref("StatefulSet", "msgbroker", "apps/v1"));
    expect((await podsByName(cluster)).size).toBe(0);
    expect(await cluster.list("apps/v1", "ControllerRevision", { namespace: NS })).toEqual([]);
  });
});
