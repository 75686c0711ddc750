import type { IncomingMessage, ServerResponse } from "node:http";
import {
  AirlockError,
  MAX_MANIFEST_BYTES,
  childDescriptors,
  digestOf,
  isDigest,
  isIndexMediaType,
  isValidRepository,
  isValidTag,
  MediaType,
  artifactTypeOf,
  parseManifest,
  subjectOf,
  type Digest,
} from "../oci/index.js";
import type { Store } from "../store/index.js";
import { RegistryError, sendError } from "./errors.js";
import { ChunkOutOfOrder, Uploads } from "./uploads.js";
import { sendFileRange } from "./send.js";
import type { Authenticator } from "./auth.js";

export interface RegistryHandlerOptions {
  /** Largest page a client may ask for with `n`; also the default page size. */
  maxPageSize?: number;
  /** Told of failures that are not the client's (a damaged store, a disk error). */
  onInternalError?: (error: unknown) => void;
  /** Accept pushes (uploads, manifest PUTs). Off unless the caller authenticates writers. */
  allowPush?: boolean;
  /** Who may pull and push; without it every client may do what the registry allows. */
  auth?: Authenticator | undefined;
}

/** A plain `node:http` request handler, and `close()`: cut uploads in flight, keeping them resumable. */
export type RegistryHandler = ((req: IncomingMessage, res: ServerResponse) => void) & {
  close(): Promise<void>;
};

type Handler = (context: RequestContext) => Promise<void>;

interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  head: boolean;
  name: string;
  reference: string;
}

const API_VERSION_HEADER = { "Docker-Distribution-API-Version": "registry/2.0" };

function checkName(name: string): void {
  if (!isValidRepository(name)) {
    throw new RegistryError("NAME_INVALID", `invalid repository name ${JSON.stringify(name.slice(0, 300))}`);
  }
}

function pageSize(url: URL, max: number): number {
  const n = url.searchParams.get("n");
  if (n === null) return max;
  const value = Number(n);
  if (!Number.isInteger(value) || value < 0)
    throw new RegistryError("UNSUPPORTED", `n=${n} is not a page size`);
  return Math.min(value, max);
}

/** RFC 5988 Link to the next page, as the spec asks when a page is full. */
function nextLink(url: URL, n: number, last: string): string {
  const next = new URL(url.pathname, "http://registry");
  next.searchParams.set("n", String(n));
  next.searchParams.set("last", last);
  return `<${next.pathname}${next.search}>; rel="next"`;
}

function sendJson(
  res: ServerResponse,
  head: boolean,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value);
  res.writeHead(200, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    ...headers,
  });
  res.end(head ? undefined : body);
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
 * The OCI distribution API over the store, pull side: `/v2/`, manifests and blobs by tag or digest
 * (GET and HEAD, Range on blobs), tags and catalog with paging. A plain `node:http` handler with no
 * body parsing, so blobs stream from their files whatever their size.
 */
