import type { IncomingMessage, ServerResponse } from "node:http";
import {
  AirlockError,
  MAX_MANIFEST_BYTES,
  artifactTypeOf,
  childDescriptors,
  digestOf,
  isAirlockError,
  isDigest,
  isIndexMediaType,
  isNonDistributable,
  isValidRepository,
  isValidTag,
  parseDigest,
  parseManifest,
  subjectOf,
  type Descriptor,
  type Digest,
} from "../oci/index.js";
import type { RegistryContent } from "../store/index.js";
import type { Authenticator } from "./auth.js";
import { checkDigest, checkName, type Handler } from "./context.js";
import { RegistryError } from "./errors.js";
import { ChunkOutOfOrder, type Uploads } from "./uploads.js";

export interface PushHandlers {
  startUpload: Handler;
  patchUpload: Handler;
  finishUpload: Handler;
  uploadStatus: Handler;
  cancelUpload: Handler;
  putManifest: Handler;
  deleteManifest: Handler;
  deleteBlob: Handler;
}

const uploadLocation = (name: string, id: string): string => `/v2/${name}/blobs/uploads/${id}`;

/** Where an upload stands, as distribution writes it: the last byte held, and 0-0 when empty. */
const uploadRange = (offset: number): string => `0-${Math.max(0, offset - 1)}`;

function sendUploadState(
  res: ServerResponse,
  name: string,
  id: string,
  offset: number,
  status: number,
): void {
  res.writeHead(status, {
    Location: uploadLocation(name, id),
    "Docker-Upload-UUID": id,
    Range: uploadRange(offset),
    "Content-Length": 0,
  });
  res.end();
}

/** A chunk out of order: the spec's 416, saying where the upload stands; the session goes on. */
function sendOutOfOrder(
  req: IncomingMessage,
  res: ServerResponse,
  name: string,
  id: string,
  offset: number,
): void {
  req.resume();
  res.writeHead(416, { Location: uploadLocation(name, id), Range: uploadRange(offset), "Content-Length": 0 });
  res.end();
}

function sendBlobCreated(res: ServerResponse, name: string, digest: Digest): void {
  res.writeHead(201, {
    Location: `/v2/${name}/blobs/${digest}`,
    "Docker-Content-Digest": digest,
    "Content-Length": 0,
  });
  res.end();
}

function sendAccepted(res: ServerResponse): void {
  res.writeHead(202, { "Content-Length": 0 });
  res.end();
}

/** Where a chunk starts, from its `Content-Range: start-end`; undefined without one. */
function chunkStart(req: IncomingMessage): number | undefined {
  const range = req.headers["content-range"];
  if (range === undefined) return undefined;
  const match = /^(?:bytes )?(\d+)-(\d+)$/.exec(range);
  if (match === null) {
    throw new RegistryError("BLOB_UPLOAD_INVALID", `Content-Range ${JSON.stringify(range)} is not start-end`);
  }
  return Number(match[1]);
}

async function readManifestBody(req: IncomingMessage): Promise<Buffer> {
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
}

/** Store refusals (a bundle's image, a blob in use) become the spec's DENIED. */
async function denyInUse<T>(action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (isAirlockError(error, ["IN_USE_BY_BUNDLE", "BLOB_IN_USE"])) {
      throw new RegistryError("DENIED", error.message, { hint: error.hint });
    }
    throw error;
  }
}

/**
 * The push side of the distribution API: uploads (monolithic, chunked, mount), manifest PUT, deletes.
 * Blobs belong to repositories: a completed upload links its blob to the repository it went to, a
 * mount links one the `from` repository holds (and the caller may pull), a manifest may name only
 * blobs of its own repository, and a blob DELETE unlinks it from that repository alone.
 */
