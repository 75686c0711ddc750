import type { IncomingMessage, ServerResponse } from "node:http";
import {
  MAX_MANIFEST_BYTES,
  isDigest,
  isValidTag,
  MediaType,
  silentLogger,
  type Digest,
  type Logger,
} from "../oci/index.js";
import type { Store } from "../store/index.js";
import { RegistryError, sendError, sendInternalError } from "./errors.js";
import { Uploads } from "./uploads.js";
import { sendFileRange } from "./send.js";
import type { Authenticator } from "./auth.js";
import {
  checkDigest,
  checkName,
  decodeSegment,
  sendJson,
  type Handler,
  type RequestContext,
} from "./context.js";
import { pushHandlers } from "./push.js";
import { logInternalError, recordRequest } from "./request-log.js";

export interface RegistryHandlerOptions {
  /** Largest page a client may ask for with `n`; also the default page size. */
  maxPageSize?: number;
  /** Told of failures that are not the client's (a damaged store, a disk error). */
  onInternalError?: (error: unknown) => void;
  /** One info line per request, and every internal error at error with its stack. */
  logger?: Logger | undefined;
  /** Accept pushes (uploads, manifest PUTs). Off unless the caller authenticates writers. */
  allowPush?: boolean;
  /** Who may pull and push; without it every client may do what the registry allows. */
  auth?: Authenticator | undefined;
}

/** A plain `node:http` request handler, and `close()`: cut uploads in flight, keeping them resumable. */
export type RegistryHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  close(): Promise<void>;
};

const API_VERSION_HEADER = { "Docker-Distribution-API-Version": "registry/2.0" };

function pageSize(url: URL, max: number): number {
  const n = url.searchParams.get("n");
  if (n === null) return max;
  const value = Number(n);
  if (!/^\d+$/.test(n) || !Number.isSafeInteger(value))
    throw new RegistryError("PAGINATION_NUMBER_INVALID", `n=${n} is not a page size`);
  return Math.min(value, max);
}

/** RFC 5988 Link to the next page, as the spec asks when a page is full. */
function nextLink(url: URL, n: number, last: string): string {
  const next = new URL(url.pathname, "http://registry");
  next.searchParams.set("n", String(n));
  next.searchParams.set("last", last);
  return `<${next.pathname}${next.search}>; rel="next"`;
}

