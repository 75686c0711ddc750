/**
 * The real cluster client (@kubernetes/client-node) is checked for the requests it sends a
 * kube-apiserver: verb, path, query, content type, body, credentials. The server here only records
 * them and answers with the minimum that lets the client go on (discovery lists, an echo, a Status);
 * it imitates no API-server behaviour, so nothing asserted here rests on an imitation. It serves TLS
 * with a certificate the kubeconfig's certificate-authority-data names, as a real API server does.
 */
import { execFileSync } from "node:child_process";
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { KubeClusterClient, type ClusterObject } from "../../installer/cluster/index.js";

interface Recorded {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  authorization: string | undefined;
  body: string;
}

const DISCOVERY: Record<string, { name: string; kind: string; namespaced: boolean }[]> = {
  "/api/v1": [
    { name: "namespaces", kind: "Namespace", namespaced: false },
    { name: "configmaps", kind: "ConfigMap", namespaced: true },
    { name: "secrets", kind: "Secret", namespaced: true },
  ],
  "/apis/apps/v1": [{ name: "statefulsets", kind: "StatefulSet", namespaced: true }],
};

let server: Server;
let dir: string;
let kubeconfig: string;
let requests: Recorded[];
/** What the next non-discovery request is answered with; the default echoes the body back. */
let answer: (req: Recorded, res: ServerResponse) => void;

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { "Content-Type": "application/json" });
  res.end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code }));
}

function json(res: ServerResponse, body: unknown): void {
  res.writeHead(200, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}

/** A kubeconfig for `server` with a bearer token (or none), trusting `caPem`. */
function kubeconfigFor(server: string, caPem: string, token?: string): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    `- name: site\n  cluster:\n    server: ${server}\n    certificate-authority-data: ${Buffer.from(caPem).toString("base64")}`,
    "users:",
    `- name: installer\n  user: ${token === undefined ? "{}" : `\n    token: ${token}`}`,
    "contexts:",
    "- name: site\n  context:\n    cluster: site\n    user: installer",
    "current-context: site",
    "",
  ].join("\n");
}

let caPem: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-kube-"));
  const [key, cert] = [join(dir, "server.key"), join(dir, "server.crt")];
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      "/CN=kube-apiserver",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
    { stdio: "ignore" },
  );
  caPem = await readFile(cert, "utf8");
  server = createServer(
    { key: await readFile(key), cert: caPem },
    (req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const url = new URL(req.url!, "http://apiserver");
        const resources = DISCOVERY[url.pathname];
        if (req.method === "GET" && resources !== undefined) {
          json(res, {
            kind: "APIResourceList",
            groupVersion: url.pathname.replace(/^\/apis?\//, ""),
            resources,
          });
          return;
        }
        const recorded: Recorded = {
          method: req.method!,
          path: url.pathname,
          query: Object.fromEntries(url.searchParams),
          contentType: req.headers["content-type"],
          authorization: req.headers.authorization,
          body: Buffer.concat(chunks).toString(),
        };
        requests.push(recorded);
        answer(recorded, res);
      });
    },
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  kubeconfig = join(dir, "kubeconfig");
  await writeFile(kubeconfig, kubeconfigFor(`https://127.0.0.1:${port}`, caPem, "s3cret-token"));
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  requests = [];
  answer = (req, res) => json(res, req.body === "" ? {} : JSON.parse(req.body));
});

const statefulSet: ClusterObject = {
  apiVersion: "apps/v1",
  kind: "StatefulSet",
  metadata: {
    name: "msgbroker",
    namespace: "hubble-system",
    labels: { "app.kubernetes.io/managed-by": "airlock" },
  },
  spec: { replicas: 2, serviceName: "msgbroker-headless", selector: { matchLabels: { app: "msgbroker" } } },
};

