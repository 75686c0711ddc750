import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { digestOf } from "../../registry/oci/index.js";
import { FsBlobStore, Store } from "../../registry/store/index.js";
import { chunked, describeBlobStoreContract } from "./blob-store.contract.js";
import { rejection } from "../helpers/errors.js";

describeBlobStoreContract("FsBlobStore", async () => {
  const root = await mkdtemp(join(tmpdir(), "airlock-fsblobs-"));
  const blobs = new FsBlobStore(root);
  await blobs.init();
  return { reader: blobs, writer: blobs, cleanup: () => rm(root, { recursive: true, force: true }) };
});

describeBlobStoreContract("Store.open(dir).blobs", async () => {
  const dataDir = await mkdtemp(join(tmpdir(), "airlock-storeblobs-"));
  const store = await Store.open(dataDir);
  return {
    reader: store.blobs,
    writer: store.blobs,
    cleanup: async () => {
      store.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
});

describe("FsBlobStore on disk", () => {
  let root: string;
  let blobs: FsBlobStore;

  beforeEach(async () => {
    root = await mkdtemp(join(tmpdir(), "airlock-fsblobs-disk-"));
    blobs = new FsBlobStore(root);
    await blobs.init();
  });

  afterEach(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it("keeps blobs as blobs/<algorithm>/<hex> of an OCI layout", async () => {
    const data = Buffer.from("layout");
    const digest = digestOf(data);
    await blobs.put(chunked(data), { digest });
    const file = join(root, "blobs", "sha256", digest.slice("sha256:".length));
    expect(blobs.path(digest)).toBe(file);
    expect(await readFile(file, "utf8")).toBe("layout");
    const data512 = Buffer.from("layout 512");
    const d512 = digestOf(data512, "sha512");
    await blobs.put(chunked(data512), { digest: d512 });
    expect(await readFile(join(root, "blobs", "sha512", d512.slice("sha512:".length)), "utf8")).toBe(
      "layout 512",
    );
  });

  it("writes into ingest/ and renames into place only on a checked commit", async () => {
    const data = randomBytes(200_000);
    const digest = digestOf(data);
    const ingest = await blobs.ingest();
    expect(ingest.tempPath.startsWith(join(root, "ingest") + "/")).toBe(true);
    expect(ingest.tempPath).toMatch(new RegExp(`/${process.pid}-[0-9a-f]+$`));
    await ingest.write(data);
    expect((await stat(ingest.tempPath)).size).toBe(200_000);
    expect(existsSync(blobs.path(digest))).toBe(false);
    await ingest.commit({ digest, size: data.length });
    expect(existsSync(blobs.path(digest))).toBe(true);
    expect(existsSync(ingest.tempPath)).toBe(false);
    expect(await readdir(blobs.ingestDir)).toEqual([]);
  });

  it("leaves no ingest file after a digest mismatch, a size mismatch, an abort or a duplicate", async () => {
    const data = randomBytes(10_000);
    const digest = digestOf(data);
    await rejection(blobs.put(chunked(data), { digest: digestOf("other") }));
    await rejection(blobs.put(chunked(data), { digest, size: 1 }));
    const ingest = await blobs.ingest();
    await ingest.write(data);
    await ingest.abort();
    await blobs.put(chunked(data), { digest });
    expect((await blobs.put(chunked(data), { digest })).created).toBe(false);
    expect(await readdir(blobs.ingestDir)).toEqual([]);
    expect(await readdir(join(root, "blobs", "sha256"))).toEqual([digest.slice("sha256:".length)]);
  });

  it("a failing write surfaces as STORE_WRITE_FAILED and aborting it leaves nothing", async () => {
    const failing = new FsBlobStore(root, {
      writeChunk: () => Promise.reject(Object.assign(new Error("I/O error"), { code: "EIO" })),
    });
    const ingest = await failing.ingest();
    const error = await rejection(ingest.write(Buffer.from("data")));
    expect(error).toMatchObject({ code: "STORE_WRITE_FAILED", where: ingest.tempPath });
    await ingest.abort();
    expect(await readdir(blobs.ingestDir)).toEqual([]);
  });
});