/** `bytes=start-end` (one range) against a blob of `size`; undefined means the whole blob. */
function parseRange(
  header: string | undefined,
  size: number,
): { start: number; end: number } | undefined | "unsatisfiable" {
  if (header === undefined) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (match === null || (match[1] === "" && match[2] === "")) return "unsatisfiable";
  if (match[1] === "") {
    const suffix = Number(match[2]);
    return suffix === 0 ? "unsatisfiable" : { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(match[1]);
  const end = match[2] === "" ? size - 1 : Math.min(Number(match[2]), size - 1);
  return start > end || start >= size ? "unsatisfiable" : { start, end };
}

/**
 * The OCI distribution API over the store: routing, auth and the pull side here (`/v2/`, manifests
 * and blobs by tag or digest, GET and HEAD, Range on blobs, tags and catalog with paging, referrers),
 * the push side in push.ts. A plain `node:http` handler with no body parsing, so blobs stream from
 * their files whatever their size.
 */
export function createRegistryHandler(store: Store, options: RegistryHandlerOptions = {}): RegistryHandler {
  const maxPage = options.maxPageSize ?? 1000;
  const logger = options.logger ?? silentLogger;

  const getManifest: Handler = async ({ res, head, name, reference }) => {
    checkName(name);
    let digest: Digest | undefined;
    if (isDigest(reference)) digest = reference;
    else if (isValidTag(reference)) digest = store.resolveTag(name, reference);
    else
      throw new RegistryError(
        "MANIFEST_INVALID",
        `invalid reference ${JSON.stringify(reference.slice(0, 200))}`,
      );
    const record = digest === undefined ? undefined : store.getManifest(name, digest);
    if (record === undefined) {
      throw new RegistryError(
        store.hasRepository(name) ? "MANIFEST_UNKNOWN" : "NAME_UNKNOWN",
        `manifest ${reference} is not in ${name}`,
      );
    }
    const bytes = await store.blobs.readSmall(record.digest, MAX_MANIFEST_BYTES);
    res.writeHead(200, {
      "Content-Type": record.mediaType,
      "Content-Length": bytes.byteLength,
      "Docker-Content-Digest": record.digest,
      ETag: `"${record.digest}"`,
    });
    res.end(head ? undefined : bytes);
  };

  const getBlob: Handler = async ({ req, res, head, name, reference }) => {
    checkName(name);
    const digest = checkDigest(reference);
    // A blob is served only under the repositories it belongs to, whatever else the store holds.
    const info = store.hasBlob(name, digest) ? await store.blobs.stat(digest) : undefined;
    if (info === undefined) throw new RegistryError("BLOB_UNKNOWN", `blob ${digest} is not in ${name}`);
    const range = parseRange(req.headers.range, info.size);
    if (range === "unsatisfiable") {
      res.writeHead(416, { "Content-Range": `bytes */${info.size}`, "Content-Length": 0 });
      res.end();
      return;
    }
    const headers = {
      "Content-Type": "application/octet-stream",
      "Docker-Content-Digest": reference,
      "Accept-Ranges": "bytes",
      ETag: `"${reference}"`,
    };
    if (range === undefined) res.writeHead(200, { ...headers, "Content-Length": info.size });
    else {
      res.writeHead(206, {
        ...headers,
        "Content-Length": range.end - range.start + 1,
        "Content-Range": `bytes ${range.start}-${range.end}/${info.size}`,
      });
    }
    if (head || info.size === 0) {
      res.end();
      return;
    }
    const from = range?.start ?? 0;
    await sendFileRange(res, store.blobs.path(digest), from, (range?.end ?? info.size - 1) - from + 1);
  };

  const listTags: Handler = ({ res, head, url, name }) => {
    checkName(name);
    if (!store.hasRepository(name))
      throw new RegistryError("NAME_UNKNOWN", `repository ${name} is not known`);
    const n = pageSize(url, maxPage);
    const tags = store.listTagsOf(name, n, url.searchParams.get("last") ?? undefined);
    const link: Record<string, string> =
      n > 0 && tags.length === n ? { Link: nextLink(url, n, tags.at(-1)!) } : {};
    sendJson(res, head, { name, tags }, link);
    return Promise.resolve();
  };

  const catalog = ({ res, head, url }: RequestContext): void => {
    const n = pageSize(url, maxPage);
    const repositories = store.listRepositories(n, url.searchParams.get("last") ?? undefined);
    const link: Record<string, string> =
      n > 0 && repositories.length === n ? { Link: nextLink(url, n, repositories.at(-1)!) } : {};
    sendJson(res, head, { repositories }, link);
  };

  const uploads = new Uploads(store);
  const push = pushHandlers(store, uploads, options.auth);

  /** GET /v2/<name>/referrers/<digest>: an index of the manifests whose subject it is, filterable. */
  const listReferrers: Handler = ({ res, head, url, name, reference }) => {
    checkName(name);
    const subject = checkDigest(reference);
    const wanted = url.searchParams.get("artifactType");
    const referrers = store
      .listReferrers(name, subject)
      .filter((row) => wanted === null || row.artifactType === wanted)
      .map((row) => ({
        mediaType: row.mediaType,
        digest: row.digest,
        size: row.size,
        ...(row.artifactType === undefined ? {} : { artifactType: row.artifactType }),
        ...(row.annotations === undefined ? {} : { annotations: row.annotations }),
      }));
    const body = JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: referrers });
    res.writeHead(200, {
      "Content-Type": MediaType.OciIndex,
      "Content-Length": Buffer.byteLength(body),
      ...(wanted === null ? {} : { "OCI-Filters-Applied": "artifactType" }),
    });
    res.end(head ? undefined : body);
    return Promise.resolve();
  };

  type Method = "GET" | "HEAD" | "PUT" | "POST" | "PATCH" | "DELETE";
  const WRITES = new Set<string>(["PUT", "POST", "PATCH", "DELETE"]);
  const routes: { pattern: RegExp; methods: Partial<Record<Method, Handler>>; upload?: true }[] = [
    { pattern: /^\/v2\/(.+)\/blobs\/uploads\/?$/, methods: { POST: push.startUpload }, upload: true },
    {
      pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
      methods: {
        PATCH: push.patchUpload,
        PUT: push.finishUpload,
        GET: push.uploadStatus,
        DELETE: push.cancelUpload,
      },
      upload: true,
    },
    {
      pattern: /^\/v2\/(.+)\/manifests\/([^/]+)$/,
      methods: { GET: getManifest, HEAD: getManifest, PUT: push.putManifest, DELETE: push.deleteManifest },
    },
    {
      pattern: /^\/v2\/(.+)\/blobs\/([^/]+)$/,
      methods: { GET: getBlob, HEAD: getBlob, DELETE: push.deleteBlob },
    },
    { pattern: /^\/v2\/(.+)\/referrers\/([^/]+)$/, methods: { GET: listReferrers, HEAD: listReferrers } },
    { pattern: /^\/v2\/(.+)\/tags\/list$/, methods: { GET: listTags, HEAD: listTags } },
  ];

  /** Requests streaming a body into an upload: cut on close, so their sessions stay resumable. */
  const uploadRequests = new Set<IncomingMessage>();
  const cutByClose = new WeakSet<IncomingMessage>();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const head = req.method === "HEAD";
    for (const [key, value] of Object.entries(API_VERSION_HEADER)) res.setHeader(key, value);
    const record = recordRequest(logger, req, res);
    const dispatch = async (): Promise<void> => {
      const url = new URL(req.url ?? "/", "http://registry");
      // Routes match the path as sent: URL parsing would resolve `a/../b` into another, valid name.
      const path = (req.url ?? "/").split("?")[0]!;
      const method = req.method ?? "GET";
      if (WRITES.has(method) && options.allowPush !== true) {
        req.resume();
        throw new RegistryError(
          "UNSUPPORTED",
          `${method} is not supported: this registry is read-only`,
          undefined,
          { Allow: "GET, HEAD" },
        );
      }
      const auth = options.auth;
      if (path === "/token" && auth !== undefined && method === "GET") {
        sendJson(res, head, await auth.issueToken(req, url), { "Cache-Control": "no-store" });
        return;
      }
      if (path === "/v2/" || path === "/v2") {
        record.user = await auth?.authorize(req, { type: "registry" });
        sendJson(res, head, {});
        return;
      }
      if (path === "/v2/_catalog") {
        record.user = await auth?.authorize(req, { type: "registry" });
        catalog({ req, res, url, head, name: "", reference: "" });
        return;
      }
      for (const route of routes) {
        const match = route.pattern.exec(path);
        if (match === null) continue;
        const handler = route.methods[method as Method];
        if (handler === undefined) {
          req.resume();
          throw new RegistryError(
            "UNSUPPORTED",
            `${method} is not supported on ${path.slice(0, 300)}`,
            undefined,
            { Allow: Object.keys(route.methods).join(", ") },
          );
        }
        record.user = await auth?.authorize(req, {
          type: "repository",
          name: match[1]!,
          action: WRITES.has(method) ? "push" : "pull",
        });
        if (route.upload === true && WRITES.has(method)) {
          uploadRequests.add(req);
          res.once("close", () => uploadRequests.delete(req));
        }
        await handler({
          req,
          res,
          url,
          head,
          name: match[1]!,
          reference: decodeSegment(match[2] ?? ""),
        });
        return;
      }
      res.writeHead(404, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({ errors: [{ code: "NAME_UNKNOWN", message: `no route for ${path.slice(0, 300)}` }] }),
      );
    };
    dispatch().catch((error: unknown) => {
      // An unread request body (a refused push) is drained so the connection stays usable.
      req.resume();
      if (cutByClose.has(req)) return;
      // A client that went away (a cut upload) chose to: its request line says aborted, no error.
      // The response's socket, not the request's: a body read that stopped early detaches req's.
      const clientGone = res.socket?.destroyed !== false;
      if (!(error instanceof RegistryError) && !clientGone) logInternalError(logger, req, record, error);
      if (res.headersSent) {
        res.destroy(error instanceof Error ? error : undefined);
        return;
      }
      if (error instanceof RegistryError) sendError(res, error, head);
      else {
        sendInternalError(res, error, head);
        options.onInternalError?.(error);
      }
    });
  };

  return Object.assign(handle, {
    close: async (): Promise<void> => {
      for (const req of uploadRequests) {
        cutByClose.add(req);
        req.destroy();
      }
      await uploads.suspendAll();
    },
  });
}
