import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { diffReleases, type ObjectDiff } from "../../../installer/upgrade/index.js";
import {
  BROKER_PEER_SECRET,
  BROKER_SERVER_SECRET,
  render,
  type RenderInputs,
  type ValuesInput,
} from "../../../manifests/index.js";
import { AirlockError } from "../../../registry/oci/index.js";
import { BUNDLE_IMAGES, RELEASE, issueBroker } from "../manifests/plane-fixtures.js";

let dir: string;
let inputs: RenderInputs;
let rotated: RenderInputs;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-upgrade-diff-"));
  const first = await issueBroker(join(dir, "a"), { replicas: 3 });
  const second = await issueBroker(join(dir, "b"), { replicas: 3 });
  inputs = { release: RELEASE, version: "4.4.0", certificates: first.pems };
  // The same CA and certificates, the peer key re-issued: only one Secret's values change.
  rotated = { ...inputs, certificates: { ...first.pems, peerKey: second.pems.peerKey } };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function plane(values: ValuesInput = {}, renderInputs: RenderInputs = inputs): Record<string, unknown>[] {
  return render(values, BUNDLE_IMAGES, renderInputs) as unknown as Record<string, unknown>[];
}

function byKind(diffs: ObjectDiff[], kind: string, name?: string): ObjectDiff {
  const found = diffs.find(
    (diff) => diff.ref.kind === kind && (name === undefined || diff.ref.name === name),
  );
  if (found === undefined) throw new Error(`no ${kind} in the diff`);
  return found;
}

function summary(diffs: ObjectDiff[]): string[] {
  return diffs.map((diff) => `${diff.ref.kind}/${diff.ref.name} ${diff.change} ${diff.disruption.kind}`);
}

const TWO = { msgbroker: { replicas: 2 } };

