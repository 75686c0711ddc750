import {
  ApiException,
  KubeConfig,
  type Configuration,
  type RequestContext,
  KubernetesObjectApi,
  PatchStrategy,
  Watch,
  type KubernetesObject,
} from "@kubernetes/client-node";
import { AirlockError } from "../../registry/oci/index.js";
import {
  describeRef,
  refOf,
  type ApplyOptions,
  type ClusterClient,
  type ClusterObject,
  type DeleteOptions,
  type ListOptions,
  type ObjectRef,
} from "./client.js";
import { clusterError } from "./errors.js";

/** How long one request (not a watch) may take before it counts as unanswered. */
const REQUEST_TIMEOUT_MS = 30_000;

/**
 * client-node's object API with a deadline on every request it sends (discovery included), and the
 * collection path it finds by discovery exposed, which a watch needs.
 */
class ObjectApi extends KubernetesObjectApi {
  requestTimeoutMs = REQUEST_TIMEOUT_MS;

  collectionPath(apiVersion: string, kind: string, namespace: string | undefined): Promise<string> {
    return this.specUriPath({ apiVersion, kind, metadata: { namespace } }, "list");
  }

  protected override requestPromise<T extends KubernetesObject>(
    requestContext: RequestContext,
    type?: string,
    options?: Configuration,
  ): Promise<T> {
    requestContext.setSignal(AbortSignal.timeout(this.requestTimeoutMs));
    return super.requestPromise<T>(requestContext, type, options);
  }
}

const NETWORK_ERRORS = /ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENOTFOUND|ETIMEDOUT|socket hang up/;

/**
 * The cluster client on a real kube-apiserver, through @kubernetes/client-node: server-side apply
 * (PATCH with application/apply-patch+yaml, fieldManager, force), reads, label-selected lists,
 * deletes (background propagation, or orphan), and watches that list first and resume from the list's
 * resourceVersion. Errors come out as AirlockErrors with the same codes MemoryCluster uses.
 */
export class KubeClusterClient implements ClusterClient {
  private readonly api: ObjectApi;
  private readonly watcher: Watch;
  private readonly server: string;

  constructor(config: KubeConfig, options: { requestTimeoutMs?: number } = {}) {
    this.api = config.makeApiClient(ObjectApi);
    this.api.requestTimeoutMs = options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
    this.watcher = new Watch(config);
    this.server = config.getCurrentCluster()?.server ?? "the cluster";
  }

  /** From a kubeconfig file, or client-node's defaults ($KUBECONFIG, ~/.kube/config, in-cluster). */
  static fromKubeconfig(path?: string, options: { requestTimeoutMs?: number } = {}): KubeClusterClient {
    const config = new KubeConfig();
    try {
      if (path === undefined) config.loadFromDefault();
      else config.loadFromFile(path);
    } catch (error) {
      throw new AirlockError(
        "KUBECONFIG_INVALID",
        `cannot read the kubeconfig: ${(error as Error).message}`,
        {
          where: path ?? "$KUBECONFIG or ~/.kube/config",
          hint: "pass --kubeconfig with a readable kubeconfig file (k3s writes /etc/rancher/k3s/k3s.yaml)",
          cause: error,
        },
      );
    }
    if (config.getCurrentCluster() === null) {
      throw new AirlockError("KUBECONFIG_INVALID", "the kubeconfig names no current cluster", {
        where: path ?? "$KUBECONFIG or ~/.kube/config",
        hint: "set current-context in the kubeconfig, or pass one that has it",
      });
    }
    return new KubeClusterClient(config, options);
  }

  async apply(object: ClusterObject, options: ApplyOptions): Promise<ClusterObject> {
    // client-node fills in the spec it is given (namespace defaults): it gets a copy.
    return this.call(refOf(object), async () =>
      asClusterObject(
        await this.api.patch(
          structuredClone(object) as KubernetesObject,
          undefined,
          options.dryRun === true ? "All" : undefined,
          options.fieldManager,
          options.force === true ? true : undefined,
          PatchStrategy.ServerSideApply,
        ),
      ),
    );
  }

  async get(ref: ObjectRef): Promise<ClusterObject | undefined> {
    try {
      return await this.call(ref, async () =>
        asClusterObject(
          await this.api.read({
            apiVersion: ref.apiVersion,
            kind: ref.kind,
            metadata: { name: ref.name, namespace: ref.namespace },
          }),
        ),
      );
    } catch (error) {
      if (error instanceof AirlockError && error.code === "CLUSTER_NOT_FOUND") return undefined;
      throw error;
    }
  }

  async list(apiVersion: string, kind: string, options: ListOptions = {}): Promise<ClusterObject[]> {
    const where = `${kind}${options.namespace === undefined ? "" : ` in ${options.namespace}`}`;
    const items: ClusterObject[] = [];
    let continueToken: string | undefined;
    do {
      const page = await this.call(where, () =>
        this.api.list(
          apiVersion,
          kind,
          options.namespace,
          undefined,
          undefined,
          undefined,
          undefined,
          options.labelSelector,
          500,
          continueToken,
        ),
      );
      // Items of a list carry no apiVersion and kind of their own.
      for (const item of page.items) items.push({ ...(item as ClusterObject), apiVersion, kind });
      continueToken = page.metadata?._continue;
    } while (continueToken !== undefined && continueToken !== "");
    return items;
  }

