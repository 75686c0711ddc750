/**
 * A commit that fails on the disk (issue 10, point 4): EIO or ENOSPC while making the file durable is
 * a typed storage error, never taken for bad content; the temp file goes, and no blob appears.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { digestOf } from "../../../registry/oci/index.js";
import { FsBlobStore } from "../../../registry/store/index.js";
import { rejection } from "../../helpers/errors.js";

const fault = (code: string): Error => Object.assign(new Error(`${code}: injected, datasync`), { code });

let root: string;

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), "airlock-commit-"));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function failingStore(code: string): Promise<{ blobs: FsBlobStore; syncs: () => number }> {
  let syncs = 0;
  const blobs = new FsBlobStore(root, {
    syncFile: () => {
      syncs++;
      return Promise.reject(fault(code));
    },
  });
  await blobs.init();
  return { blobs, syncs: () => syncs };
}

describe("BlobIngest.commit on a failing disk", () => {
  it.each([
    ["EIO", "STORE_WRITE_FAILED"],
    ["ENOSPC", "STORE_DISK_FULL"],
  ])("%s during datasync is %s with a hint and the cause; the temp file is removed", async (errno, code) => {
    const { blobs, syncs } = await failingStore(errno);
    const data = randomBytes(3 * 1024 * 1024);
    const ingest = await blobs.ingest();
    await ingest.write(data);
    const error = await rejection(ingest.commit({ digest: digestOf(data) }));
    expect(error).toMatchObject({ code, where: ingest.tempPath });
    expect(error.hint).toMatch(/retry|re-run/);
    expect((error.cause as { code?: string }).code).toBe(errno);
    expect(syncs()).toBe(1);
    expect(await readdir(blobs.ingestDir)).toEqual([]);
    expect(await blobs.stat(digestOf(data))).toBeUndefined();
  });

  it("a failing sync before re-hashing for a sha512 digest is a storage error too, and the upload file goes", async () => {
    const { blobs } = await failingStore("EIO");
    const data = randomBytes(1024);
    const file = join(root, "upload-1");
    const ingest = await blobs.namedIngest(file, "create");
    await ingest.write(data);
    const error = await rejection(ingest.commit({ digest: digestOf(data, "sha512") }));
    expect(error.code).toBe("STORE_WRITE_FAILED");
    expect((await readdir(root)).sort()).toEqual(["blobs", "ingest"]);
  });

  it("content that does not hash to the digest is still DIGEST_MISMATCH, not a storage error", async () => {
    const { blobs, syncs } = await failingStore("EIO");
    const ingest = await blobs.ingest();
    await ingest.write(Buffer.from("other bytes"));
    const error = await rejection(ingest.commit({ digest: digestOf("expected bytes") }));
    expect(error.code).toBe("DIGEST_MISMATCH");
    expect(syncs()).toBe(0);
    expect(await readdir(blobs.ingestDir)).toEqual([]);
  });

  it("put reports the storage error and leaves nothing behind", async () => {
    const { blobs } = await failingStore("EIO");
    const data = randomBytes(64 * 1024);
    expect((await rejection(blobs.put([data], { digest: digestOf(data) }))).code).toBe("STORE_WRITE_FAILED");
    expect(await readdir(blobs.ingestDir)).toEqual([]);
    expect(await blobs.stat(digestOf(data))).toBeUndefined();
  });
});
