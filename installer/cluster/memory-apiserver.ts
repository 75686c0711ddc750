import { timingSafeEqual } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { parse as parseYaml } from "yaml";
import { AirlockError } from "../../registry/oci/index.js";
import type { ClusterClient, ClusterObject, DeleteOptions, ObjectRef } from "./client.js";
import { ClusterInvalidError, statusOfClusterError } from "./errors.js";

/**
 * The kinds the facade serves: what the plane applies, and what status and the rollout wait read.
 * Discovery answers from this table, as an API server's `/api/v1` and `/apis/G/V` do.
 */
const RESOURCES: { apiVersion: string; kind: string; plural: string; namespaced: boolean }[] = [
  { apiVersion: "v1", kind: "Namespace", plural: "namespaces", namespaced: false },
  { apiVersion: "v1", kind: "Node", plural: "nodes", namespaced: false },
  { apiVersion: "v1", kind: "ServiceAccount", plural: "serviceaccounts", namespaced: true },
  { apiVersion: "v1", kind: "Secret", plural: "secrets", namespaced: true },
  { apiVersion: "v1", kind: "ConfigMap", plural: "configmaps", namespaced: true },
  { apiVersion: "v1", kind: "Service", plural: "services", namespaced: true },
  { apiVersion: "v1", kind: "Pod", plural: "pods", namespaced: true },
  { apiVersion: "v1", kind: "PersistentVolumeClaim", plural: "persistentvolumeclaims", namespaced: true },
  { apiVersion: "apps/v1", kind: "StatefulSet", plural: "statefulsets", namespaced: true },
  { apiVersion: "apps/v1", kind: "Deployment", plural: "deployments", namespaced: true },
  { apiVersion: "apps/v1", kind: "ControllerRevision", plural: "controllerrevisions", namespaced: true },
  { apiVersion: "batch/v1", kind: "Job", plural: "jobs", namespaced: true },
  { apiVersion: "policy/v1", kind: "PodDisruptionBudget", plural: "poddisruptionbudgets", namespaced: true },
  { apiVersion: "networking.k8s.io/v1", kind: "NetworkPolicy", plural: "networkpolicies", namespaced: true },
  { apiVersion: "rbac.authorization.k8s.io/v1", kind: "Role", plural: "roles", namespaced: true },
  {
    apiVersion: "rbac.authorization.k8s.io/v1",
    kind: "RoleBinding",
    plural: "rolebindings",
    namespaced: true,
  },
];
/** The API server's own limit on a request body. */
const MAX_BODY_BYTES = 3 * 1024 * 1024;

export interface ClusterApiServerOptions {
  /** PEM server certificate and key the kubeconfig's CA verifies. */
  tls: { cert: string; key: string };
  /** The bearer token every request must carry. */
  token: string;
  host?: string;
  /** 0 (default) picks a free port. */
  port?: number;
  /**
   * Told of each GET of one object and each apply once the cluster has handled it, before the answer
   * goes: a test stops a client at a chosen request (a crash test SIGKILLs the CLI there).
   */
  observe?: ((request: ObservedRequest) => void) | undefined;
}

export interface ObservedRequest {
  method: "GET" | "PATCH";
  /** The URL path, e.g. `/apis/apps/v1/namespaces/hubble-system/statefulsets/msgbroker`. */
  path: string;
  /** The applied object, for a PATCH. */
  body?: ClusterObject | undefined;
}

export interface RunningClusterApiServer {
  /** `https://host:port`, the kubeconfig's `server`. */
  url: string;
  close(): Promise<void>;
}

/**
 * A kube-apiserver's REST surface over any ClusterClient — in tests and the demo, a MemoryCluster —
 * so that what a customer-side command does through `--kubeconfig` and the real client-node client
 * (discovery, server-side apply PATCH, GET, paged LIST, DELETE, WATCH) runs unchanged against it. It
 * speaks the protocol only; every behaviour (ownership, validation, controllers) is the cluster's.
 */
