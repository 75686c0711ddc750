import type { IncomingMessage, ServerResponse } from "node:http";
import { silentLogger, type Logger } from "../oci/index.js";
import type { Store } from "../store/index.js";
import type { Authenticator } from "./auth.js";
import { decodeSegment, sendJson, type Handler } from "./context.js";
import { RegistryError, sendError, sendInternalError } from "./errors.js";
import { listingHandlers } from "./listing.js";
import { pullHandlers } from "./pull.js";
import { pushHandlers } from "./push.js";
import { logInternalError, recordRequest } from "./request-log.js";
import { Uploads } from "./uploads.js";

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

/**
 * The OCI distribution API over the store: the router (`/v2/`, the token endpoint, auth, read-only
 * refusals, upload requests cut on close), one handler per resource beside it — pull.ts (manifests,
 * blobs), listing.ts (tags, catalog, referrers), push.ts (uploads, manifest PUT, deletes). A plain
 * `node:http` handler with no body parsing, so blobs stream from their files whatever their size.
 */
export function createRegistryHandler(store: Store, options: RegistryHandlerOptions = {}): RegistryHandler {
  const maxPage = options.maxPageSize ?? 1000;
  const logger = options.logger ?? silentLogger;

  const { getManifest, getBlob } = pullHandlers(store);
  const { listTags, catalog, listReferrers } = listingHandlers(store, maxPage);
  const uploads = new Uploads(store);
  const push = pushHandlers(store, uploads, options.auth);

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
