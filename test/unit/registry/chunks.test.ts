import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readChunks, STREAM_CHUNK_BYTES } from "../../../registry/store/index.js";

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-chunks-"));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function fileOf(size: number): Promise<{ path: string; data: Buffer }> {
  const data = randomBytes(size);
  const path = join(dir, `f-${size}-${Math.random().toString(16).slice(2)}`);
  await writeFile(path, data);
  return { path, data };
}

async function collect(chunks: AsyncIterable<Buffer>): Promise<{ data: Buffer; sizes: number[] }> {
  const copies: Buffer[] = [];
  for await (const chunk of chunks) copies.push(Buffer.from(chunk));
  return { data: Buffer.concat(copies), sizes: copies.map((c) => c.byteLength) };
}

describe("readChunks", () => {
  it.each([
    0,
    1,
    STREAM_CHUNK_BYTES - 1,
    STREAM_CHUNK_BYTES,
    STREAM_CHUNK_BYTES + 1,
    3 * STREAM_CHUNK_BYTES + 17,
  ])("reads a file of %i bytes whole, in chunks of at most 4 MiB", async (size) => {
    const { path, data } = await fileOf(size);
    const { data: read, sizes } = await collect(readChunks(path));
    expect(read.equals(data)).toBe(true);
    expect(sizes.every((s) => s > 0 && s <= STREAM_CHUNK_BYTES)).toBe(true);
    expect(sizes.length).toBe(Math.ceil(size / STREAM_CHUNK_BYTES));
  });

  it("reads a byte range", async () => {
    const { path, data } = await fileOf(2 * STREAM_CHUNK_BYTES + 100);
    const start = STREAM_CHUNK_BYTES - 10;
    const length = STREAM_CHUNK_BYTES + 50;
    const { data: read } = await collect(readChunks(path, { start, length }));
    expect(read.equals(data.subarray(start, start + length))).toBe(true);
  });

  it("keeps memory flat: a 40 MiB file goes through no more than three buffers", async () => {
    const { path } = await fileOf(10 * STREAM_CHUNK_BYTES);
    const buffers = new Set<ArrayBufferLike>();
    for await (const chunk of readChunks(path)) buffers.add(chunk.buffer);
    expect(buffers.size).toBeLessThanOrEqual(3);
  });

  it("stops when the signal aborts, and closes the file", async () => {
    const { path } = await fileOf(4 * STREAM_CHUNK_BYTES);
    const controller = new AbortController();
    let seen = 0;
    await expect(
      (async () => {
        for await (const _chunk of readChunks(path, { start: 0 }, controller.signal)) {
          seen++;
          controller.abort();
        }
      })(),
    ).rejects.toThrow();
    expect(seen).toBe(1);
  });
});