export function createRegistryHandler(store: Store, options: RegistryHandlerOptions = {}): RegistryHandler {
  const maxPage = options.maxPageSize ?? 1000;

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
    if (!isDigest(reference))
      throw new RegistryError("DIGEST_INVALID", `invalid digest ${JSON.stringify(reference.slice(0, 200))}`);
    const info = await store.blobs.stat(reference);
    if (info === undefined) throw new RegistryError("BLOB_UNKNOWN", `blob ${reference} is unknown`);
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
    await sendFileRange(res, store.blobs.path(reference), from, (range?.end ?? info.size - 1) - from + 1);
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

  const uploadLocation = (name: string, id: string): string => `/v2/${name}/blobs/uploads/${id}`;

  /** Where an upload stands, as distribution writes it: the last byte held, and 0-0 when empty. */
  const uploadRange = (offset: number): string => `0-${Math.max(0, offset - 1)}`;

  const sendUploadState = (
    res: ServerResponse,
    name: string,
    id: string,
    offset: number,
    status: number,
  ): void => {
    res.writeHead(status, {
      Location: uploadLocation(name, id),
      "Docker-Upload-UUID": id,
      Range: uploadRange(offset),
      "Content-Length": 0,
    });
    res.end();
  };

  const sendBlobCreated = (res: ServerResponse, name: string, digest: Digest): void => {
    res.writeHead(201, {
      Location: `/v2/${name}/blobs/${digest}`,
      "Docker-Content-Digest": digest,
      "Content-Length": 0,
    });
    res.end();
  };

  const startUpload: Handler = async ({ req, res, url, name }) => {
    checkName(name);
    const mount = url.searchParams.get("mount");
    if (mount !== null && isDigest(mount) && (await store.blobs.stat(mount)) !== undefined) {
      req.resume();
      sendBlobCreated(res, name, mount);
      return;
    }
    const digest = url.searchParams.get("digest");
    if (digest !== null && !isDigest(digest)) {
      throw new RegistryError("DIGEST_INVALID", `invalid digest ${JSON.stringify(digest.slice(0, 200))}`);
    }
    const id = await uploads.start(name);
    if (digest !== null) {
      sendBlobCreated(res, name, await uploads.finish(name, id, digest, req));
      return;
    }
    req.resume();
    sendUploadState(res, name, id, 0, 202);
  };

  const patchUpload: Handler = async ({ req, res, name, reference }) => {
    checkName(name);
    const range = req.headers["content-range"];
    let start: number | undefined;
    if (range !== undefined) {
      const match = /^(?:bytes )?(\d+)-(\d+)$/.exec(range);
      if (match === null) {
        throw new RegistryError(
          "BLOB_UPLOAD_INVALID",
          `Content-Range ${JSON.stringify(range)} is not start-end`,
        );
      }
      start = Number(match[1]);
    }
    try {
      sendUploadState(res, name, reference, await uploads.append(name, reference, req, start), 202);
    } catch (error) {
      if (!(error instanceof ChunkOutOfOrder)) throw error;
      // Out of order: the spec's 416, saying where the upload stands.
      req.resume();
      res.writeHead(416, {
        Location: uploadLocation(name, reference),
        Range: uploadRange(error.offset),
        "Content-Length": 0,
      });
      res.end();
    }
  };

  const finishUpload: Handler = async ({ req, res, url, name, reference }) => {
    checkName(name);
    sendBlobCreated(res, name, await uploads.finish(name, reference, url.searchParams.get("digest"), req));
  };

  const uploadStatus: Handler = async ({ res, name, reference }) => {
    checkName(name);
    sendUploadState(res, name, reference, await uploads.offset(name, reference), 204);
  };

  const cancelUpload: Handler = async ({ res, name, reference }) => {
    checkName(name);
    await uploads.cancel(name, reference);
    res.writeHead(204, { "Content-Length": 0 });
    res.end();
  };

  const readManifestBody = async (req: IncomingMessage): Promise<Buffer> => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req as AsyncIterable<Buffer>) {
      size += chunk.byteLength;
      if (size > MAX_MANIFEST_BYTES) {
        req.resume();
        throw new RegistryError("MANIFEST_INVALID", `manifest is over the ${MAX_MANIFEST_BYTES} byte limit`);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  };

  const putManifest: Handler = async ({ req, res, name, reference }) => {
    checkName(name);
    if (!isDigest(reference) && !isValidTag(reference)) {
      req.resume();
      throw new RegistryError(
        "MANIFEST_INVALID",
        `invalid reference ${JSON.stringify(reference.slice(0, 200))}`,
      );
    }
    const bytes = await readManifestBody(req);
    const contentType = req.headers["content-type"]?.split(";")[0]?.trim();
    let parsed;
    try {
      parsed = parseManifest(bytes, contentType, `${name}:${reference}`);
    } catch (error) {
      if (error instanceof AirlockError) throw new RegistryError("MANIFEST_INVALID", error.message);
      throw error;
    }
    const digest = digestOf(bytes);
    if (isDigest(reference) && reference !== digest) {
      throw new RegistryError("DIGEST_INVALID", `the manifest hashes to ${digest}, not ${reference}`);
    }
    for (const child of childDescriptors(parsed)) {
      const size = isIndexMediaType(parsed.mediaType)
        ? store.getManifest(name, child.digest)?.size
        : (await store.blobs.stat(child.digest))?.size;
      if (size !== child.size) {
        throw new RegistryError(
          "MANIFEST_BLOB_UNKNOWN",
          size === undefined
            ? `${child.digest} is not in ${name}`
            : `${child.digest} is ${size} bytes, the manifest says ${child.size}`,
          { digest: child.digest },
        );
      }
    }
    await store.blobs.put([bytes], { digest });
    const subject = subjectOf(parsed);
    store.putManifest({
      repository: name,
      digest,
      mediaType: parsed.mediaType,
      size: bytes.byteLength,
      subject: subject?.digest,
      artifactType: artifactTypeOf(parsed),
    });
    if (!isDigest(reference)) await store.putTag(name, reference, digest);
    res.writeHead(201, {
      Location: `/v2/${name}/manifests/${digest}`,
      "Docker-Content-Digest": digest,
      "Content-Length": 0,
      ...(subject === undefined ? {} : { "OCI-Subject": subject.digest }),
    });
    res.end();
  };

  /** Store refusals (a bundle's image, a blob in use) become the spec's DENIED. */
  const denyInUse = async <T>(action: () => Promise<T>): Promise<T> => {
    try {
      return await action();
    } catch (error) {
      if (error instanceof AirlockError && ["IN_USE_BY_BUNDLE", "BLOB_IN_USE"].includes(error.code)) {
        throw new RegistryError("DENIED", error.message, { hint: error.hint });
      }
      throw error;
    }
  };

  const sendAccepted = (res: ServerResponse): void => {
    res.writeHead(202, { "Content-Length": 0 });
    res.end();
  };

  const deleteManifest: Handler = async ({ res, name, reference }) => {
    checkName(name);
    const deleted = isDigest(reference)
      ? await denyInUse(() => store.deleteManifest(name, reference))
      : isValidTag(reference) && (await denyInUse(() => store.deleteTag(name, reference)));
    if (!deleted)
      throw new RegistryError("MANIFEST_UNKNOWN", `manifest ${reference.slice(0, 200)} is not in ${name}`);
    sendAccepted(res);
  };

  const deleteBlob: Handler = async ({ res, name, reference }) => {
    checkName(name);
    if (!isDigest(reference))
      throw new RegistryError("DIGEST_INVALID", `invalid digest ${JSON.stringify(reference.slice(0, 200))}`);
    if (!(await denyInUse(() => store.deleteBlob(reference)))) {
      throw new RegistryError("BLOB_UNKNOWN", `blob ${reference} is unknown`);
    }
    sendAccepted(res);
  };

  /** GET /v2/<name>/referrers/<digest>: an index of the manifests whose subject it is, filterable. */
  const listReferrers: Handler = ({ res, head, url, name, reference }) => {
    checkName(name);
    if (!isDigest(reference))
      throw new RegistryError("DIGEST_INVALID", `invalid digest ${JSON.stringify(reference.slice(0, 200))}`);
    const wanted = url.searchParams.get("artifactType");
    const referrers = store
      .listReferrers(name, reference)
      .filter((row) => wanted === null || row.artifactType === wanted)
      .map((row) => ({
        mediaType: row.mediaType,
        digest: row.digest,
        size: row.size,
        ...(row.artifactType === undefined ? {} : { artifactType: row.artifactType }),
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
    { pattern: /^\/v2\/(.+)\/blobs\/uploads\/?$/, methods: { POST: startUpload }, upload: true },
    {
      pattern: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
      methods: { PATCH: patchUpload, PUT: finishUpload, GET: uploadStatus, DELETE: cancelUpload },
      upload: true,
    },
    {
      pattern: /^\/v2\/(.+)\/manifests\/([^/]+)$/,
      methods: { GET: getManifest, HEAD: getManifest, PUT: putManifest, DELETE: deleteManifest },
    },
    { pattern: /^\/v2\/(.+)\/blobs\/([^/]+)$/, methods: { GET: getBlob, HEAD: getBlob, DELETE: deleteBlob } },
    { pattern: /^\/v2\/(.+)\/referrers\/([^/]+)$/, methods: { GET: listReferrers, HEAD: listReferrers } },
    { pattern: /^\/v2\/(.+)\/tags\/list$/, methods: { GET: listTags, HEAD: listTags } },
  ];

  /** Requests streaming a body into an upload: cut on close, so their sessions stay resumable. */
  const uploadRequests = new Set<IncomingMessage>();
  const cutByClose = new WeakSet<IncomingMessage>();

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const head = req.method === "HEAD";
    for (const [key, value] of Object.entries(API_VERSION_HEADER)) res.setHeader(key, value);
    const dispatch = async (): Promise<void> => {
      const url = new URL(req.url ?? "/", "http://registry");
      // Routes match the path as sent: URL parsing would resolve `a/../b` into another, valid name.
      const path = (req.url ?? "/").split("?")[0]!;
      const method = req.method ?? "GET";
      if (WRITES.has(method) && options.allowPush !== true) {
        req.resume();
        throw new RegistryError("UNSUPPORTED", `${method} is not supported: this registry is read-only`);
      }
      const auth = options.auth;
      if (path === "/token" && auth !== undefined && method === "GET") {
        sendJson(res, head, await auth.issueToken(req, url), { "Cache-Control": "no-store" });
        return;
      }
      if (path === "/v2/" || path === "/v2") {
        await auth?.authorize(req, { type: "registry" });
        sendJson(res, head, {});
        return;
      }
      if (path === "/v2/_catalog") {
        await auth?.authorize(req, { type: "registry" });
        catalog({ req, res, url, head, name: "", reference: "" });
        return;
      }
      for (const route of routes) {
        const match = route.pattern.exec(path);
        if (match === null) continue;
        const handler = route.methods[method as Method];
        if (handler === undefined) {
          req.resume();
          throw new RegistryError("UNSUPPORTED", `${method} is not supported on ${path.slice(0, 300)}`);
        }
        await auth?.authorize(req, {
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
          reference: decodeURIComponent(match[2] ?? ""),
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
      if (res.headersSent) {
        res.destroy(error instanceof Error ? error : undefined);
        return;
      }
      if (error instanceof RegistryError) sendError(res, error, head);
      else {
        // Not the client's fault: the spec's UNKNOWN with a 500, the cause left to the server's logs.
        res.writeHead(500, { "Content-Type": "application/json" });
        res.end(
          head ? undefined : JSON.stringify({ errors: [{ code: "UNKNOWN", message: "internal error" }] }),
        );
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
