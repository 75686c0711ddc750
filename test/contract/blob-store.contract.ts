import { createHash, randomBytes } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { digestOf, type Digest } from "../../registry/oci/index.js";
import type { ContentReader, ContentWriter } from "../../registry/store/index.js";
import { rejection } from "../helpers/errors.js";

export interface BlobStoreUnderTest {
  reader: ContentReader;
  writer: ContentWriter;
  cleanup(): Promise<void>;
}

/** Yields `data` in chunks of `chunkSize`, giving other writers a turn between chunks. */
export async function* chunked(data: Uint8Array, chunkSize = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (let offset = 0; offset < data.byteLength; offset += chunkSize) {
    await Promise.resolve();
    yield data.subarray(offset, Math.min(offset + chunkSize, data.byteLength));
  }
}

export async function readAll(stream: AsyncIterable<unknown>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  // Copied: readers reuse a chunk's buffer once the next one is asked for.
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Buffer));
  return Buffer.concat(chunks);
}

export async function listAll(reader: ContentReader): Promise<Digest[]> {
  const out: Digest[] = [];
  for await (const digest of reader.list()) out.push(digest);
  return out;
}

/**
 * The behaviour every blob store must have, whatever it keeps blobs in: content addressing, checks
 * before anything becomes visible, idempotent and concurrent writes, ranges, listing and deletes.
 */
