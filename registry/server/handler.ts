import type { IncomingMessage, ServerResponse } from "node:http";
import { pipeline } from "node:stream/promises";
import { MAX_MANIFEST_BYTES, isDigest, isValidRepository, isValidTag, type Digest } from "../oci/index.js";
import type { Store } from "../store/index.js";
import { RegistryError, sendError } from "./errors.js";

export interface RegistryHandlerOptions {
  /** Largest page a client may ask for with `n`; also the default page size. */
  maxPageSize?: number;
  /** Told of failures that are not the client's (a damaged store, a disk error). */
  onInternalError?: (error: unknown) => void;
}

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
export function createRegistryHandler(
  store: Store,
  options: RegistryHandlerOptions = {},
): (req: IncomingMessage, res: ServerResponse) => void {
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
    await pipeline(store.blobs.open(reference, range), res);
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

  const routes: { pattern: RegExp; handler: Handler }[] = [
    { pattern: /^\/v2\/(.+)\/manifests\/([^/]+)$/, handler: getManifest },
    { pattern: /^\/v2\/(.+)\/blobs\/([^/]+)$/, handler: getBlob },
    { pattern: /^\/v2\/(.+)\/tags\/list$/, handler: listTags },
  ];

  return (req, res) => {
    const head = req.method === "HEAD";
    for (const [key, value] of Object.entries(API_VERSION_HEADER)) res.setHeader(key, value);
    const handle = async (): Promise<void> => {
      const url = new URL(req.url ?? "/", "http://registry");
      if (req.method !== "GET" && req.method !== "HEAD") {
        throw new RegistryError("UNSUPPORTED", `${req.method} is not supported: this registry serves pulls`);
      }
      if (url.pathname === "/v2/" || url.pathname === "/v2") {
        sendJson(res, head, {});
        return;
      }
      if (url.pathname === "/v2/_catalog") {
        catalog({ req, res, url, head, name: "", reference: "" });
        return;
      }
      for (const route of routes) {
        const match = route.pattern.exec(url.pathname);
        if (match !== null) {
          await route.handler({
            req,
            res,
            url,
            head,
            name: match[1]!,
            reference: decodeURIComponent(match[2] ?? ""),
          });
          return;
        }
      }
      res.writeHead(404, { "Content-Type": "application/json" });
      res.end(
        JSON.stringify({ errors: [{ code: "NAME_UNKNOWN", message: `no route for ${url.pathname}` }] }),
      );
    };
    handle().catch((error: unknown) => {
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
}
