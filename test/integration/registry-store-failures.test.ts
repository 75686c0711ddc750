/**
 * Issue 10, point 4: a push whose commit fails on the registry's disk (EIO, ENOSPC during datasync,
 * injected through the store's sync hook) is answered as the server's storage failure — 503 with
 * Retry-After and the store's code in the spec's error body, without the raw errno text — not as
 * DIGEST_INVALID; the upload's file is gone, no blob appears, and the same push succeeds once the
 * disk is well again.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { digestOf, MediaType, type Digest } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { startRegistryServer, type RunningRegistry } from "../../registry/server/index.js";

const REPOSITORY = "hubble/pushed";

let root: string;
let store: Store;
let registry: RunningRegistry;
/** The errno the next datasync fails with; none when the disk is well. */
let diskFault: string | undefined;
const internalErrors: unknown[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "airlock-store-failures-"));
  store = await Store.open(root, {
    syncFile: (handle) =>
      diskFault === undefined
        ? handle.datasync()
        : Promise.reject(Object.assign(new Error(`${diskFault}: injected, datasync`), { code: diskFault })),
  });
  registry = await startRegistryServer(store, {
    listen: "127.0.0.1:0",
    allowPush: true,
    onInternalError: (error) => internalErrors.push(error),
  });
});

afterAll(async () => {
  await registry?.close();
  store?.close();
  await rm(root, { recursive: true, force: true });
});

beforeEach(() => {
  diskFault = undefined;
  internalErrors.length = 0;
});

const send = (path: string, init: RequestInit = {}): Promise<Response> =>
  fetch(new URL(path, registry.url), init);

/** Upload files and ingest files the store holds: a failed commit must leave neither. */
async function leftovers(): Promise<string[]> {
  const dirs = ["uploads", "ingest"].map((name) => join(root, "store", name));
  return (await Promise.all(dirs.map((dir) => readdir(dir)))).flat();
}

async function expectStorageFailure(response: Response, code: string): Promise<void> {
  expect(response.status).toBe(503);
  expect(response.headers.get("retry-after")).toMatch(/^\d+$/);
  const text = await response.text();
  const body = JSON.parse(text) as { errors: { code: string; message: string }[] };
  expect(body.errors).toHaveLength(1);
  expect(body.errors[0]!.code).toBe(code);
  expect(body.errors[0]!.message).toMatch(/retry later/);
  expect(text).not.toMatch(/injected|E(IO|NOSPC)|\//);
  expect(internalErrors).toMatchObject([{ code }]);
}

/** A chunked upload: POST, two PATCHes, then the final PUT, whose response is returned. */
async function chunkedPush(data: Buffer, digest: Digest): Promise<Response> {
  const started = await send(`/v2/${REPOSITORY}/blobs/uploads/`, { method: "POST" });
  expect(started.status).toBe(202);
  let location = started.headers.get("location")!;
  const half = data.byteLength / 2;
  for (const [from, to] of [
    [0, half],
    [half, data.byteLength],
  ] as const) {
    const patched = await send(location, {
      method: "PATCH",
      headers: { "Content-Range": `${from}-${to - 1}`, "Content-Type": "application/octet-stream" },
      body: data.subarray(from, to),
    });
    expect(patched.status).toBe(202);
    location = patched.headers.get("location")!;
  }
  return send(`${location}?digest=${digest}`, { method: "PUT" });
}

describe("a commit that fails on the registry's disk", () => {
  it.each([
    ["EIO", "STORE_WRITE_FAILED"],
    ["ENOSPC", "STORE_DISK_FULL"],
  ])("%s on a monolithic push is 503 %s, leaves no file, and the retry succeeds", async (errno, code) => {
    const data = randomBytes(2 * 1024 * 1024);
    const digest = digestOf(data);
    const push = (): Promise<Response> =>
      send(`/v2/${REPOSITORY}/blobs/uploads/?digest=${digest}`, { method: "POST", body: data });
    diskFault = errno;
    await expectStorageFailure(await push(), code);
    expect(await leftovers()).toEqual([]);
    expect((await send(`/v2/${REPOSITORY}/blobs/${digest}`, { method: "HEAD" })).status).toBe(404);

    diskFault = undefined;
    expect((await push()).status).toBe(201);
    expect((await send(`/v2/${REPOSITORY}/blobs/${digest}`, { method: "HEAD" })).status).toBe(200);
  });

  it("EIO at the final PUT of a chunked upload is 503, the session's file is removed, a new upload succeeds", async () => {
    const data = randomBytes(1024 * 1024);
    const digest = digestOf(data);
    diskFault = "EIO";
    await expectStorageFailure(await chunkedPush(data, digest), "STORE_WRITE_FAILED");
    expect(await leftovers()).toEqual([]);

    diskFault = undefined;
    expect((await chunkedPush(data, digest)).status).toBe(201);
    expect(await leftovers()).toEqual([]);
  });

  it("a manifest PUT whose blob cannot be made durable is 503 too", async () => {
    const config = Buffer.from("{}");
    const configDigest = digestOf(config);
    const pushed = await send(`/v2/${REPOSITORY}/blobs/uploads/?digest=${configDigest}`, {
      method: "POST",
      body: config,
    });
    expect(pushed.status).toBe(201);
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: configDigest, size: config.byteLength },
      layers: [],
    });
    diskFault = "EIO";
    const response = await send(`/v2/${REPOSITORY}/manifests/1`, {
      method: "PUT",
      headers: { "Content-Type": MediaType.OciManifest },
      body: manifest,
    });
    await expectStorageFailure(response, "STORE_WRITE_FAILED");
    expect(await leftovers()).toEqual([]);
    expect((await send(`/v2/${REPOSITORY}/manifests/1`, { method: "HEAD" })).status).toBe(404);
  });

  it("content that does not match its digest is still the client's DIGEST_INVALID", async () => {
    const response = await send(`/v2/${REPOSITORY}/blobs/uploads/?digest=${digestOf("something else")}`, {
      method: "POST",
      body: randomBytes(1024),
    });
    expect(response.status).toBe(400);
    const body = (await response.json()) as { errors: { code: string }[] };
    expect(body.errors[0]!.code).toBe("DIGEST_INVALID");
    expect(internalErrors).toEqual([]);
    expect(await leftovers()).toEqual([]);
  });
});
