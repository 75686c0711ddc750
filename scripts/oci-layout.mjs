// What scripts/fixtures.mjs and scripts/msgbroker-image.mjs both write: an OCI image layout on disk
// (blobs named by their sha256, index.json, oci-layout) and image layers made of a deterministic ustar
// stream in deterministic gzip framing. The same entries and options give the same bytes (for a given
// Node zlib build), however the input happens to be read.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Buffer } from "node:buffer";
import { pipeline } from "node:stream/promises";
import { constants as zlibConstants, crc32, deflateRawSync } from "node:zlib";

export const MediaType = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};
export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";

const TAR_BLOCK = 512;
// Entries whose bytes are read from a file or generated come in pieces of this size.
const READ_CHUNK = 1024 * 1024;

/** "os/architecture[/variant]", e.g. "linux/arm64/v8". */
export function platformName(platform) {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
}

// ---- OCI image layout -------------------------------------------------------------------

/**
 * The layout in `dir`: made if missing (blobs/sha256 and the oci-layout marker); an existing one keeps
 * what it holds, and must be of imageLayoutVersion 1.0.0.
 */
export async function openLayout(dir) {
  const blobsDir = path.join(dir, "blobs", "sha256");
  await fs.mkdir(blobsDir, { recursive: true });
  const marker = path.join(dir, "oci-layout");
  try {
    const { imageLayoutVersion } = JSON.parse(await fs.readFile(marker, "utf8"));
    if (imageLayoutVersion !== "1.0.0")
      throw new Error(`${marker}: unsupported imageLayoutVersion ${imageLayoutVersion}`);
  } catch (error) {
    if (error.code !== "ENOENT") throw error;
    await writeAtomically(marker, JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  }
  return { dir, blobsDir };
}

/** Writes through a temp file and a rename, so a killed run never leaves a half-written file. */
async function writeAtomically(file, content) {
  const temp = `${file}.partial-${process.pid}`;
  await fs.writeFile(temp, content);
  await fs.rename(temp, file);
}

/** `value` as compact JSON in a blob; returns its descriptor. */
export async function writeJsonBlob(layout, mediaType, value) {
  const content = Buffer.from(JSON.stringify(value));
  const hex = createHash("sha256").update(content).digest("hex");
  await writeAtomically(path.join(layout.blobsDir, hex), content);
  return { mediaType, digest: `sha256:${hex}`, size: content.length };
}

/**
 * An image of `layers` (what writeLayerBlob returned), bottom first: its config (`created`, the
 * platform, the runtime `config`, the layers' diff_ids, `history`) and its manifest. Returns both
 * descriptors.
 */
export async function writeImage(layout, { created, platform, config, history, layers }) {
  const configDescriptor = await writeJsonBlob(layout, MediaType.config, {
    created,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config,
    rootfs: { type: "layers", diff_ids: layers.map((layer) => layer.diffId) },
    history,
  });
  const manifest = await writeJsonBlob(layout, MediaType.manifest, {
    schemaVersion: 2,
    mediaType: MediaType.manifest,
    config: configDescriptor,
    layers: layers.map((layer) => layer.descriptor),
  });
  return { manifest, config: configDescriptor };
}

/**
 * index.json with `descriptors` (each named by its ref.name annotation) in place of any entry of the
 * same ref, after the entries of other refs, which are kept.
 */
export async function addToIndex(layout, descriptors) {
  const file = path.join(layout.dir, "index.json");
  let index = { schemaVersion: 2, mediaType: MediaType.index, manifests: [] };
  try {
    index = JSON.parse(await fs.readFile(file, "utf8"));
  } catch (error) {
    if (error.code !== "ENOENT") throw error;
  }
  const refs = new Set(descriptors.map((descriptor) => descriptor.annotations[REF_NAME_ANNOTATION]));
  index.manifests = [
    ...(index.manifests ?? []).filter((entry) => !refs.has(entry.annotations?.[REF_NAME_ANNOTATION])),
    ...descriptors,
  ];
  await writeAtomically(file, JSON.stringify(index));
}

/** Bytes of every blob in the layout. */
export async function blobBytes(layout) {
  let total = 0;
  for (const name of await fs.readdir(layout.blobsDir)) {
    if (!name.startsWith(".")) total += (await fs.stat(path.join(layout.blobsDir, name))).size;
  }
  return total;
}

let partials = 0;

/**
 * Streams tar → gzip → blob, hashing both sides, so no layer is ever held in memory. `level` is the
 * deflate level; `mtime` (seconds) is every entry's; with `chunkSize`, the tar stream is cut into
 * pieces of exactly that size before deflating, so the gzip bytes never depend on how entries were read.
 */
export async function writeLayerBlob(layout, entries, { level, mtime = 0, chunkSize }) {
  const diffIdHash = createHash("sha256");
  const digestHash = createHash("sha256");
  let tarSize = 0;
  const counted = async function* (chunks) {
    for await (const chunk of chunks) {
      tarSize += chunk.length;
      yield chunk;
    }
  };
  const tar = tarChunks(entries, mtime);
  const partial = path.join(layout.blobsDir, `.partial-${process.pid}-${partials++}`);
  try {
    await pipeline(
      hashed(
        gzipChunks(
          counted(hashed(chunkSize === undefined ? tar : rechunk(tar, chunkSize), diffIdHash)),
          level,
        ),
        digestHash,
      ),
      createWriteStream(partial),
    );
    const hex = digestHash.digest("hex");
    await fs.rename(partial, path.join(layout.blobsDir, hex));
    const { size } = await fs.stat(path.join(layout.blobsDir, hex));
    return {
      descriptor: { mediaType: MediaType.layer, digest: `sha256:${hex}`, size },
      diffId: `sha256:${diffIdHash.digest("hex")}`,
      tarSize,
    };
  } catch (error) {
    await fs.rm(partial, { force: true });
    throw error;
  }
}

async function* hashed(chunks, hash) {
  for await (const chunk of chunks) {
    hash.update(chunk);
    yield chunk;
  }
}

/** Cuts a byte stream into chunks of exactly `size` bytes (the last one shorter). */
async function* rechunk(chunks, size) {
  let pending = [];
  let pendingBytes = 0;
  for await (let chunk of chunks) {
    while (pendingBytes + chunk.length >= size) {
      const take = size - pendingBytes;
      pending.push(chunk.subarray(0, take));
      yield Buffer.concat(pending, size);
      chunk = chunk.subarray(take);
      pending = [];
      pendingBytes = 0;
    }
    if (chunk.length > 0) {
      pending.push(chunk);
      pendingBytes += chunk.length;
    }
  }
  if (pendingBytes > 0) yield Buffer.concat(pending, pendingBytes);
}

// ---- gzip -------------------------------------------------------------------------------

// mtime 0, no name, OS unknown.
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);

