/**
 * The apply engine on the rendered management plane, against the in-memory cluster: order, labels,
 * rollout, idempotent re-runs, upgrades, pruning, and the errors an operator sees.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  MemoryCluster,
  applyRelease,
  rolledOut,
  type ClusterObject,
} from "../../../installer/cluster/index.js";
import { RELEASE_LABEL, render, type RenderInputs, type ValuesInput } from "../../../manifests/index.js";
import { BUNDLE_IMAGES, RELEASE, VERSION, issueBroker } from "../manifests/plane-fixtures.js";

let dir: string;
let inputs: RenderInputs;
const clusters: MemoryCluster[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-apply-"));
  inputs = {
    release: RELEASE,
    version: VERSION,
    certificates: (await issueBroker(dir, { replicas: 2 })).pems,
  };
});
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(() => {
  for (const cluster of clusters.splice(0)) cluster.close();
});

function newCluster(): MemoryCluster {
  const cluster = new MemoryCluster();
  clusters.push(cluster);
  return cluster;
}

function plane(values: ValuesInput = {}): ClusterObject[] {
  return render(values, BUNDLE_IMAGES, inputs) as unknown as ClusterObject[];
}

const brokerRef = {
  apiVersion: "apps/v1",
  kind: "StatefulSet",
  name: "msgbroker",
  namespace: "hubble-system",
};

async function podUids(cluster: MemoryCluster): Promise<string[]> {
  const pods = await cluster.list("v1", "Pod", { namespace: "hubble-system" });
  return pods.map((pod) => pod.metadata.uid!);
}

describe("applyRelease", () => {
  it("applies the plane in dependency order, labelled as the release's, and returns once the broker is ready", async () => {
    const cluster = newCluster();
    const result = await applyRelease(cluster, plane(), { release: RELEASE });
    const applies = cluster.requests
      .filter((request) => request.startsWith("apply "))
      .map((r) => r.split(" ")[1]);
    expect(applies).toEqual([
      "Namespace",
      "NetworkPolicy",
      "Secret",
      "Secret",
      "ConfigMap",
      "Service",
      "Service",
      "StatefulSet",
      "PodDisruptionBudget",
    ]);
    expect(result.applied.map((object) => object.action)).toEqual(Array(9).fill("created"));
    const broker = await cluster.get(brokerRef);
    expect(broker !== undefined && rolledOut(broker)).toBe(true);
    expect(broker?.status).toMatchObject({ readyReplicas: 2, updatedReplicas: 2 });
    for (const { ref } of result.applied) {
      expect((await cluster.get(ref))?.metadata.labels).toMatchObject({
        "app.kubernetes.io/managed-by": "airlock",
        [RELEASE_LABEL]: RELEASE,
      });
    }
  });

  it("a re-run changes nothing: every object unchanged, no pod restarted, nothing pruned", async () => {
    const cluster = newCluster();
    await applyRelease(cluster, plane(), { release: RELEASE });
    const before = await podUids(cluster);
    const again = await applyRelease(cluster, plane(), { release: RELEASE });
    expect(again.applied.map((object) => object.action)).toEqual(Array(9).fill("unchanged"));
    expect(again.pruned).toEqual([]);
    expect(await podUids(cluster)).toEqual(before);
  });

  it("an upgrade reconfigures what changed and rolls every broker pod to the new template", async () => {
    const cluster = newCluster();
    await applyRelease(cluster, plane(), { release: RELEASE });
    const before = await podUids(cluster);
    const upgraded = await applyRelease(cluster, plane({ msgbroker: { jetstream: { enabled: true } } }), {
      release: RELEASE,
    });
    const actions = Object.fromEntries(
      upgraded.applied.map(({ ref, action }) => [`${ref.kind}/${ref.name}`, action]),
    );
    expect(actions["ConfigMap/msgbroker-config"]).toBe("configured");
    expect(actions["StatefulSet/msgbroker"]).toBe("configured");
    expect(actions["Namespace/hubble-system"]).toBe("unchanged");
    const after = await podUids(cluster);
    expect(after).toHaveLength(2);
    expect(after.filter((uid) => before.includes(uid))).toEqual([]);
    expect(rolledOut((await cluster.get(brokerRef))!)).toBe(true);
  });

  it("takes back a field someone changed by hand under another field manager", async () => {
    const cluster = newCluster();
    await applyRelease(cluster, plane(), { release: RELEASE });
    const scaledByHand: ClusterObject = {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name: "msgbroker", namespace: "hubble-system" },
      spec: { replicas: 5 },
    };
    await cluster.apply(scaledByHand, { fieldManager: "kubectl", force: true });
    const replicas = async (): Promise<unknown> =>
      ((await cluster.get(brokerRef))?.spec as { replicas: number }).replicas;
    expect(await replicas()).toBe(5);
    const result = await applyRelease(cluster, plane(), { release: RELEASE });
    expect(result.applied.find(({ ref }) => ref.kind === "StatefulSet")?.action).toBe("configured");
    expect(await replicas()).toBe(2);
    expect(await podUids(cluster)).toHaveLength(2);
  });

  it("prunes the release's objects the new set dropped, and leaves another release's alone", async () => {
    const cluster = newCluster();
    const extra = (name: string): ClusterObject => ({
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name, namespace: "hubble-system" },
      data: { note: name },
    });
    await applyRelease(cluster, [...plane(), extra("left-behind")], { release: RELEASE });
    await applyRelease(cluster, [plane()[0]!, extra("other-release")], { release: "other" });
    const result = await applyRelease(cluster, plane(), { release: RELEASE });
    expect(result.pruned).toEqual([
      { apiVersion: "v1", kind: "ConfigMap", name: "left-behind", namespace: "hubble-system" },
    ]);
    const names = (await cluster.list("v1", "ConfigMap", { namespace: "hubble-system" })).map(
      (c) => c.metadata.name,
    );
    expect(names.sort()).toEqual(["msgbroker-config", "other-release"]);
  });

  it("an image the pods cannot pull is ROLLOUT_TIMEOUT naming the pods' reason", async () => {
    const cluster = newCluster();
    cluster.failImage("hubble/msgbroker");
    const failure = await applyRelease(cluster, plane(), { release: RELEASE, timeoutMs: 300 }).catch(
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({
      code: "ROLLOUT_TIMEOUT",
      where: "StatefulSet hubble-system/msgbroker",
      message: expect.stringMatching(/0 of 2 ready.*msgbroker-0\/msgbroker: ImagePullBackOff/) as unknown,
    });
  });

  it("an API error names the object; an abort stops it with the signal's reason", async () => {
    const cluster = newCluster();
    cluster.failNext("apply", "StatefulSet", 403, 'statefulsets.apps is forbidden: User "ops" cannot patch');
    await expect(applyRelease(cluster, plane(), { release: RELEASE })).rejects.toMatchObject({
      code: "CLUSTER_FORBIDDEN",
      where: "StatefulSet hubble-system/msgbroker",
    });
    const stopping = new AbortController();
    const running = applyRelease(cluster, plane(), {
      release: RELEASE,
      signal: stopping.signal,
      onProgress: (progress) => {
        if (progress.phase === "rollout") stopping.abort(new Error("operator pressed Ctrl-C"));
      },
    });
    await expect(running).rejects.toThrow("operator pressed Ctrl-C");
  });
});