export function pushHandlers(
  store: RegistryContent,
  uploads: Uploads,
  auth: Authenticator | undefined,
): PushHandlers {
  /** A mount needs the blob in `from` and pull access there; otherwise the client uploads instead. */
  const mount = async (
    req: IncomingMessage,
    name: string,
    digest: Digest,
    from: string | null,
  ): Promise<boolean> => {
    const source = from ?? name;
    if (!isValidRepository(source)) return false;
    if (source !== name && auth !== undefined) {
      try {
        await auth.authorize(req, { type: "repository", name: source, action: "pull" });
      } catch (error) {
        if (error instanceof RegistryError) return false;
        throw error;
      }
    }
    return store.mountBlob(source, name, digest);
  };

  const startUpload: Handler = async ({ req, res, url, name }) => {
    checkName(name);
    const mounted = url.searchParams.get("mount");
    if (
      mounted !== null &&
      isDigest(mounted) &&
      (await mount(req, name, mounted, url.searchParams.get("from")))
    ) {
      req.resume();
      sendBlobCreated(res, name, mounted);
      return;
    }
    const digest = url.searchParams.get("digest");
    if (digest !== null) checkDigest(digest);
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
    const start = chunkStart(req);
    try {
      sendUploadState(res, name, reference, await uploads.append(name, reference, req, start), 202);
    } catch (error) {
      if (!(error instanceof ChunkOutOfOrder)) throw error;
      sendOutOfOrder(req, res, name, reference, error.offset);
    }
  };

  const finishUpload: Handler = async ({ req, res, url, name, reference }) => {
    checkName(name);
    const start = chunkStart(req);
    try {
      const digest = await uploads.finish(name, reference, url.searchParams.get("digest"), req, start);
      sendBlobCreated(res, name, digest);
    } catch (error) {
      if (!(error instanceof ChunkOutOfOrder)) throw error;
      sendOutOfOrder(req, res, name, reference, error.offset);
    }
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

  /** An index's children must be manifests of the repository; an image's blobs must be linked to it. */
  const checkChild = async (name: string, index: boolean, child: Descriptor): Promise<void> => {
    if (!index && isNonDistributable(child)) return;
    const size = index
      ? store.getManifest(name, child.digest)?.size
      : store.hasBlob(name, child.digest)
        ? (await store.blobs.stat(child.digest))?.size
        : undefined;
    if (size === child.size) return;
    throw new RegistryError(
      "MANIFEST_BLOB_UNKNOWN",
      size === undefined
        ? `${child.digest} is not in ${name}`
        : `${child.digest} is ${size} bytes, the manifest says ${child.size}`,
      { digest: child.digest },
    );
  };

  /** The tags a push names: a tag reference, and `?tag=` on a push by digest (each answered as OCI-Tag). */
  const tagsOf = (reference: string, url: URL): string[] => {
    const tags = [...(isDigest(reference) ? [] : [reference]), ...url.searchParams.getAll("tag")];
    const invalid = tags.find((tag) => !isValidTag(tag));
    if (invalid !== undefined)
      throw new RegistryError("MANIFEST_INVALID", `invalid tag ${JSON.stringify(invalid.slice(0, 200))}`);
    return [...new Set(tags)];
  };

  const putManifest: Handler = async ({ req, res, url, name, reference }) => {
    checkName(name);
    if (!isDigest(reference) && !isValidTag(reference)) {
      req.resume();
      throw new RegistryError(
        "MANIFEST_INVALID",
        `invalid reference ${JSON.stringify(reference.slice(0, 200))}`,
      );
    }
    const tags = tagsOf(reference, url);
    const bytes = await readManifestBody(req);
    const contentType = req.headers["content-type"]?.split(";")[0]?.trim();
    let parsed;
    try {
      parsed = parseManifest(bytes, contentType, `${name}:${reference}`);
    } catch (error) {
      if (error instanceof AirlockError) throw new RegistryError("MANIFEST_INVALID", error.message);
      throw error;
    }
    // Pushed by digest, a manifest is stored under that digest's algorithm (sha512 too).
    const digest = digestOf(bytes, isDigest(reference) ? parseDigest(reference).algorithm : "sha256");
    if (isDigest(reference) && reference !== digest) {
      throw new RegistryError("DIGEST_INVALID", `the manifest hashes to ${digest}, not ${reference}`);
    }
    const index = isIndexMediaType(parsed.mediaType);
    for (const child of childDescriptors(parsed)) await checkChild(name, index, child);
    await store.blobs.put([bytes], { digest });
    const subject = subjectOf(parsed);
    const record = {
      repository: name,
      digest,
      mediaType: parsed.mediaType,
      size: bytes.byteLength,
      subject: subject?.digest,
      artifactType: artifactTypeOf(parsed),
    };
    store.putManifest(record, parsed);
    for (const tag of tags) await store.putTag(name, tag, digest);
    res.writeHead(201, {
      Location: `/v2/${name}/manifests/${digest}`,
      "Docker-Content-Digest": digest,
      "Content-Length": 0,
      ...(subject === undefined ? {} : { "OCI-Subject": subject.digest }),
      ...(isDigest(reference) && tags.length > 0 ? { "OCI-Tag": tags } : {}),
    });
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
    const digest = checkDigest(reference);
    if (!(await denyInUse(() => store.deleteBlob(name, digest)))) {
      throw new RegistryError("BLOB_UNKNOWN", `blob ${digest} is not in ${name}`);
    }
    sendAccepted(res);
  };

  return {
    startUpload,
    patchUpload,
    finishUpload,
    uploadStatus,
    cancelUpload,
    putManifest,
    deleteManifest,
    deleteBlob,
  };
}
