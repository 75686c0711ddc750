/**
 * MemoryCluster's containerd node with real processes (issue 12): containerd of the test's own, runc,
 * and Airlock's registry over TLS serving the msgbroker image. A pod is pulled through the node's
 * registries.yaml, run as its spec says, made Ready by its probe on its own address, stopped and
 * recreated, and everything the node made is gone after close. Needs root, containerd, runc and ip:
 * missing, it fails.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  brokerSet,
  containerOf,
  hostState,
  isReady,
  NAMESPACE,
  podRef,
  podUntil,
  startNodeHarness,
  taskPid,
  type NodeHarness,
} from "../helpers/node-cluster.js";

let harness: NodeHarness;

beforeAll(async () => {
  harness = await startNodeHarness();
}, 120_000);

afterAll(async () => {
  await harness?.close();
}, 120_000);

const applied = { fieldManager: "test" };

describe("the containerd node", () => {
  it("pulls the broker through registries.yaml over TLS, runs it as the pod spec says, and its probe makes it Ready", async () => {
    const before = hostState(harness.root);
    const node = await harness.newNode();
    const cluster = await harness.newCluster(node);
    await cluster.apply(
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name: "settings", namespace: NAMESPACE },
        data: { mode: "plain", "extra.conf": "# extra\n" },
      },
      applied,
    );
    await cluster.apply(
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "token", namespace: NAMESPACE },
        data: { token: Buffer.from("s3cret").toString("base64") },
      },
      applied,
    );
    await cluster.apply(
      brokerSet({
        name: "basic",
        image: harness.image,
        pod: {
          volumes: [
            {
              name: "settings",
              configMap: {
                name: "settings",
                items: [{ key: "extra.conf", path: "conf/extra.conf", mode: 0o440 }],
              },
            },
            { name: "token", secret: { secretName: "token", defaultMode: 0o400 } },
            { name: "scratch", emptyDir: {} },
          ],
        },
        container: {
          env: [
            { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
            { name: "POD_IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
            { name: "MODE", valueFrom: { configMapKeyRef: { name: "settings", key: "mode" } } },
            { name: "TOKEN", valueFrom: { secretKeyRef: { name: "token", key: "token" } } },
            { name: "ADVERTISE", value: "$(POD_NAME).basic:6222" },
          ],
          volumeMounts: [
            { name: "settings", mountPath: "/etc/extra" },
            { name: "token", mountPath: "/var/run/token" },
            { name: "scratch", mountPath: "/scratch" },
          ],
        },
      }),
      applied,
    );
    const pod = await podUntil(cluster, "basic-0", isReady);
    const ip = pod.status?.podIP as string;
    expect(ip).toMatch(/^198\.1[89]\./);
    expect(containerOf(pod)).toMatchObject({ ready: true, restartCount: 0, state: { running: {} } });
    const sts = await cluster.get({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      name: "basic",
      namespace: NAMESPACE,
    });
    expect(sts?.status?.readyReplicas).toBe(1);
    const health = await fetch(`http://${ip}:8222/healthz`);
    expect(await health.json()).toEqual({ status: "ok" });

    // The process as runc started it: its user, capabilities, environment, files and read-only root.
    const pid = await taskPid(harness, node, "basic-0");
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(status).toMatch(/^CapEff:\s+0+$/m);
    const environ = (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0");
    expect(environ).toEqual(
      expect.arrayContaining([
        "POD_NAME=basic-0",
        `POD_IP=${ip}`,
        "MODE=plain",
        "TOKEN=s3cret",
        "ADVERTISE=basic-0.basic:6222",
      ]),
    );
    const rootView = `/proc/${pid}/root`;
    expect(await readFile(`${rootView}/etc/extra/conf/extra.conf`, "utf8")).toBe("# extra\n");
    expect((await stat(`${rootView}/etc/extra/conf/extra.conf`)).mode & 0o777).toBe(0o440);
    expect((await stat(`${rootView}/var/run/token/token`)).mode & 0o777).toBe(0o400);
    expect((await stat(`${rootView}/var/run/token/token`)).gid).toBe(1000);
    const mounts = await readFile(`/proc/${pid}/mountinfo`, "utf8");
    expect(mounts).toMatch(/^\S+ \S+ \S+ \S+ \/ ro[, ]/m);
    expect(mounts).toMatch(/ \/etc\/extra ro[, ]/);
    expect(mounts).toMatch(/ \/scratch rw[, ]/);
    expect(await readFile(`${rootView}/etc/hosts`, "utf8")).toMatch(
      new RegExp(`^${ip.replace(/\./g, "\\.")}\\s+basic-0\\.basic\\.plane\\.svc\\.cluster\\.local`, "m"),
    );

    // Deleted, the pod's container is stopped and removed before the controller brings a new one.
    await cluster.delete(podRef("basic-0"));
    await podUntil(cluster, "basic-0", (next) => next.metadata.uid !== pod.metadata.uid && isReady(next));

    cluster.close();
    await node.close();
    expect(await node.leftovers()).toEqual({
      containers: [],
      tasks: [],
      snapshots: [],
      images: [],
      leases: [],
      mounts: [],
      cgroups: [],
    });
    expect(hostState(harness.root)).toEqual(before);
    const namespaces = await harness.containerd.ctr("default", "namespaces", "ls", "-q");
    expect(namespaces.stdout.toString().split("\n")).not.toContain(node.prefix);
  }, 180_000);

  it("deleting a pod runs its preStop hook, then SIGTERM; its claim outlives it and the next pod of the name gets it", async () => {
    const node = await harness.newNode();
    const cluster = await harness.newCluster(node);
    const sts = brokerSet({
      name: "stateful",
      image: harness.image,
      container: {
        // The broker's own lame-duck signal, as a plane's preStop would send it to its PID 1.
        lifecycle: { preStop: { exec: { command: ["/usr/sbin/nats-server", "--signal", "ldm=1"] } } },
        volumeMounts: [{ name: "data", mountPath: "/data" }],
      },
    });
    (sts.spec as Record<string, unknown>).volumeClaimTemplates = [
      { metadata: { name: "data" }, spec: { accessModes: ["ReadWriteOnce"] } },
    ];
    await cluster.apply(sts, applied);
    const first = await podUntil(cluster, "stateful-0", isReady);
    const pid = await taskPid(harness, node, "stateful-0");
    await writeFile(`/proc/${pid}/root/data/marker`, "kept");
    const claimDir = await stat(`/proc/${pid}/root/data`);
    expect(claimDir.gid).toBe(1000);

    await cluster.delete(podRef("stateful-0"));
    const second = await podUntil(
      cluster,
      "stateful-0",
      (pod) => pod.metadata.uid !== first.metadata.uid && isReady(pod),
    );
    const log = await node.logs(NAMESPACE, "stateful-0", "broker");
    // The hook's signal put the broker in lame-duck mode before SIGTERM ended it.
    expect(log).toMatch(/Entering lame duck mode/);
    expect(log.indexOf("Entering lame duck mode")).toBeLessThan(log.lastIndexOf("Server Exiting"));
    const next = await taskPid(harness, node, "stateful-0");
    expect(await readFile(`/proc/${next}/root/data/marker`, "utf8")).toBe("kept");
    expect(second.status?.podIP).toBeDefined();
  }, 180_000);

  it("a preStop hook that does not return is cut at the grace period; SIGKILL ends a container SIGTERM does not", async () => {
    const node = await harness.newNode();
    const cluster = await harness.newCluster(node);
    const sts = brokerSet({
      name: "stubborn",
      image: harness.image,
      pod: { terminationGracePeriodSeconds: 3 },
      container: {
        // A second broker in the container: the hook never returns.
        lifecycle: { preStop: { exec: { command: ["/usr/sbin/nats-server", "-p", "4999", "-m", "0"] } } },
      },
    });
    await cluster.apply(sts, applied);
    const pod = await podUntil(cluster, "stubborn-0", isReady);
    // Stopped, the broker cannot act on SIGTERM (it stays pending); only SIGKILL ends it.
    process.kill(await taskPid(harness, node, "stubborn-0"), "SIGSTOP");
    const watching = new AbortController();
    const exits: number[] = [];
    void cluster.watch(
      podRef("stubborn-0"),
      (current) => {
        const code = current === undefined ? undefined : containerOf(current)?.state.terminated?.exitCode;
        if (code !== undefined && current?.metadata.uid === pod.metadata.uid) exits.push(code);
      },
      watching.signal,
    );
    const started = Date.now();
    await cluster.delete(podRef("stubborn-0"));
    await podUntil(cluster, "stubborn-0", (next) => next.metadata.uid !== pod.metadata.uid);
    const took = Date.now() - started;
    watching.abort();
    // 3 s of grace used up by the hook, then kubelet's 2 s minimum between SIGTERM and SIGKILL.
    expect(took).toBeGreaterThanOrEqual(5_000);
    expect(took).toBeLessThan(20_000);
    expect(exits).toEqual([137]);
  }, 120_000);
});