  async delete(ref: ObjectRef, options: DeleteOptions = {}): Promise<boolean> {
    try {
      await this.call(ref, () =>
        this.api.delete(
          {
            apiVersion: ref.apiVersion,
            kind: ref.kind,
            metadata: { name: ref.name, namespace: ref.namespace },
          },
          undefined,
          undefined,
          undefined,
          undefined,
          options.propagationPolicy ?? "Background",
        ),
      );
      return true;
    } catch (error) {
      if (error instanceof AirlockError && error.code === "CLUSTER_NOT_FOUND") return false;
      throw error;
    }
  }

  async watch(
    ref: ObjectRef,
    onChange: (object: ClusterObject | undefined) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const path = await this.call(ref, () => this.api.collectionPath(ref.apiVersion, ref.kind, ref.namespace));
    const fieldSelector = `metadata.name=${ref.name}`;
    while (!signal.aborted) {
      // List, then watch from the list's resourceVersion: no change between the two is missed.
      const listed = await this.call(ref, () =>
        this.api.list(
          ref.apiVersion,
          ref.kind,
          ref.namespace,
          undefined,
          undefined,
          undefined,
          fieldSelector,
        ),
      );
      const first = listed.items[0] as ClusterObject | undefined;
      onChange(first === undefined ? undefined : { ...first, apiVersion: ref.apiVersion, kind: ref.kind });
      const outcome = await this.watchFrom(
        path,
        fieldSelector,
        listed.metadata?.resourceVersion,
        onChange,
        signal,
      );
      if (outcome === "failed") {
        throw clusterError(0, ref, `the watch on ${describeRef(ref)} at ${this.server} failed`);
      }
      // "expired" (410 Gone) or a server-side close: list again and go on.
    }
  }

  /** One watch request: resolves when it ends, saying whether to list again or give up. */
  private watchFrom(
    path: string,
    fieldSelector: string,
    resourceVersion: string | undefined,
    onChange: (object: ClusterObject | undefined) => void,
    signal: AbortSignal,
  ): Promise<"aborted" | "expired" | "closed" | "failed"> {
    return new Promise((resolve) => {
      let expired = false;
      const onEvent = (phase: string, object: ClusterObject & { code?: number }): void => {
        if (phase === "ADDED" || phase === "MODIFIED") onChange(object);
        else if (phase === "DELETED") onChange(undefined);
        else if (phase === "ERROR" && object.code === 410) expired = true;
      };
      const onDone = (error: unknown): void => {
        signal.removeEventListener("abort", abort);
        if (signal.aborted) resolve("aborted");
        else if (expired) resolve("expired");
        else resolve(error === null || error === undefined ? "closed" : "failed");
      };
      let request: AbortController | undefined;
      const abort = (): void => request?.abort();
      signal.addEventListener("abort", abort, { once: true });
      this.watcher
        .watch(path, { fieldSelector, resourceVersion, allowWatchBookmarks: true }, onEvent, onDone)
        .then((controller) => {
          request = controller;
          if (signal.aborted) controller.abort();
        })
        .catch(onDone);
    });
  }

  /** Runs one client-node call, turning its failures into AirlockErrors that name the object and server. */
  private async call<T>(ref: ObjectRef | string, run: () => Promise<T>): Promise<T> {
    const where = typeof ref === "string" ? ref : describeRef(ref);
    try {
      return await run();
    } catch (error) {
      if (error instanceof AirlockError) throw error;
      if (error instanceof ApiException) {
        throw clusterError(error.code, where, `${where}: ${statusMessage(error)}`, error);
      }
      const message = (error as Error).message ?? String(error);
      if ((error as Error).name === "AbortError" || (error as Error).name === "TimeoutError") {
        throw new AirlockError(
          "CLUSTER_TIMEOUT",
          `${this.server} did not answer within ${Math.round(this.api.requestTimeoutMs / 1000)} s`,
          {
            where,
            hint: "the API server is overloaded or hung: check it (kubectl get --raw /readyz), then retry",
            cause: error,
          },
        );
      }
      if (NETWORK_ERRORS.test(message) || NETWORK_ERRORS.test(String((error as { code?: string }).code))) {
        throw new AirlockError("CLUSTER_UNREACHABLE", `cannot reach ${this.server}: ${message}`, {
          where,
          hint: "check that the API server is up and the kubeconfig's server address is right",
          cause: error,
        });
      }
      if (message.startsWith("Unrecognized API version and kind")) {
        throw clusterError(404, where, `${where}: the cluster does not serve this kind (${message})`, error);
      }
      throw clusterError(0, where, `${where}: ${message}`, error);
    }
  }
}

/** The API server's Status message from an ApiException body (a JSON string or an object). */
function statusMessage(error: ApiException<unknown>): string {
  let body: unknown = error.body;
  if (typeof body === "string") {
    const text = body.trim();
    try {
      body = JSON.parse(text) as unknown;
    } catch {
      return text === "" ? `HTTP ${error.code}` : text;
    }
  }
  const message = (body as { message?: unknown } | undefined)?.message;
  return typeof message === "string" ? message : `HTTP ${error.code}`;
}

/** What the API server returned for one object: it always carries apiVersion, kind and metadata. */
function asClusterObject(object: KubernetesObject): ClusterObject {
  return object as ClusterObject;
}
