/**
 * readChunks reads one chunk ahead while the consumer works on the last (issue 10): a read-ahead that
 * fails meanwhile must reach the consumer at its next step, never surface as an unhandled rejection,
 * which would end a server process.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, open, rm, writeFile, type FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, expect, it, vi } from "vitest";
import { readChunks, STREAM_CHUNK_BYTES } from "../../../registry/store/index.js";

let dir: string;
const unhandled: unknown[] = [];
const record = (reason: unknown): number => unhandled.push(reason);

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-chunks-fail-"));
  process.on("unhandledRejection", record);
});

afterAll(async () => {
  process.off("unhandledRejection", record);
  await rm(dir, { recursive: true, force: true });
});

afterEach(() => {
  vi.restoreAllMocks();
});

it("a read-ahead that fails while the consumer holds a chunk rejects the consumer's next step", async () => {
  const path = join(dir, "blob");
  await writeFile(path, randomBytes(3 * STREAM_CHUNK_BYTES));
  const probe = await open(path, "r");
  const prototype = Object.getPrototypeOf(probe) as FileHandle;
  await probe.close();
  const realRead = Reflect.get(prototype, "read") as (...args: unknown[]) => unknown;
  const eio = Object.assign(new Error("EIO: injected, read"), { code: "EIO" });
  let failed: Promise<never> | undefined;
  let reads = 0;
  vi.spyOn(prototype, "read").mockImplementation(function (this: FileHandle, ...args: unknown[]) {
    if (++reads === 2) return (failed = Promise.reject(eio));
    return Reflect.apply(realRead, this, args) as ReturnType<FileHandle["read"]>;
  });

  const chunks = readChunks(path);
  const first = await chunks.next();
  expect((first.value as Buffer).byteLength).toBe(STREAM_CHUNK_BYTES);
  expect(reads).toBe(2);
  // The consumer is busy (a socket write, say) while the read-ahead fails: one turn of the event loop.
  await failed!.catch(() => undefined);
  await new Promise((resolve) => setImmediate(resolve));
  expect(unhandled).toEqual([]);
  await expect(chunks.next()).rejects.toBe(eio);
});