describe("diffReleases on real renders", () => {
  it("finds nothing to do between equal renders, whatever the server added", () => {
    const current = plane(TWO).map((object) => ({
      ...object,
      metadata: {
        ...(object.metadata as object),
        uid: "0b5a…",
        resourceVersion: "4711",
        generation: 3,
        creationTimestamp: "2026-12-01T00:00:00Z",
        managedFields: [{ manager: "airlock" }],
        annotations: { "kubectl.kubernetes.io/last-applied-configuration": "{}" },
      },
      status: { observedGeneration: 3 },
    }));
    const diffs = diffReleases(current, plane(TWO));
    expect(diffs).toHaveLength(9);
    expect(diffs.every((diff) => diff.change === "unchanged" && diff.disruption.kind === "none")).toBe(true);
  });

  it("rolls the brokers for a new version, and changes only labels elsewhere", () => {
    const diffs = diffReleases(plane(TWO), plane(TWO, { ...inputs, version: "4.5.0" }));
    const workload = byKind(diffs, "StatefulSet");
    expect(workload.disruption).toEqual({ kind: "rolling-restart", pods: 2 });
    expect(workload.fields.map((field) => field.path)).toContain("spec.template.spec.containers[0].image");
    expect(workload.fields).toContainEqual({
      path: 'metadata.labels["app.kubernetes.io/version"]',
      change: "changed",
      current: "4.4.0",
      incoming: "4.5.0",
    });
    for (const kind of ["Namespace", "NetworkPolicy", "ConfigMap", "Service", "PodDisruptionBudget"]) {
      const diff = byKind(diffs, kind);
      expect(diff.change).toBe("changed");
      expect(diff.disruption).toEqual({ kind: "none" });
      expect(diff.fields.map((field) => field.path)).toEqual([
        'metadata.labels["app.kubernetes.io/version"]',
      ]);
    }
  });

  it("scales 2 → 3 with a rolling restart of the 2 existing pods: the routes in the config change", () => {
    const diffs = diffReleases(plane(TWO), plane({ msgbroker: { replicas: 3 } }));
    const workload = byKind(diffs, "StatefulSet");
    expect(workload.disruption).toEqual({ kind: "rolling-restart", pods: 2, scale: { from: 2, to: 3 } });
    expect(workload.fields.map((field) => field.path)).toEqual([
      "spec.replicas",
      'spec.template.metadata.annotations["airlock.dev/config-digest"]',
    ]);
    const config = byKind(diffs, "ConfigMap");
    expect(config.disruption).toEqual({ kind: "config-only" });
    expect(config.fields.map((field) => field.path)).toEqual(['data["nats.conf"]']);
    expect(config.notes).toEqual([
      "StatefulSet hubble-system/msgbroker reads it and restarts its pods in this upgrade, which then load it",
    ]);
  });

  it("calls a change of replicas alone a scale, not a restart", () => {
    const current = plane(TWO);
    const incoming = structuredClone(current);
    const workload = incoming.find((object) => object.kind === "StatefulSet") as {
      spec: { replicas: number };
    };
    workload.spec.replicas = 3;
    const diff = byKind(diffReleases(current, incoming), "StatefulSet");
    expect(diff.fields).toEqual([{ path: "spec.replicas", change: "changed", current: 2, incoming: 3 }]);
    expect(diff.disruption).toEqual({ kind: "scale", from: 2, to: 3 });
  });

  it("counts only the pods a partition lets the rollout reach", () => {
    const diffs = diffReleases(
      plane({ msgbroker: { replicas: 3, partition: 1 } }),
      plane({ msgbroker: { replicas: 3, partition: 1 } }, { ...inputs, version: "4.5.0" }),
    );
    expect(byKind(diffs, "StatefulSet").disruption).toEqual({ kind: "rolling-restart", pods: 2 });
  });

  it("recreates the StatefulSet when persistence turns on: its claim templates cannot change", () => {
    const diffs = diffReleases(
      plane(TWO),
      plane({ msgbroker: { replicas: 2, persistence: { enabled: true } } }),
    );
    const workload = byKind(diffs, "StatefulSet");
    expect(workload.disruption).toMatchObject({ kind: "recreate", fields: ["spec.volumeClaimTemplates"] });
    expect(workload.disruption.kind === "recreate" && workload.disruption.reason).toContain(
      "refuses to change spec.volumeClaimTemplates of a StatefulSet in place",
    );
    expect(workload.fields.find((field) => field.path === "spec.volumeClaimTemplates")?.change).toBe("added");
  });

  it("shows a Secret's changed keys redacted, and never a value", () => {
    const current = plane(TWO);
    const incoming = plane(TWO, rotated);
    const diffs = diffReleases(current, incoming);
    const peer = byKind(diffs, "Secret", BROKER_PEER_SECRET);
    expect(peer.change).toBe("changed");
    expect(peer.disruption).toEqual({ kind: "config-only" });
    const redacted = { "ca.crt": "<unchanged>", "tls.crt": "<unchanged>", "tls.key": "<changed>" };
    expect(peer.fields).toEqual([{ path: "data", change: "changed", current: redacted, incoming: redacted }]);
    expect(byKind(diffs, "Secret", BROKER_SERVER_SECRET).change).toBe("unchanged");
    // The config digest covers the certificates, not the keys: a key alone restarts no pod.
    expect(byKind(diffs, "StatefulSet").change).toBe("unchanged");
    expect(peer.notes[0]).toContain("no pod restarts");
    const shown = JSON.stringify(diffs);
    const secretValues = [...current, ...incoming]
      .filter((object) => object.kind === "Secret")
      .flatMap((object) => Object.values(object.data as Record<string, string>));
    for (const value of secretValues) expect(shown).not.toContain(value);
    expect(shown).not.toContain(Buffer.from(rotated.certificates.peerKey).toString("base64").slice(0, 40));
  });

  it("lists added and removed objects, incoming order first", () => {
    const current = plane(TWO);
    const incoming = current.filter((object) => object.kind !== "PodDisruptionBudget");
    incoming.push({
      apiVersion: "v1",
      kind: "ServiceAccount",
      metadata: { name: "console", namespace: "hubble-system" },
    });
    expect(summary(diffReleases(current, incoming)).slice(-2)).toEqual([
      "ServiceAccount/console added create",
      "PodDisruptionBudget/msgbroker removed delete",
    ]);
  });
});