export async function serveClusterApi(
  cluster: ClusterClient,
  options: ClusterApiServerOptions,
): Promise<RunningClusterApiServer> {
  const expected = Buffer.from(`Bearer ${options.token}`);
  const server: Server = createServer({ cert: options.tls.cert, key: options.tls.key }, (req, res) => {
    const given = Buffer.from(req.headers.authorization ?? "");
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      sendStatus(res, 401, "Unauthorized", "Unauthorized");
      return;
    }
    handle(cluster, req, res, options.observe).catch((error: unknown) => {
      const status = error instanceof AirlockError ? statusOfClusterError(error.code) : 500;
      if (res.headersSent) res.destroy();
      else if (error instanceof ClusterInvalidError) sendInvalid(res, error);
      else sendStatus(res, status, reasonOf(status), (error as Error).message);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", resolve);
  });
  const address = server.address() as AddressInfo;
  return {
    url: `https://${address.address}:${address.port}`,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A kubeconfig naming `url`, trusting `caPem`, authenticating with `token`. */
export function clusterApiKubeconfig(url: string, caPem: string, token: string): string {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: default",
    "  cluster:",
    `    server: ${url}`,
    `    certificate-authority-data: ${Buffer.from(caPem).toString("base64")}`,
    "users:",
    "- name: default",
    "  user:",
    `    token: ${token}`,
    "contexts:",
    "- name: default",
    "  context:",
    "    cluster: default",
    "    user: default",
    "current-context: default",
    "",
  ].join("\n");
}

interface Target {
  apiVersion: string;
  kind: string;
  namespace: string | undefined;
  name: string | undefined;
}

async function handle(
  cluster: ClusterClient,
  req: IncomingMessage,
  res: ServerResponse,
  observe: ClusterApiServerOptions["observe"],
): Promise<void> {
  const url = new URL(req.url ?? "/", "https://apiserver");
  const segments = url.pathname
    .split("/")
    .filter((s) => s !== "")
    .map(decodeURIComponent);
  const groupVersion = segments[0] === "api" ? segments[1] : segments.slice(1, 3).join("/");
  const rest = segments[0] === "api" ? segments.slice(2) : segments.slice(3);
  if ((segments[0] !== "api" && segments[0] !== "apis") || groupVersion === undefined) {
    sendStatus(res, 404, "NotFound", `the server could not find the requested resource (${url.pathname})`);
    return;
  }
  if (rest.length === 0 && req.method === "GET") {
    sendJson(res, 200, discovery(groupVersion));
    return;
  }
  const target = targetOf(groupVersion, rest);
  if (target === undefined) {
    sendStatus(res, 404, "NotFound", `the server could not find the requested resource (${url.pathname})`);
    return;
  }
  const ref = (name: string): ObjectRef => ({ ...target, name });
  switch (req.method) {
    case "GET":
      if (target.name !== undefined) {
        const object = await cluster.get(ref(target.name));
        if (object === undefined) throw notFound(target, target.name);
        observe?.({ method: "GET", path: url.pathname });
        sendJson(res, 200, object);
      } else if (url.searchParams.get("watch") === "true" || url.searchParams.get("watch") === "1") {
        await watch(cluster, target, url.searchParams, req, res);
      } else {
        sendJson(res, 200, await list(cluster, target, url.searchParams));
      }
      return;
    case "PATCH": {
      if (target.name === undefined) break;
      const applied = await apply(cluster, req, url.searchParams, ref(target.name));
      observe?.({ method: "PATCH", path: url.pathname, body: applied });
      sendJson(res, 200, applied);
      return;
    }
    case "DELETE": {
      if (target.name === undefined) break;
      const propagationPolicy = propagationOf(url.searchParams);
      if (!(await cluster.delete(ref(target.name), { propagationPolicy }))) {
        throw notFound(target, target.name);
      }
      sendJson(res, 200, { kind: "Status", apiVersion: "v1", status: "Success", code: 200 });
      return;
    }
  }
  sendStatus(res, 405, "MethodNotAllowed", `${req.method} is not supported on ${url.pathname}`);
}

function discovery(groupVersion: string): unknown {
  return {
    kind: "APIResourceList",
    apiVersion: "v1",
    groupVersion,
    resources: RESOURCES.filter((r) => r.apiVersion === groupVersion).map((r) => ({
      name: r.plural,
      singularName: r.kind.toLowerCase(),
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: ["create", "delete", "get", "list", "patch", "update", "watch"],
    })),
  };
}

/** `[namespaces/NS/]PLURAL[/NAME]` under one group version, or undefined for what is not served. */
function targetOf(groupVersion: string, rest: string[]): Target | undefined {
  let namespace: string | undefined;
  let path = rest;
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1];
    path = rest.slice(2);
  }
  if (path.length > 2) return undefined;
  const resource = RESOURCES.find((r) => r.apiVersion === groupVersion && r.plural === path[0]);
  if (resource === undefined || (namespace !== undefined && !resource.namespaced)) return undefined;
  return { apiVersion: groupVersion, kind: resource.kind, namespace, name: path[1] };
}

