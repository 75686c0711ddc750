/**
 * Jobs on the containerd node (what a declared Job gate of issue 14, point 4 runs): the pod of a Job
 * runs the broker image for real and is not restarted once it has ended (restartPolicy Never);
 * exit 0 makes the pod Succeeded and the Job Complete, exit 1 makes it Failed, a new pod follows
 * until the backoff limit, then the Job is Failed with the container's log end as the termination
 * message. Deleting a Job stops and removes its pods.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ClusterObject, MemoryCluster } from "../../installer/cluster/index.js";
import { waitFor } from "../helpers/fixtures.js";
import { NAMESPACE, startNodeHarness, type NodeHarness } from "../helpers/node-cluster.js";

let harness: NodeHarness;
let cluster: MemoryCluster;

function job(name: string, args: string[], backoffLimit: number): ClusterObject {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace: NAMESPACE },
    spec: {
      backoffLimit,
      template: {
        spec: {
          restartPolicy: "Never",
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000 },
          containers: [{ name: "check", image: harness.image, args }],
        },
      },
    },
  };
}

/** The Job once it has a Complete or Failed condition. */
async function ended(name: string): Promise<ClusterObject> {
  let last: ClusterObject | undefined;
  await waitFor(
    async () => {
      last = await cluster.get({ apiVersion: "batch/v1", kind: "Job", name, namespace: NAMESPACE });
      return ((last?.status?.conditions as unknown[] | undefined) ?? []).length > 0;
    },
    60_000,
    `Job ${name} to end`,
  );
  return last!;
}

async function podsOf(name: string): Promise<ClusterObject[]> {
  return cluster.list("v1", "Pod", {
    namespace: NAMESPACE,
    labelSelector: `batch.kubernetes.io/job-name=${name}`,
  });
}

beforeAll(async () => {
  harness = await startNodeHarness();
  cluster = await harness.newCluster(await harness.newNode());
}, 120_000);

afterAll(async () => {
  await harness?.close();
}, 120_000);

describe("Jobs on the containerd node", () => {
  it("a Job whose container exits 0 is Complete; its pod Succeeded and not restarted", async () => {
    await cluster.apply(job("version", ["--version"], 0), { fieldManager: "test" });
    const done = await ended("version");
    expect(done.status).toMatchObject({
      succeeded: 1,
      failed: 0,
      active: 0,
      conditions: [{ type: "Complete", status: "True" }],
    });
    const [pod, ...others] = await podsOf("version");
    expect(others).toEqual([]);
    expect(pod!.status).toMatchObject({
      phase: "Succeeded",
      containerStatuses: [{ restartCount: 0, state: { terminated: { exitCode: 0, reason: "Completed" } } }],
    });
    await cluster.delete({ apiVersion: "batch/v1", kind: "Job", name: "version", namespace: NAMESPACE });
    await waitFor(async () => (await podsOf("version")).length === 0, 30_000, "the Job's pod to go");
  }, 120_000);

  it("a Job whose container exits 1 gets a new pod until its backoff limit, then is Failed with the log's end", async () => {
    await cluster.apply(job("bad-config", ["--config", "/nonexistent.conf"], 1), { fieldManager: "test" });
    const done = await ended("bad-config");
    expect(done.status).toMatchObject({
      succeeded: 0,
      failed: 2,
      active: 0,
      conditions: [{ type: "Failed", status: "True", reason: "BackoffLimitExceeded" }],
    });
    const pods = await podsOf("bad-config");
    expect(pods.map((pod) => pod.status?.phase)).toEqual(["Failed", "Failed"]);
    const terminated = (
      pods[0]!.status!.containerStatuses as { state: { terminated: { exitCode: number; message: string } } }[]
    )[0]!.state.terminated;
    expect(terminated.exitCode).toBe(1);
    expect(terminated.message).toMatch(/nonexistent\.conf/);
    await cluster.delete({ apiVersion: "batch/v1", kind: "Job", name: "bad-config", namespace: NAMESPACE });
    await waitFor(async () => (await podsOf("bad-config")).length === 0, 30_000, "the Job's pods to go");
  }, 120_000);
});
