/**
 * The in-memory cluster behind a kube-apiserver's REST surface, driven by the real client
 * (@kubernetes/client-node through KubeClusterClient, from a kubeconfig): what a customer-side
 * command does with `--kubeconfig` runs unchanged against the cluster the tests and demo use.
 */
import { execFileSync } from "node:child_process";
import { request as httpsRequest } from "node:https";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  KubeClusterClient,
  MemoryCluster,
  applyRelease,
  clusterApiKubeconfig,
  serveClusterApi,
  type ClusterObject,
  type RunningClusterApiServer,
} from "../../installer/cluster/index.js";
import { HostRoot } from "../../installer/host/index.js";
import { K3S_KUBECONFIG, waitForK3sServer } from "../../installer/k3s/index.js";
import { render } from "../../manifests/index.js";
import { BUNDLE_IMAGES, RELEASE, VERSION, issueBroker } from "../unit/manifests/plane-fixtures.js";
import { rejection } from "../helpers/errors.js";

const TOKEN = "memory-api-token";
let dir: string;
let cluster: MemoryCluster;
let server: RunningClusterApiServer;
let client: KubeClusterClient;
let kubeconfig: string;
let caPem: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-apiserver-"));
  const [key, cert] = [join(dir, "server.key"), join(dir, "server.crt")];
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"],
      ...["-days", "1", "-subj", "/CN=kube-apiserver", "-addext", "subjectAltName=IP:127.0.0.1"],
      ...["-keyout", key, "-out", cert],
    ],
    { stdio: "ignore" },
  );
  caPem = await readFile(cert, "utf8");
  cluster = new MemoryCluster();
  server = await serveClusterApi(cluster, {
    tls: { cert: caPem, key: await readFile(key, "utf8") },
    token: TOKEN,
  });
  kubeconfig = join(dir, "kubeconfig");
  await writeFile(kubeconfig, clusterApiKubeconfig(server.url, caPem, TOKEN));
  client = KubeClusterClient.fromKubeconfig(kubeconfig, { requestTimeoutMs: 10_000 });
});

afterAll(async () => {
  await server.close();
  cluster.close();
  await rm(dir, { recursive: true, force: true });
});

const namespace: ClusterObject = { apiVersion: "v1", kind: "Namespace", metadata: { name: "facade" } };
const configMap = (value: string): ClusterObject => ({
  apiVersion: "v1",
  kind: "ConfigMap",
  metadata: { name: "settings", namespace: "facade", labels: { tier: "a" } },
  data: { value },
});

