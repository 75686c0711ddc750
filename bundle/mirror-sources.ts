import { open } from "node:fs/promises";
import {
  AirlockError,
  Digester,
  MAX_MANIFEST_BYTES,
  digestOf,
  parseDigest,
  parseReference,
  type Descriptor,
  type Digest,
} from "../registry/oci/index.js";
import { allocateReadBuffer, type Store } from "../registry/store/index.js";
import { BLOB_DIR } from "./format.js";
import type { MirrorSource } from "./mirror.js";
import { partSpans, readBundleAt } from "./parts.js";
import { indexTar } from "./tar.js";
import { checkSignature, readBundleHead } from "./verify.js";

/** 1 MiB reads: few enough syscalls, and three of them per blob in flight stay in the CPU's caches. */
const RING_CHUNK_BYTES = 1024 * 1024;

/**
 * A blob's bytes from `offset` on, out of `spans` of files holding the whole blob, read into a ring of
 * three buffers of its own and hashed on the way — the bytes before `offset` too, read but not
 * yielded, so a resumed upload is checked whole; the last chunk is held back until the digest
 * matched, so a target never commits a wrong blob.
 * Reading 1 GiB through fresh buffers (createReadStream) costs ~0.9 s of CPU on page faults and makes
 * V8 run a major GC per few MiB for the external memory; reused buffers cost ~0.1 s (bench/mirror).
 * The undici client pulls the next chunk of an async-iterable body only after socket.write took the
 * previous one (or after 'drain'), so a buffer is refilled only once the socket no longer needs it:
 * at most the tail of the last chunk written can still be queued, and the ring never refills it.
 */
async function* ringChunks(
  spans: { path: string; start: number; length: number }[],
  descriptor: Descriptor,
  offset: number,
  where: string,
): AsyncGenerator<Buffer> {
  const digester = new Digester(parseDigest(descriptor.digest).algorithm);
  // Fresh per blob (not the store's shared pool): a buffer goes back to nobody while a socket may hold it.
  const ring = [0, 1, 2].map(() => allocateReadBuffer(RING_CHUNK_BYTES));
  let turn = 0;
  let held: Buffer | undefined;
  let skip = offset;
  for (const span of spans) {
    const handle = await open(span.path, "r");
    try {
      for (let position = span.start, end = span.start + span.length; position < end;) {
        // Bytes before `offset` never leave, so they need no turn of the ring: one buffer serves them.
        const buffer = skip > 0 ? ring[0]! : ring[turn++ % ring.length]!;
        const length = Math.min(buffer.byteLength, end - position, skip > 0 ? skip : Infinity);
        const { bytesRead } = await handle.read(buffer, 0, length, position);
        if (bytesRead === 0) {
          throw new AirlockError("BUNDLE_TRUNCATED", `${span.path} ends before byte ${end}`, {
            where,
            hint: "copy the bundle (every part) again",
          });
        }
        position += bytesRead;
        const chunk = buffer.subarray(0, bytesRead);
        digester.update(chunk);
        if (skip > 0) {
          skip -= bytesRead;
          continue;
        }
        if (held !== undefined) yield held;
        held = chunk;
      }
    } finally {
      await handle.close();
    }
  }
  if (digester.size !== descriptor.size || digester.digest() !== descriptor.digest) {
    throw new AirlockError("BUNDLE_ENTRY_CORRUPT", `blob ${descriptor.digest} does not match its digest`, {
      where,
      hint: "the source is damaged: copy the bundle again, or run `airlock store fsck`",
    });
  }
  if (held !== undefined) yield held;
}

/** Every tagged image of the store. */
export function storeSource(store: Store): MirrorSource {
  return {
    label: store.dataDir,
    images: store.listTags().map((tag) => ({
      ref: `${tag.repository}:${tag.tag}`,
      referrers: store.listReferrers(tag.repository, tag.digest).map((referrer) => referrer.digest),
      ...tag,
    })),
    manifest: (digest) => store.blobs.readSmall(digest, MAX_MANIFEST_BYTES),
    has: async (digest) => (await store.blobs.stat(digest)) !== undefined,
    blob: (descriptor, offset) => {
      const path = store.blobs.path(descriptor.digest);
      return ringChunks([{ path, start: 0, length: descriptor.size }], descriptor, offset, path);
    },
  };
}

/**
 * A bundle file (or its parts) read in place: its signature checked (against `publicKeyPath` when
 * given), its tar indexed by seeking from header to header, and each blob streamed from its offset
 * and hashed on the way. Nothing is imported or copied.
 */
export async function bundleSource(paths: string[], publicKeyPath?: string): Promise<MirrorSource> {
  const head = await readBundleHead(paths);
  await checkSignature(head, publicKeyPath);
  const { input } = head;
  const entries = await indexTar((position, length) => readBundleAt(input, position, length), input.size);
  const entryOf = (digest: Digest) => entries.get(`${BLOB_DIR}${digest.slice("sha256:".length)}`);
  const missing = (digest: Digest): AirlockError =>
    new AirlockError("BUNDLE_BLOB_MISSING", `the bundle does not carry ${digest}`, {
      where: input.label,
      hint:
        head.metadata.base === undefined
          ? "the bundle is damaged: copy it again"
          : `a delta bundle: mirror its base ${head.metadata.base.name} ${head.metadata.base.version} first`,
    });
  return {
    label: input.label,
    // Named as import names them in the store, so a mirror of the bundle and of the store agree.
    images: head.metadata.images.map((image) => {
      const ref = parseReference(image.ref, `airlock.json images ${image.ref}`);
      return {
        ref: image.ref,
        repository: ref.repository,
        tag: ref.tag ?? "latest",
        digest: image.digest,
        referrers: image.referrers?.map((referrer) => referrer.digest),
      };
    }),
    has: (digest) => entryOf(digest) !== undefined,
    async manifest(digest) {
      const entry = entryOf(digest);
      if (entry === undefined) throw missing(digest);
      if (entry.size > MAX_MANIFEST_BYTES) {
        throw new AirlockError("BUNDLE_ENTRY_CORRUPT", `manifest ${digest} is ${entry.size} bytes`, {
          where: input.label,
        });
      }
      const bytes = await readBundleAt(input, entry.dataOffset, entry.size);
      if (digestOf(bytes) !== digest) {
        throw new AirlockError("BUNDLE_ENTRY_CORRUPT", `manifest ${digest} does not match its digest`, {
          where: `${input.label}: ${entry.name}`,
          hint: "copy the bundle again; `airlock bundle verify` names the damaged part",
        });
      }
      return bytes;
    },
    blob(descriptor, offset) {
      const entry = entryOf(descriptor.digest);
      if (entry === undefined) throw missing(descriptor.digest);
      return ringChunks(
        partSpans(input, entry.dataOffset, entry.size),
        descriptor,
        offset,
        `${input.label}: ${entry.name}`,
      );
    },
  };
}