describe("KubeClusterClient", () => {
  it("applies by server-side apply: PATCH with application/apply-patch+yaml, fieldManager and force, the object as body", async () => {
    const client = KubeClusterClient.fromKubeconfig(kubeconfig);
    await client.apply(statefulSet, { fieldManager: "airlock", force: true });
    expect(requests).toHaveLength(1);
    const [sent] = requests;
    expect(sent).toMatchObject({
      method: "PATCH",
      path: "/apis/apps/v1/namespaces/hubble-system/statefulsets/msgbroker",
      query: { fieldManager: "airlock", force: "true" },
      contentType: "application/apply-patch+yaml",
      authorization: "Bearer s3cret-token",
    });
    expect(JSON.parse(sent!.body)).toMatchObject({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      metadata: statefulSet.metadata,
      spec: statefulSet.spec,
    });
  });

  it("a dry run asks dryRun=All; without force no force parameter is sent; a cluster-scoped object has no namespace in its path", async () => {
    const client = KubeClusterClient.fromKubeconfig(kubeconfig);
    await client.apply(
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "hubble-system" } },
      { fieldManager: "airlock", dryRun: true },
    );
    expect(requests[0]).toMatchObject({
      method: "PATCH",
      path: "/api/v1/namespaces/hubble-system",
      query: { fieldManager: "airlock", dryRun: "All" },
    });
    expect(requests[0]!.query.force).toBeUndefined();
  });

  it("get is a GET of the object; NotFound is undefined, not an error", async () => {
    const client = KubeClusterClient.fromKubeconfig(kubeconfig);
    answer = (_req, res) => status(res, 404, "NotFound", 'configmaps "settings" not found');
    const ref = { apiVersion: "v1", kind: "ConfigMap", name: "settings", namespace: "hubble-system" };
    expect(await client.get(ref)).toBeUndefined();
    expect(requests[0]).toMatchObject({
      method: "GET",
      path: "/api/v1/namespaces/hubble-system/configmaps/settings",
    });
  });

  it("list sends the label selector and follows continue tokens; items get their apiVersion and kind", async () => {
    const client = KubeClusterClient.fromKubeconfig(kubeconfig);
    answer = (req, res) =>
      json(res, {
        kind: "ConfigMapList",
        apiVersion: "v1",
        metadata: {
          resourceVersion: "10",
          continue: req.query.continue === undefined ? "page-2" : undefined,
        },
        items: [
          { metadata: { name: req.query.continue === undefined ? "a" : "b", namespace: "hubble-system" } },
        ],
      });
    const items = await client.list("v1", "ConfigMap", {
      namespace: "hubble-system",
      labelSelector: "app.kubernetes.io/managed-by=airlock,airlock.dev/release=mgmt",
    });
    expect(items.map((item) => [item.apiVersion, item.kind, item.metadata.name])).toEqual([
      ["v1", "ConfigMap", "a"],
      ["v1", "ConfigMap", "b"],
    ]);
    expect(requests.map((r) => [r.method, r.path, r.query.labelSelector, r.query.continue])).toEqual([
      [
        "GET",
        "/api/v1/namespaces/hubble-system/configmaps",
        "app.kubernetes.io/managed-by=airlock,airlock.dev/release=mgmt",
        undefined,
      ],
      [
        "GET",
        "/api/v1/namespaces/hubble-system/configmaps",
        "app.kubernetes.io/managed-by=airlock,airlock.dev/release=mgmt",
        "page-2",
      ],
    ]);
  });

  it("delete asks for background propagation unless told to orphan; NotFound is false", async () => {
    const client = KubeClusterClient.fromKubeconfig(kubeconfig);
    answer = (_req, res) => json(res, { kind: "Status", apiVersion: "v1", status: "Success" });
    const ref = { apiVersion: "v1", kind: "Secret", name: "old", namespace: "hubble-system" };
    expect(await client.delete(ref)).toBe(true);
    expect(requests[0]).toMatchObject({
      method: "DELETE",
      path: "/api/v1/namespaces/hubble-system/secrets/old",
      query: { propagationPolicy: "Background" },
    });
    const sts = { apiVersion: "apps/v1", kind: "StatefulSet", name: "msgbroker", namespace: "hubble-system" };
    expect(await client.delete(sts, { propagationPolicy: "Orphan" })).toBe(true);
    expect(requests.at(-1)).toMatchObject({
      method: "DELETE",
      path: "/apis/apps/v1/namespaces/hubble-system/statefulsets/msgbroker",
      query: { propagationPolicy: "Orphan" },
    });
    answer = (_req, res) => status(res, 404, "NotFound", 'secrets "old" not found');
    expect(await client.delete(ref)).toBe(false);
  });

  it("watch lists the one object by field selector, then watches from the list's resourceVersion", async () => {
    const client = KubeClusterClient.fromKubeconfig(kubeconfig);
    answer = (req, res) => {
      if (req.query.watch === undefined) {
        json(res, {
          kind: "StatefulSetList",
          apiVersion: "apps/v1",
          metadata: { resourceVersion: "41" },
          items: [statefulSet],
        });
        return;
      }
      res.writeHead(200, { "Content-Type": "application/json" });
      res.write(
        JSON.stringify({ type: "MODIFIED", object: { ...statefulSet, status: { readyReplicas: 2 } } }) + "\n",
      );
    };
    const seen: (ClusterObject | undefined)[] = [];
    const watching = new AbortController();
    await client.watch(
      { apiVersion: "apps/v1", kind: "StatefulSet", name: "msgbroker", namespace: "hubble-system" },
      (object) => {
        seen.push(object);
        if (seen.length === 2) watching.abort();
      },
      watching.signal,
    );
    expect(requests.map((r) => [r.method, r.path, r.query])).toEqual([
      [
        "GET",
        "/apis/apps/v1/namespaces/hubble-system/statefulsets",
        { fieldSelector: "metadata.name=msgbroker" },
      ],
      [
        "GET",
        "/apis/apps/v1/namespaces/hubble-system/statefulsets",
        {
          fieldSelector: "metadata.name=msgbroker",
          resourceVersion: "41",
          allowWatchBookmarks: "true",
          watch: "true",
        },
      ],
    ]);
    expect(seen.map((object) => object?.status?.readyReplicas)).toEqual([undefined, 2]);
  });

  it("a watch the server ends, or answers 410 Gone, is listed and watched again from the new resourceVersion", async () => {
    const client = KubeClusterClient.fromKubeconfig(kubeconfig);
    let lists = 0;
    let watches = 0;
    answer = (req, res) => {
      if (req.query.watch === undefined) {
        lists++;
        json(res, {
          kind: "StatefulSetList",
          apiVersion: "apps/v1",
          metadata: { resourceVersion: `${lists}0` },
          items: [],
        });
        return;
      }
      watches++;
      res.writeHead(200, { "Content-Type": "application/json" });
      if (watches === 1) res.end();
      else if (watches === 2)
        res.end(
          JSON.stringify({
            type: "ERROR",
            object: { kind: "Status", apiVersion: "v1", code: 410, reason: "Expired" },
          }) + "\n",
        );
      else res.write(JSON.stringify({ type: "ADDED", object: statefulSet }) + "\n");
    };
    const seen: (string | undefined)[] = [];
    const watching = new AbortController();
    await client.watch(
      { apiVersion: "apps/v1", kind: "StatefulSet", name: "msgbroker", namespace: "hubble-system" },
      (object) => {
        seen.push(object?.metadata.name);
        if (object !== undefined) watching.abort();
      },
      watching.signal,
    );
    expect(
      requests.map((r) => (r.query.watch === undefined ? "list" : `watch from ${r.query.resourceVersion}`)),
    ).toEqual(["list", "watch from 10", "list", "watch from 20", "list", "watch from 30"]);
    expect(seen).toEqual([undefined, undefined, undefined, "msgbroker"]);
  });

  it("a request the API server does not answer in time is CLUSTER_TIMEOUT", async () => {
    const client = KubeClusterClient.fromKubeconfig(kubeconfig, { requestTimeoutMs: 300 });
    const held: ServerResponse[] = [];
    answer = (_req, res) => held.push(res);
    try {
      await expect(client.apply(statefulSet, { fieldManager: "airlock" })).rejects.toMatchObject({
        code: "CLUSTER_TIMEOUT",
        where: "StatefulSet hubble-system/msgbroker",
      });
      expect(held).toHaveLength(1);
    } finally {
      for (const res of held) res.destroy();
    }
  });

  it("an API server refusal is a typed error naming the object; no server is CLUSTER_UNREACHABLE; a bad kubeconfig KUBECONFIG_INVALID", async () => {
    const client = KubeClusterClient.fromKubeconfig(kubeconfig);
    answer = (_req, res) =>
      status(
        res,
        403,
        "Forbidden",
        'statefulsets.apps "msgbroker" is forbidden: User "ops" cannot patch resource',
      );
    await expect(client.apply(statefulSet, { fieldManager: "airlock" })).rejects.toMatchObject({
      code: "CLUSTER_FORBIDDEN",
      where: "StatefulSet hubble-system/msgbroker",
      message: expect.stringContaining('User "ops" cannot patch') as unknown,
    });
    // A kube-apiserver 1.32 refusing a claim template change; any other 422 stays CLUSTER_INVALID.
    const forbidden = `StatefulSet.apps "msgbroker" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden`;
    answer = (_req, res) => status(res, 422, "Invalid", forbidden);
    await expect(client.apply(statefulSet, { fieldManager: "airlock" })).rejects.toMatchObject({
      code: "CLUSTER_FIELD_IMMUTABLE",
      message: `StatefulSet hubble-system/msgbroker: ${forbidden}`,
    });
    answer = (_req, res) =>
      status(
        res,
        422,
        "Invalid",
        'StatefulSet.apps "msgbroker" is invalid: spec.replicas: Invalid value: -1',
      );
    await expect(client.apply(statefulSet, { fieldManager: "airlock" })).rejects.toMatchObject({
      code: "CLUSTER_INVALID",
    });

    const closed = createHttpServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    const unreachableConfig = join(dir, "unreachable");
    await writeFile(unreachableConfig, kubeconfigFor(`https://127.0.0.1:${port}`, caPem));
    await expect(
      KubeClusterClient.fromKubeconfig(unreachableConfig).get({
        apiVersion: "v1",
        kind: "Secret",
        name: "x",
        namespace: "y",
      }),
    ).rejects.toMatchObject({ code: "CLUSTER_UNREACHABLE" });

    const broken = join(dir, "broken");
    await writeFile(broken, "clusters: [this is: not a kubeconfig");
    expect(() => KubeClusterClient.fromKubeconfig(broken)).toThrow(
      expect.objectContaining({ code: "KUBECONFIG_INVALID" }),
    );
  });
});
