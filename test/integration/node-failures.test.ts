/**
 * What the containerd node shows when a pod cannot run (issue 12, point 7 c–e), as kubelet would: a
 * registry whose CA registries.yaml lacks is ErrImagePull then ImagePullBackOff naming the TLS
 * failure; a container that exits 1 is CrashLoopBackOff with its exit code and restarts; a readiness
 * probe on a wrong port keeps the pod unready, and applyRelease's rollout wait names pod and probe.
 */
import { createServer, type Server, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyRelease } from "../../installer/cluster/index.js";
import { rejection } from "../helpers/errors.js";
import {
  brokerSet,
  containerOf,
  isReady,
  NAMESPACE,
  podUntil,
  SITE_REGISTRY,
  startNodeHarness,
  watchReasons,
  type NodeHarness,
} from "../helpers/node-cluster.js";

let harness: NodeHarness;
const watching = new AbortController();

beforeAll(async () => {
  harness = await startNodeHarness();
}, 120_000);

afterAll(async () => {
  watching.abort();
  await harness?.close();
}, 120_000);

const applied = { fieldManager: "test" };

describe("the containerd node's failing pods", () => {
  it("a registry whose CA is not in registries.yaml: ErrImagePull with containerd's TLS error, then ImagePullBackOff", async () => {
    const node = await harness.newNode({ withCa: false });
    const cluster = await harness.newCluster(node);
    const reasons = watchReasons(cluster, "untrusted-0", watching.signal);
    const started = Date.now();
    await cluster.apply(brokerSet({ name: "untrusted", image: harness.image }), applied);
    const failed = await podUntil(
      cluster,
      "untrusted-0",
      (pod) => containerOf(pod)?.state.waiting?.reason === "ErrImagePull",
    );
    // Bounded: the pull fails on the certificate, it does not hang.
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(containerOf(failed)?.state.waiting?.message).toMatch(
      /x509: certificate signed by unknown authority/,
    );
    expect(containerOf(failed)?.state.waiting?.message).toContain(harness.registry.host);
    const backOff = await podUntil(
      cluster,
      "untrusted-0",
      (pod) => containerOf(pod)?.state.waiting?.reason === "ImagePullBackOff",
    );
    expect(containerOf(backOff)?.state.waiting?.message).toMatch(
      /^Back-off pulling image ".*x509: certificate signed by unknown authority/,
    );
    // Retried after its back-off: ErrImagePull again.
    await podUntil(
      cluster,
      "untrusted-0",
      () => reasons.filter((reason) => reason === "ErrImagePull").length >= 2,
    );
    expect(reasons.slice(0, 4)).toEqual([
      "ContainerCreating",
      "ErrImagePull",
      "ImagePullBackOff",
      "ErrImagePull",
    ]);
    expect(isReady(backOff)).toBe(false);
  }, 120_000);

  it("a container that exits 1: CrashLoopBackOff with the exit code, restarted with a growing count", async () => {
    const node = await harness.newNode();
    const cluster = await harness.newCluster(node);
    await cluster.apply(
      brokerSet({ name: "crashing", image: harness.image, args: ["--config", "/etc/nats/missing.conf"] }),
      applied,
    );
    const crashed = await podUntil(
      cluster,
      "crashing-0",
      (pod) =>
        containerOf(pod)?.state.waiting?.reason === "CrashLoopBackOff" && containerOf(pod)!.restartCount >= 2,
    );
    const status = containerOf(crashed)!;
    expect(status.lastState.terminated).toMatchObject({ exitCode: 1, reason: "Error" });
    expect(status.lastState.terminated?.message).toMatch(/missing\.conf/);
    expect(status.state.waiting?.message).toMatch(
      /^back-off \d+s restarting failed container=broker pod=crashing-0: exit code 1$/,
    );
    expect(isReady(crashed)).toBe(false);
  }, 120_000);

  it("a readiness probe on a wrong port: never Ready, and the rollout wait names the pod and the probe failure", async () => {
    const node = await harness.newNode();
    const cluster = await harness.newCluster(node);
    const namespace = { apiVersion: "v1", kind: "Namespace", metadata: { name: NAMESPACE } };
    const sts = brokerSet({ name: "unready", image: harness.image, readinessPort: 8999 });
    const error = await rejection(
      applyRelease(cluster, [namespace, sts], { release: "probe-test", timeoutMs: 10_000 }),
    );
    expect(error.code).toBe("ROLLOUT_TIMEOUT");
    expect(error.message).toMatch(/StatefulSet plane\/unready did not roll out within 10 s: 0 of 1 ready/);
    expect(error.message).toMatch(
      /unready-0: containers with unready status: \[broker\]: Readiness probe failed: Get "http:\/\/198\.1[89]\.\d+\.\d+:8999\/healthz": connect: connection refused/,
    );
    const pod = await podUntil(
      cluster,
      "unready-0",
      (found) => containerOf(found)?.state.running !== undefined,
    );
    // It runs; only readiness fails, so it is not restarted.
    expect(containerOf(pod)).toMatchObject({ ready: false, restartCount: 0 });
    expect(isReady(pod)).toBe(false);
  }, 120_000);

  it("a liveness probe that fails past its threshold restarts the container, counted in restartCount", async () => {
    const node = await harness.newNode();
    const cluster = await harness.newCluster(node);
    await cluster.apply(
      brokerSet({
        name: "unhealthy",
        image: harness.image,
        pod: { terminationGracePeriodSeconds: 2 },
        container: {
          livenessProbe: { httpGet: { path: "/healthz", port: 8998 }, periodSeconds: 1, failureThreshold: 2 },
        },
      }),
      applied,
    );
    const restarted = await podUntil(
      cluster,
      "unhealthy-0",
      (pod) => (containerOf(pod)?.restartCount ?? 0) >= 1,
    );
    // The node ended it (SIGTERM, SIGKILL past the grace): recorded as the last termination, its
    // reason kubelet's for the status it ended with (nats-server exits 1 on SIGTERM, 137 when killed).
    const terminated = containerOf(restarted)?.lastState.terminated;
    expect(terminated?.finishedAt).toBeDefined();
    expect(terminated?.exitCode).toEqual(expect.any(Number));
    expect(terminated?.reason).toBe(terminated?.exitCode === 0 ? "Completed" : "Error");
  }, 120_000);

  it("a registry that accepts connections and never answers: the pull is cut at its bound, ErrImagePull", async () => {
    // A silent TLS peer on loopback: it takes the connection and sends nothing, not even a handshake.
    const held: Socket[] = [];
    const silent: Server = createServer((socket) => held.push(socket));
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const port = (silent.address() as { port: number }).port;
    try {
      const node = await harness.newNode({
        registriesYaml: `mirrors:\n  "${SITE_REGISTRY}":\n    endpoint: ["https://127.0.0.1:${port}"]\n`,
        pullTimeoutMs: 3_000,
      });
      const cluster = await harness.newCluster(node);
      const started = Date.now();
      await cluster.apply(brokerSet({ name: "silent", image: harness.image }), applied);
      const pod = await podUntil(
        cluster,
        "silent-0",
        (found) => containerOf(found)?.state.waiting?.reason === "ErrImagePull",
      );
      expect(Date.now() - started).toBeLessThan(20_000);
      expect(containerOf(pod)?.state.waiting?.message).toMatch(
        /deadline exceeded|did not finish within|timeout/i,
      );
    } finally {
      for (const socket of held) socket.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  }, 120_000);
});
