import { MAX_MANIFEST_BYTES, isDigest, isValidTag, type Digest } from "../oci/index.js";
import type { Store } from "../store/index.js";
import { checkDigest, checkName, type Handler } from "./context.js";
import { RegistryError } from "./errors.js";
import { sendFileRange } from "./send.js";

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

/** The pull side: manifests by tag or digest and blobs by digest, GET and HEAD, Range on blobs. */
export function pullHandlers(store: Store): { getManifest: Handler; getBlob: Handler } {
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

  return { getManifest, getBlob };
}