async function apply(
  cluster: ClusterClient,
  req: IncomingMessage,
  query: URLSearchParams,
  ref: ObjectRef,
): Promise<ClusterObject> {
  const contentType = req.headers["content-type"] ?? "";
  if (!contentType.startsWith("application/apply-patch+yaml")) {
    throw new AirlockError(
      "CLUSTER_BAD_REQUEST",
      `only server-side apply patches are served, not ${contentType}`,
      {
        where: `${ref.kind} ${ref.name}`,
      },
    );
  }
  const fieldManager = query.get("fieldManager");
  if (fieldManager === null || fieldManager === "") {
    throw new AirlockError("CLUSTER_INVALID", "PATCH with apply requires a fieldManager", {
      where: `${ref.kind} ${ref.name}`,
    });
  }
  const object = parseYaml(await readBody(req)) as ClusterObject;
  if (object?.metadata?.name !== ref.name || object.kind !== ref.kind) {
    throw new AirlockError("CLUSTER_BAD_REQUEST", "the body names another object than the path", {
      where: `${ref.kind} ${ref.name}`,
    });
  }
  // A namespaced object's path names its namespace; the body may leave it out.
  if (ref.namespace !== undefined) object.metadata.namespace ??= ref.namespace;
  return cluster.apply(object, {
    fieldManager,
    force: query.get("force") === "true",
    dryRun: query.get("dryRun") === "All",
  });
}

/** One page holding every item: the cluster is small, and an absent `continue` ends client paging. */
async function list(cluster: ClusterClient, target: Target, query: URLSearchParams): Promise<unknown> {
  const name = nameSelected(query);
  const items = (
    await cluster.list(target.apiVersion, target.kind, {
      namespace: target.namespace,
      labelSelector: query.get("labelSelector") ?? undefined,
    })
  ).filter((item) => name === undefined || item.metadata.name === name);
  const versions = items.map((item) => Number(item.metadata.resourceVersion ?? 0));
  return {
    kind: `${target.kind}List`,
    apiVersion: target.apiVersion,
    metadata: { resourceVersion: String(Math.max(0, ...versions)) },
    items,
  };
}

/** A watch of one object by `metadata.name`, as client-node's Watch asks: newline-delimited events. */
async function watch(
  cluster: ClusterClient,
  target: Target,
  query: URLSearchParams,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const name = nameSelected(query);
  if (name === undefined) {
    throw new AirlockError("CLUSTER_BAD_REQUEST", "this API server watches one object, by metadata.name", {
      where: target.kind,
    });
  }
  const stop = new AbortController();
  req.once("close", () => stop.abort());
  res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
  let present = false;
  await cluster.watch(
    { ...target, name },
    (object) => {
      if (object === undefined && !present) return;
      res.write(
        `${JSON.stringify({ type: object === undefined ? "DELETED" : present ? "MODIFIED" : "ADDED", object: object ?? { kind: target.kind, apiVersion: target.apiVersion, metadata: { name, namespace: target.namespace } } })}\n`,
      );
      present = object !== undefined;
    },
    stop.signal,
  );
  res.end();
}

/** DELETE's propagationPolicy (client-node sends it in the query); Background when absent. */
function propagationOf(query: URLSearchParams): DeleteOptions["propagationPolicy"] {
  const policy = query.get("propagationPolicy") ?? "Background";
  if (policy !== "Background" && policy !== "Orphan" && policy !== "Foreground") {
    throw new AirlockError(
      "CLUSTER_BAD_REQUEST",
      `propagationPolicy ${policy} is not one of Background, Orphan, Foreground`,
      {
        where: "propagationPolicy",
      },
    );
  }
  return policy;
}

function nameSelected(query: URLSearchParams): string | undefined {
  const selector = query.get("fieldSelector");
  if (selector === null || selector === "") return undefined;
  const match = /^metadata\.name=([^,]+)$/.exec(selector);
  if (match === null) {
    throw new AirlockError("CLUSTER_BAD_REQUEST", `field selector ${selector} is not supported`, {
      where: "fieldSelector",
    });
  }
  return match[1];
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) {
      throw new AirlockError("CLUSTER_BAD_REQUEST", "request entity too large: limit is 3145728", {
        where: "request body",
      });
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function notFound(target: Target, name: string): AirlockError {
  const plural = RESOURCES.find((r) => r.kind === target.kind)?.plural ?? target.kind;
  return new AirlockError("CLUSTER_NOT_FOUND", `${plural} "${name}" not found`, { where: name });
}

const REASONS: Record<number, string> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  405: "MethodNotAllowed",
  409: "Conflict",
  422: "Invalid",
};

function reasonOf(status: number): string {
  return REASONS[status] ?? "InternalError";
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message,
    reason,
    code,
  });
}

/** A 422 Invalid as kube-apiserver answers it: the message, and each field's cause in the details. */
function sendInvalid(res: ServerResponse, error: ClusterInvalidError): void {
  sendJson(res, 422, {
    kind: "Status",
    apiVersion: "v1",
    metadata: {},
    status: "Failure",
    message: error.message,
    reason: "Invalid",
    details: {
      name: error.objectName,
      group: error.group,
      kind: error.kind,
      causes: error.causes.map((cause) => ({
        reason: cause.reason,
        message: cause.message,
        field: cause.field,
      })),
    },
    code: 422,
  });
}

function sendJson(res: ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(text) });
  res.end(text);
}