describe("diffReleases: changes the API server refuses in place", () => {
  const meta = { name: "x", namespace: "hubble-system" };

  function disruptionOf(
    current: Record<string, unknown>,
    incoming: Record<string, unknown>,
  ): ObjectDiff["disruption"] {
    const [diff] = diffReleases([current], [incoming]);
    return diff?.disruption ?? { kind: "none" };
  }

  it("a StatefulSet's selector or serviceName, not its replicas, strategy or minReadySeconds", () => {
    const workload = {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: meta,
      spec: { replicas: 1, serviceName: "a", selector: { matchLabels: { app: "a" } }, minReadySeconds: 0 },
    };
    expect(
      disruptionOf(workload, { ...workload, spec: { ...workload.spec, serviceName: "b" } }),
    ).toMatchObject({
      kind: "recreate",
      fields: ["spec.serviceName"],
    });
    expect(
      disruptionOf(workload, {
        ...workload,
        spec: { ...workload.spec, selector: { matchLabels: { app: "b" } } },
      }),
    ).toMatchObject({ kind: "recreate", fields: ["spec.selector.matchLabels.app"] });
    expect(
      disruptionOf(workload, {
        ...workload,
        spec: {
          ...workload.spec,
          minReadySeconds: 5,
          updateStrategy: { type: "OnDelete" },
          ordinals: { start: 1 },
        },
      }),
    ).toEqual({ kind: "none" });
  });

  it("a Deployment's selector", () => {
    const deployment = {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: meta,
      spec: { selector: { matchLabels: { a: "1" } } },
    };
    expect(
      disruptionOf(deployment, { ...deployment, spec: { selector: { matchLabels: { a: "2" } } } }),
    ).toMatchObject({
      kind: "recreate",
    });
  });

  it("a Service's clusterIP", () => {
    const service = {
      apiVersion: "v1",
      kind: "Service",
      metadata: meta,
      spec: { clusterIP: "None", ports: [] },
    };
    expect(disruptionOf(service, { ...service, spec: { clusterIP: "10.43.0.10", ports: [] } })).toMatchObject(
      {
        kind: "recreate",
        fields: ["spec.clusterIP"],
      },
    );
    expect(disruptionOf(service, { ...service, spec: { clusterIP: "None", ports: [{ port: 1 }] } })).toEqual({
      kind: "config-only",
    });
  });

  it("a PersistentVolumeClaim's spec other than its resources", () => {
    const claim = {
      apiVersion: "v1",
      kind: "PersistentVolumeClaim",
      metadata: meta,
      spec: { storageClassName: "local-path", resources: { requests: { storage: "1Gi" } } },
    };
    expect(
      disruptionOf(claim, { ...claim, spec: { ...claim.spec, storageClassName: "fast" } }),
    ).toMatchObject({
      kind: "recreate",
      fields: ["spec.storageClassName"],
    });
    expect(
      disruptionOf(claim, { ...claim, spec: { ...claim.spec, resources: { requests: { storage: "2Gi" } } } }),
    ).toEqual({ kind: "config-only" });
  });

  it("the data of an immutable ConfigMap or Secret, and only of an immutable one", () => {
    const config = { apiVersion: "v1", kind: "ConfigMap", metadata: meta, immutable: true, data: { a: "1" } };
    expect(disruptionOf(config, { ...config, data: { a: "2" } })).toMatchObject({
      kind: "recreate",
      fields: ["data.a"],
    });
    expect(
      disruptionOf({ ...config, immutable: false }, { ...config, immutable: false, data: { a: "2" } }),
    ).toEqual({
      kind: "config-only",
    });
    const secret = { apiVersion: "v1", kind: "Secret", metadata: meta, immutable: true, data: { a: "MQ==" } };
    expect(disruptionOf(secret, { ...secret, data: { a: "Mg==" } })).toMatchObject({
      kind: "recreate",
      fields: ["data"],
    });
  });

  it("refuses what is not a Kubernetes object, naming which", () => {
    let refused: unknown;
    try {
      diffReleases([{ kind: "Service" }], []);
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(AirlockError);
    expect((refused as AirlockError).code).toBe("PLAN_OBJECT_INVALID");
    expect((refused as AirlockError).where).toBe("current objects[0]");
  });
});