describe("the in-memory cluster behind an API server", () => {
  it("serves server-side apply, get, label-selected list and delete to the real client", async () => {
    await client.apply(namespace, { fieldManager: "airlock" });
    const stored = await client.apply(configMap("1"), { fieldManager: "airlock" });
    expect(stored.metadata.resourceVersion).toBeDefined();
    expect(
      (await client.get({ apiVersion: "v1", kind: "ConfigMap", name: "settings", namespace: "facade" }))
        ?.data,
    ).toEqual({
      value: "1",
    });
    expect(cluster.requests).toContain("apply ConfigMap facade/settings");
    const listed = await client.list("v1", "ConfigMap", { namespace: "facade", labelSelector: "tier=a" });
    expect(listed.map((item) => item.metadata.name)).toEqual(["settings"]);
    expect(await client.list("v1", "ConfigMap", { namespace: "facade", labelSelector: "tier=b" })).toEqual(
      [],
    );
    expect(
      await client.delete({ apiVersion: "v1", kind: "ConfigMap", name: "settings", namespace: "facade" }),
    ).toBe(true);
    expect(
      await client.get({ apiVersion: "v1", kind: "ConfigMap", name: "settings", namespace: "facade" }),
    ).toBeUndefined();
    expect(
      await client.delete({ apiVersion: "v1", kind: "ConfigMap", name: "settings", namespace: "facade" }),
    ).toBe(false);
  });

  it("answers the cluster's refusals with the API server's statuses, which the client maps back to the same codes", async () => {
    await client.apply(namespace, { fieldManager: "airlock" });
    await client.apply(configMap("1"), { fieldManager: "airlock" });
    expect((await rejection(client.apply(configMap("2"), { fieldManager: "someone-else" }))).code).toBe(
      "CLUSTER_CONFLICT",
    );
    const forced = await client.apply(configMap("2"), { fieldManager: "someone-else", force: true });
    expect(forced.data).toEqual({ value: "2" });
    const orphan = { ...configMap("3"), metadata: { name: "orphan", namespace: "nowhere" } };
    expect((await rejection(client.apply(orphan, { fieldManager: "airlock" }))).code).toBe(
      "CLUSTER_NOT_FOUND",
    );
  });

  it("answers a change the server refuses in place as kube-apiserver does: 422 Invalid with its causes, CLUSTER_FIELD_IMMUTABLE through the real client", async () => {
    await client.apply(namespace, { fieldManager: "airlock" });
    const immutableMap = (value: string): ClusterObject => ({
      ...configMap(value),
      metadata: { name: "frozen", namespace: "facade" },
      immutable: true,
    });
    await client.apply(immutableMap("1"), { fieldManager: "airlock" });
    const message =
      'ConfigMap "frozen" is invalid: data: Forbidden: field is immutable when `immutable` is set';
    const refused = await rejection(
      client.apply(immutableMap("2"), { fieldManager: "airlock", force: true }),
    );
    expect(refused.code).toBe("CLUSTER_FIELD_IMMUTABLE");
    expect(refused.message).toBe(`ConfigMap facade/frozen: ${message}`);
    expect(refused.hint).toMatch(/deleted and created again/);
    // What is on the wire, read with plain HTTPS as any client would.
    const response = await fetchWithCa(
      `${server.url}/api/v1/namespaces/facade/configmaps/frozen?fieldManager=airlock&force=true`,
      {
        method: "PATCH",
        body: JSON.stringify(immutableMap("2")),
        contentType: "application/apply-patch+yaml",
      },
    );
    expect(response.status).toBe(422);
    expect(response.body).toEqual({
      kind: "Status",
      apiVersion: "v1",
      metadata: {},
      status: "Failure",
      message,
      reason: "Invalid",
      details: {
        name: "frozen",
        group: "",
        kind: "ConfigMap",
        causes: [
          {
            reason: "FieldValueForbidden",
            message: "Forbidden: field is immutable when `immutable` is set",
            field: "data",
          },
        ],
      },
      code: 422,
    });
  });

  it("passes a delete's propagationPolicy: an orphaning delete of a StatefulSet leaves its pods", async () => {
    await client.apply(namespace, { fieldManager: "airlock" });
    const labels = { app: "orphaned" };
    const sts: ClusterObject = {
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: { name: "orphaned", namespace: "facade" },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: "c", image: "nats:1" }] } },
      },
    };
    await client.apply(sts, { fieldManager: "airlock" });
    const pod = { apiVersion: "v1", kind: "Pod", name: "orphaned-0", namespace: "facade" };
    for (let attempt = 0; (await client.get(pod)) === undefined; attempt++) {
      if (attempt > 200) throw new Error("the StatefulSet made no pod");
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(
      await client.delete(
        { apiVersion: "apps/v1", kind: "StatefulSet", name: "orphaned", namespace: "facade" },
        { propagationPolicy: "Orphan" },
      ),
    ).toBe(true);
    const left = await client.get(pod);
    expect(left?.metadata.uid).toBeDefined();
    expect((left?.metadata as { ownerReferences?: unknown } | undefined)?.ownerReferences).toBeUndefined();
  });

  it("refuses a request without the kubeconfig's token", async () => {
    const wrong = join(dir, "wrong-token");
    await writeFile(wrong, clusterApiKubeconfig(server.url, caPem, "not-the-token"));
    expect(
      (
        await rejection(
          KubeClusterClient.fromKubeconfig(wrong).get({
            apiVersion: "v1",
            kind: "Namespace",
            name: "facade",
          }),
        )
      ).code,
    ).toBe("CLUSTER_UNAUTHORIZED");
  });

  it("runs applyRelease of the rendered plane through the real client: the rollout wait watches the StatefulSet", async () => {
    const certificates = (await issueBroker(dir, { replicas: 2 })).pems;
    const objects = render({}, BUNDLE_IMAGES, { release: RELEASE, version: VERSION, certificates });
    const result = await applyRelease(client, objects as unknown as ClusterObject[], {
      release: RELEASE,
      timeoutMs: 30_000,
    });
    expect(result.applied.length).toBe(objects.length);
    const broker = await client.get({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      name: "msgbroker",
      namespace: "hubble-system",
    });
    expect(broker?.status?.readyReplicas).toBe(2);
    const pods = await client.list("v1", "Pod", { namespace: "hubble-system" });
    expect(pods.map((pod) => pod.metadata.name).sort()).toEqual(["msgbroker-0", "msgbroker-1"]);
    const again = await applyRelease(client, objects as unknown as ClusterObject[], {
      release: RELEASE,
      timeoutMs: 30_000,
    });
    expect(again.applied.every((object) => object.action === "unchanged")).toBe(true);
  });

  it("serves the Node a kubelet registers, so waitForK3sServer returns through the facade's kubeconfig", async () => {
    const node = await client.get({ apiVersion: "v1", kind: "Node", name: "airlock-node" });
    expect(node?.status?.conditions).toEqual([expect.objectContaining({ type: "Ready", status: "True" })]);
    const hostRoot = new HostRoot(await mkdtemp(join(dir, "host-")));
    await hostRoot.writeFile(K3S_KUBECONFIG, await readFile(kubeconfig, "utf8"), 0o600);
    const connected: string[] = [];
    const path = await waitForK3sServer({
      host: hostRoot,
      nodeName: "airlock-node",
      timeoutMs: 10_000,
      connect: (file) => {
        connected.push(file);
        return KubeClusterClient.fromKubeconfig(file, { requestTimeoutMs: 5_000 });
      },
    });
    expect(path).toBe(hostRoot.path(K3S_KUBECONFIG));
    expect(connected).toEqual([path]);
    const waiting = await rejection(waitForK3sServer({ host: hostRoot, nodeName: "server-1", timeoutMs: 0 }));
    expect(waiting.message).toContain("node server-1 to register");
  });
});

/** One HTTPS request trusting the facade's CA: the status and the JSON body. */
function fetchWithCa(
  url: string,
  options: { method: string; body: string; contentType: string },
): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      url,
      {
        method: options.method,
        ca: caPem,
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": options.contentType },
        timeout: 10_000,
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as unknown }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 10 s")));
    req.on("error", reject);
    req.end(options.body);
  });
}