export function describeBlobStoreContract(name: string, make: () => Promise<BlobStoreUnderTest>): void {
  describe(`blob store contract: ${name}`, () => {
    let store: BlobStoreUnderTest;
    let reader: ContentReader;
    let writer: ContentWriter;

    beforeEach(async () => {
      store = await make();
      reader = store.reader;
      writer = store.writer;
    });

    afterEach(async () => {
      await store.cleanup();
    });

    it("put, stat and open round-trip the bytes, whole and by inclusive byte range", async () => {
      const data = randomBytes(10_000);
      const digest = digestOf(data);
      const committed = await writer.put(chunked(data, 3000), { digest, size: data.length });
      expect(committed).toEqual({ digest, size: 10_000, created: true });
      expect(await reader.stat(digest)).toEqual({ digest, size: 10_000 });
      expect((await readAll(reader.chunks(digest))).equals(data)).toBe(true);
      expect(
        (await readAll(reader.chunks(digest, { start: 100, end: 199 }))).equals(data.subarray(100, 200)),
      ).toBe(true);
      expect((await readAll(reader.chunks(digest, { start: 0, end: 0 }))).equals(data.subarray(0, 1))).toBe(
        true,
      );
      expect(
        (await readAll(reader.chunks(digest, { start: 9_999, end: 9_999 }))).equals(data.subarray(9_999)),
      ).toBe(true);
      expect(
        (await readAll(reader.chunks(digest, { start: 4_096, end: 9_999 }))).equals(data.subarray(4_096)),
      ).toBe(true);
      expect((await reader.readSmall(digest, 10_000)).equals(data)).toBe(true);
    });

    it("computes the digest when the writer names none", async () => {
      const data = Buffer.from("no expectations");
      const committed = await writer.put(chunked(data, 4), {});
      expect(committed).toEqual({ digest: digestOf(data), size: data.length, created: true });
      expect((await readAll(reader.chunks(committed.digest))).toString()).toBe("no expectations");
    });

    it("readSmall refuses unknown blobs and blobs over the limit", async () => {
      const data = randomBytes(2048);
      const { digest } = await writer.put(chunked(data), {});
      expect((await rejection(reader.readSmall(digest, 2047))).code).toBe("BLOB_TOO_LARGE");
      expect((await rejection(reader.readSmall(digestOf("absent"), 1 << 20))).code).toBe("BLOB_UNKNOWN");
    });

    it("stat of an absent blob is undefined and open of it fails", async () => {
      const absent = digestOf("never written");
      expect(await reader.stat(absent)).toBeUndefined();
      await expect(readAll(reader.chunks(absent))).rejects.toMatchObject({ code: "ENOENT" });
    });

    it("a digest mismatch throws DIGEST_MISMATCH and leaves nothing visible", async () => {
      const data = randomBytes(5000);
      const claimed = digestOf("something else");
      const error = await rejection(writer.put(chunked(data, 1000), { digest: claimed, size: 5000 }));
      expect(error.code).toBe("DIGEST_MISMATCH");
      expect(error.message).toContain(digestOf(data));
      expect(await reader.stat(claimed)).toBeUndefined();
      expect(await reader.stat(digestOf(data))).toBeUndefined();
      expect(await listAll(reader)).toEqual([]);
    });

    it("a size mismatch throws SIZE_INVALID and leaves nothing visible", async () => {
      const data = randomBytes(5000);
      const digest = digestOf(data);
      for (const size of [4999, 5001, 0]) {
        const error = await rejection(writer.put(chunked(data, 1000), { digest, size }));
        expect(error.code).toBe("SIZE_INVALID");
      }
      const sizeOnly = await rejection(writer.put(chunked(data, 1000), { size: 1 }));
      expect(sizeOnly.code).toBe("SIZE_INVALID");
      expect(await reader.stat(digest)).toBeUndefined();
      expect(await listAll(reader)).toEqual([]);
    });

    it("a source that fails part-way leaves nothing visible and rethrows its error", async () => {
      const failure = new Error("source went away");
      async function* broken(): AsyncGenerator<Uint8Array> {
        yield randomBytes(1000);
        await Promise.resolve();
        throw failure;
      }
      await expect(writer.put(broken(), {})).rejects.toBe(failure);
      expect(await listAll(reader)).toEqual([]);
    });

    it("an aborted ingest leaves nothing, and the same bytes can be written afterwards", async () => {
      const data = randomBytes(100_000);
      const ingest = await writer.ingest();
      await ingest.write(data.subarray(0, 60_000));
      await ingest.write(data.subarray(60_000));
      expect(ingest.size).toBe(100_000);
      await ingest.abort();
      expect(await reader.stat(digestOf(data))).toBeUndefined();
      expect(await listAll(reader)).toEqual([]);
      const again = await writer.put(chunked(data), { digest: digestOf(data), size: data.length });
      expect(again.created).toBe(true);
    });

    it("put of a blob already present returns created:false and keeps the content", async () => {
      const data = randomBytes(7000);
      const digest = digestOf(data);
      expect((await writer.put(chunked(data), { digest, size: 7000 })).created).toBe(true);
      expect(await writer.put(chunked(data, 100), { digest, size: 7000 })).toEqual({
        digest,
        size: 7000,
        created: false,
      });
      expect(await writer.put(chunked(data, 100), {})).toEqual({ digest, size: 7000, created: false });
      expect((await readAll(reader.chunks(digest))).equals(data)).toBe(true);
      expect(await listAll(reader)).toEqual([digest]);
    });

    it("a failed check on a blob already present does not harm the stored copy", async () => {
      const data = randomBytes(3000);
      const digest = digestOf(data);
      await writer.put(chunked(data), { digest, size: 3000 });
      const tampered = Buffer.from(data);
      tampered[10] = tampered[10]! ^ 0xff;
      expect((await rejection(writer.put(chunked(tampered), { digest, size: 3000 }))).code).toBe(
        "DIGEST_MISMATCH",
      );
      expect((await readAll(reader.chunks(digest))).equals(data)).toBe(true);
    });

    it("20 concurrent writers of the same blob all succeed, leaving one blob with the right bytes", async () => {
      const data = randomBytes(512 * 1024);
      const digest = digestOf(data);
      const results = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          writer.put(chunked(data, 16 * 1024 + i * 512), { digest, size: data.length }),
        ),
      );
      for (const result of results) expect(result).toMatchObject({ digest, size: data.length });
      expect(results.some((result) => result.created)).toBe(true);
      expect(await listAll(reader)).toEqual([digest]);
      expect(await reader.stat(digest)).toEqual({ digest, size: data.length });
      expect((await readAll(reader.chunks(digest))).equals(data)).toBe(true);
    });

    it("concurrent writers of different blobs each get their own blob", async () => {
      const blobs = Array.from({ length: 16 }, (_, i) => randomBytes(10_000 + i * 4099));
      const results = await Promise.all(
        blobs.map((data) => writer.put(chunked(data, 4096), { size: data.length })),
      );
      expect(results.map((r) => r.digest)).toEqual(blobs.map((data) => digestOf(data)));
      expect(results.every((r) => r.created)).toBe(true);
      expect(new Set(await listAll(reader))).toEqual(new Set(results.map((r) => r.digest)));
      for (const [i, data] of blobs.entries()) {
        expect((await readAll(reader.chunks(results[i]!.digest))).equals(data)).toBe(true);
      }
    });

    it("delete removes a blob and reports whether there was one", async () => {
      const keep = await writer.put(chunked(Buffer.from("keep")), {});
      const drop = await writer.put(chunked(Buffer.from("drop")), {});
      expect(await writer.delete(drop.digest)).toBe(true);
      expect(await reader.stat(drop.digest)).toBeUndefined();
      expect(await writer.delete(drop.digest)).toBe(false);
      await expect(readAll(reader.chunks(drop.digest))).rejects.toMatchObject({ code: "ENOENT" });
      expect(await listAll(reader)).toEqual([keep.digest]);
      const again = await writer.put(chunked(Buffer.from("drop")), {});
      expect(again.created).toBe(true);
    });

    it("list yields every stored digest once, across algorithms", async () => {
      expect(await listAll(reader)).toEqual([]);
      const written: Digest[] = [];
      for (let i = 0; i < 12; i++)
        written.push((await writer.put(chunked(Buffer.from(`blob ${i}`)), {})).digest);
      const data512 = Buffer.from("a sha512 blob");
      written.push((await writer.put(chunked(data512), { digest: digestOf(data512, "sha512") })).digest);
      const listed = await listAll(reader);
      expect(listed).toHaveLength(13);
      expect(new Set(listed)).toEqual(new Set(written));
    });

    it("stores the empty blob", async () => {
      const empty = digestOf(new Uint8Array(0));
      const committed = await writer.put(chunked(new Uint8Array(0)), { digest: empty, size: 0 });
      expect(committed).toEqual({ digest: empty, size: 0, created: true });
      expect(await reader.stat(empty)).toEqual({ digest: empty, size: 0 });
      expect((await readAll(reader.chunks(empty))).byteLength).toBe(0);
      expect((await reader.readSmall(empty, 0)).byteLength).toBe(0);
      const ingest = await writer.ingest();
      expect(await ingest.commit({ digest: empty, size: 0 })).toEqual({
        digest: empty,
        size: 0,
        created: false,
      });
    });

    it("stores sha512 blobs under their sha512 digest", async () => {
      const data = randomBytes(70_000);
      const digest = digestOf(data, "sha512");
      expect(digest).toMatch(/^sha512:[0-9a-f]{128}$/);
      expect(await writer.put(chunked(data, 9_000), { digest, size: data.length })).toEqual({
        digest,
        size: data.length,
        created: true,
      });
      expect(await reader.stat(digest)).toEqual({ digest, size: data.length });
      expect(await reader.stat(digestOf(data))).toBeUndefined();
      expect(
        (await readAll(reader.chunks(digest, { start: 69_000, end: 69_999 }))).equals(data.subarray(69_000)),
      ).toBe(true);
      const ingest = await writer.ingest("sha512");
      await ingest.write(data);
      expect(await ingest.commit()).toEqual({ digest, size: data.length, created: false });
      const wrong = await rejection(writer.put(chunked(randomBytes(10)), { digest }));
      expect(wrong.code).toBe("DIGEST_MISMATCH");
      expect(await listAll(reader)).toEqual([digest]);
    });

    it("streams a multi-MiB blob written in many chunks and reads it back in pieces", async () => {
      const size = 9 * 1024 * 1024 + 123;
      const data = randomBytes(size);
      const digest = digestOf(data);
      const ingest = await writer.ingest();
      let chunks = 0;
      for (let offset = 0; offset < size; offset += 61_440) {
        await ingest.write(data.subarray(offset, Math.min(offset + 61_440, size)));
        chunks++;
      }
      expect(chunks).toBeGreaterThan(150);
      expect(ingest.size).toBe(size);
      expect(await reader.stat(digest)).toBeUndefined();
      expect(await ingest.commit({ digest, size })).toEqual({ digest, size, created: true });
      const hash = createHash("sha256");
      let pieces = 0;
      let largest = 0;
      for await (const chunk of reader.chunks(digest)) {
        hash.update(chunk);
        pieces++;
        largest = Math.max(largest, chunk.byteLength);
      }
      expect(`sha256:${hash.digest("hex")}`).toBe(digest);
      expect(pieces).toBeGreaterThan(1);
      expect(largest).toBeLessThan(size);
      const tail = await readAll(reader.chunks(digest, { start: size - 5_000_000, end: size - 1 }));
      expect(tail.equals(data.subarray(size - 5_000_000))).toBe(true);
    });

    it("refuses malformed digests instead of touching arbitrary paths", async () => {
      const bad = "sha256:../../../../etc/passwd" as Digest;
      expect((await rejection(reader.stat(bad))).code).toBe("DIGEST_INVALID");
      expect((await rejection(writer.delete(bad))).code).toBe("DIGEST_INVALID");
      expect(() => reader.chunks(bad)).toThrow(expect.objectContaining({ code: "DIGEST_INVALID" }) as Error);
      expect((await rejection(writer.put(chunked(Buffer.from("x")), { digest: bad }))).code).toBe(
        "DIGEST_INVALID",
      );
    });
  });
}
