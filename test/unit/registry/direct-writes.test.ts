/**
 * A blob's blocks past its first are written with O_DIRECT (issue 11, point 6): the file holds
 * exactly the bytes given, whatever the chunk sizes, with the first block and the tail written
 * buffered; a failed direct block fails the ingest with a typed error and leaves nothing; a store
 * without direct writes stores the same bytes.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { digestOf } from "../../../registry/oci/index.js";
import { FsBlobStore, writeFully, type WriteChunk } from "../../../registry/store/index.js";
import { expectAirlockError } from "../../helpers/fixtures.js";

const MiB = 1024 * 1024;
const BLOCK = 4 * MiB;

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "airlock-direct-"));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

interface Write {
  handle: FileHandle;
  position: number;
  length: number;
}

async function recordingStore(directWrites: boolean, fail?: (write: Write) => Error | undefined) {
  const writes: Write[] = [];
  const writeChunk: WriteChunk = async (handle, chunk, position) => {
    const write = { handle, position, length: chunk.byteLength };
    writes.push(write);
    const error = fail?.(write);
    if (error !== undefined) throw error;
    await writeFully(handle, chunk, position);
  };
  const blobs = new FsBlobStore(root, { writeChunk, directWrites });
  await blobs.init();
  return { blobs, writes };
}

/** `data` in chunks of `size`, each given before the one before it is written, as import does. */
async function writeInChunks(blobs: FsBlobStore, data: Buffer, size: number) {
  const ingest = await blobs.ingest();
  try {
    let previous: Promise<void> = Promise.resolve();
    for (let offset = 0; offset < data.byteLength; offset += size) {
      const writing = ingest.write(data.subarray(offset, offset + size));
      writing.catch(() => undefined);
      await previous;
      previous = writing;
    }
    await previous;
  } catch (error) {
    await ingest.abort();
    throw error;
  }
  return ingest.commit({ digest: digestOf(data), size: data.byteLength });
}

describe("direct writes of a blob's blocks", () => {
  it("stores exactly the bytes given: first block buffered, whole aligned blocks direct, the tail buffered", async () => {
    const { blobs, writes } = await recordingStore(true);
    const data = randomBytes(3 * BLOCK + 12_345);
    const committed = await writeInChunks(blobs, data, MiB + 7);
    expect(committed).toMatchObject({ created: true, size: data.byteLength });
    expect((await readFile(blobs.path(committed.digest))).equals(data)).toBe(true);
    const buffered = writes[0]!.handle;
    const direct = writes.filter((write) => write.handle !== buffered);
    expect(direct.map((write) => [write.position, write.length])).toEqual([
      [BLOCK, BLOCK],
      [2 * BLOCK, BLOCK],
    ]);
    const bufferedEnd = Math.max(
      ...writes
        .filter((write) => write.handle === buffered && write.position < BLOCK)
        .map((w) => w.position + w.length),
    );
    expect(bufferedEnd).toBe(BLOCK);
    expect(writes.at(-1)).toMatchObject({ handle: buffered, position: 3 * BLOCK, length: 12_345 });
    expect(await readdir(blobs.ingestDir)).toEqual([]);
  });

  it("writes a blob of one block or less through the buffered handle alone", async () => {
    const { blobs, writes } = await recordingStore(true);
    const data = randomBytes(BLOCK);
    const committed = await writeInChunks(blobs, data, 3 * MiB);
    expect((await readFile(blobs.path(committed.digest))).equals(data)).toBe(true);
    expect(new Set(writes.map((write) => write.handle)).size).toBe(1);
  });

  it("stores the same bytes with direct writes off", async () => {
    const { blobs, writes } = await recordingStore(false);
    const data = randomBytes(2 * BLOCK + 1);
    const committed = await writeInChunks(blobs, data, 4 * MiB);
    expect((await readFile(blobs.path(committed.digest))).equals(data)).toBe(true);
    expect(new Set(writes.map((write) => write.handle)).size).toBe(1);
  });

  it("fails the ingest with STORE_DISK_FULL when a direct block gets ENOSPC, leaving no file and no blob", async () => {
    const enospc = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
    const { blobs } = await recordingStore(true, (write) =>
      write.position === 2 * BLOCK ? enospc : undefined,
    );
    const data = randomBytes(4 * BLOCK);
    await expectAirlockError(writeInChunks(blobs, data, 4 * MiB), "STORE_DISK_FULL");
    expect(await readdir(blobs.ingestDir)).toEqual([]);
    expect(await blobs.stat(digestOf(data))).toBeUndefined();
  });
});