// Gzip framing around raw deflate of each chunk on its own, sync-flushed, then an empty final
// block: the bytes depend only on the chunks. (Node's gzip stream decides by timing whether its
// last chunk is deflated with Z_FINISH, which changes the block layout of stored output.)
async function* gzipChunks(chunks, level) {
  yield GZIP_HEADER;
  let crc = 0;
  let length = 0;
  for await (const chunk of chunks) {
    crc = crc32(chunk, crc);
    length += chunk.length;
    yield deflateRawSync(chunk, { level, finishFlush: zlibConstants.Z_SYNC_FLUSH });
  }
  yield deflateRawSync(Buffer.alloc(0), { level });
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(length % 2 ** 32, 4);
  yield trailer;
}

// ---- tar --------------------------------------------------------------------------------

/**
 * The length of the ustar stream of `entries` (each with a `size`): a header block per entry, its
 * bytes padded to whole blocks, then two zero blocks.
 */
export function tarLength(entries) {
  return entries.reduce((sum, entry) => sum + TAR_BLOCK + roundUpToBlock(entry.size), 2 * TAR_BLOCK);
}

/**
 * A ustar stream of `entries`: { name, size, type ("0" file, "5" directory; default "0"), mode
 * (default 0o644), uid, gid (default 0), uname, gname (default none) } and the bytes of a file from
 * one of `content` (a Buffer), `from` (a path, read in pieces) or `fill` (called with each piece to
 * fill, in order). Every header has `mtime`; two zero blocks end the stream.
 */
async function* tarChunks(entries, mtime) {
  for (const entry of entries) {
    yield ustarHeader(entry, mtime);
    if (entry.content !== undefined) {
      yield entry.content;
    } else if (entry.from !== undefined) {
      yield* fileChunks(entry.from, entry.size);
    } else if (entry.fill !== undefined) {
      for (let done = 0; done < entry.size; done += READ_CHUNK) {
        yield entry.fill(Buffer.allocUnsafe(Math.min(READ_CHUNK, entry.size - done)));
      }
    }
    const padding = roundUpToBlock(entry.size) - entry.size;
    if (padding > 0) yield Buffer.alloc(padding);
  }
  yield Buffer.alloc(2 * TAR_BLOCK);
}

/** The bytes of `file`, which must still be `size` bytes long. */
async function* fileChunks(file, size) {
  let read = 0;
  const handle = await fs.open(file, "r");
  try {
    const buffer = Buffer.alloc(READ_CHUNK);
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, read);
      if (bytesRead === 0) break;
      read += bytesRead;
      if (read > size) break;
      // A copy: the buffer is reused for the next read while this chunk is still downstream.
      yield Buffer.from(buffer.subarray(0, bytesRead));
    }
  } finally {
    await handle.close();
  }
  if (read !== size) throw new Error(`${file} changed size while being packed`);
}

function ustarHeader({ name, type = "0", mode = 0o644, uid = 0, gid = 0, uname, gname, size }, mtime) {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name longer than 100 bytes: ${name}`);
  const header = Buffer.alloc(TAR_BLOCK);
  header.write(name, 0);
  writeOctal(header, 100, 8, mode);
  writeOctal(header, 108, 8, uid);
  writeOctal(header, 116, 8, gid);
  writeOctal(header, 124, 12, size);
  writeOctal(header, 136, 12, mtime);
  header.fill(" ", 148, 156);
  header.write(type, 156);
  header.write("ustar\0" + "00", 257);
  if (uname !== undefined) header.write(uname, 265);
  if (gname !== undefined) header.write(gname, 297);
  writeOctal(header, 329, 8, 0);
  writeOctal(header, 337, 8, 0);
  // The checksum is six octal digits, NUL, then the space already there.
  writeOctal(
    header,
    148,
    7,
    header.reduce((sum, byte) => sum + byte, 0),
  );
  return header;
}

function writeOctal(buffer, offset, width, value) {
  buffer.write(`${value.toString(8).padStart(width - 1, "0")}\0`, offset, width, "ascii");
}

function roundUpToBlock(bytes) {
  return Math.ceil(bytes / TAR_BLOCK) * TAR_BLOCK;
}
