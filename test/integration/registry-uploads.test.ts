/**
 * Upload sessions that outlive the server (issue 4): sha512 uploads, resuming after a restart and after
 * a graceful stop that cut a chunk in flight, and gc of abandoned sessions.
 */
import { randomBytes } from "node:crypto";
import { request as httpRequest, type ClientRequest } from "node:http";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { digestOf, type Digest } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { startRegistryServer, type RunningRegistry } from "../../registry/server/index.js";
import { MiB, useFixtures, type Fixtures } from "../helpers/fixtures.js";

let fx: Fixtures;
let dataDir: string;
let store: Store;

beforeAll(async () => {
  fx = await useFixtures({ size: 1 * MiB });
  dataDir = await fx.dir("uploads-data");
  store = await Store.open(dataDir);
});

afterAll(async () => {
  store?.close();
  await fx?.cleanup();
});

const serve = (): Promise<RunningRegistry> =>
  startRegistryServer(store, { listen: "127.0.0.1:0", allowPush: true });

const call = (registry: RunningRegistry, path: string, init: RequestInit = {}): Promise<Response> =>
  fetch(`${registry.url}${path}`, init);

async function errorCode(response: Response): Promise<string> {
  return ((await response.json()) as { errors: { code: string }[] }).errors[0]!.code;
}

/** Polls the upload's status until it holds `bytes` (the server has written what was sent). */
async function waitForOffset(registry: RunningRegistry, location: string, bytes: number): Promise<void> {
  for (let attempt = 0; attempt < 500; attempt++) {
    const status = await call(registry, location);
    if (status.headers.get("range") === `0-${bytes - 1}`) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`the upload never reached ${bytes} bytes`);
}

describe("sha512 uploads", () => {
  it("a monolithic POST ?digest=sha512: lands under blobs/sha512 and is served by that digest", async () => {
    const registry = await serve();
    try {
      const data = randomBytes(200_000);
      const digest = digestOf(data, "sha512");
      const done = await call(registry, `/v2/five12/blobs/uploads/?digest=${digest}`, {
        method: "POST",
        body: data,
      });
      expect(done.status).toBe(201);
      expect(done.headers.get("docker-content-digest")).toBe(digest);
      expect(existsSync(store.blobs.path(digest))).toBe(true);
      expect(store.blobs.path(digest)).toContain(join("blobs", "sha512"));
      const served = await call(registry, `/v2/five12/blobs/${digest}`);
      expect(served.headers.get("docker-content-digest")).toBe(digest);
      expect(Buffer.from(await served.arrayBuffer()).equals(data)).toBe(true);
    } finally {
      await registry.close();
    }
  });

  it("a chunked upload finished with a sha512 digest; a wrong sha512 is DIGEST_INVALID", async () => {
    const registry = await serve();
    try {
      const data = randomBytes(3 * MiB + 17);
      for (const [digest, status] of [
        [digestOf(randomBytes(8), "sha512"), 400],
        [digestOf(data, "sha512"), 201],
      ] as [Digest, number][]) {
        const location = (await call(registry, "/v2/five12/blobs/uploads/", { method: "POST" })).headers.get(
          "location",
        )!;
        expect((await call(registry, location, { method: "PATCH", body: data })).status).toBe(202);
        const done = await call(registry, `${location}?digest=${digest}`, { method: "PUT" });
        expect(done.status).toBe(status);
        if (status === 400) expect(await errorCode(done)).toBe("DIGEST_INVALID");
        expect((await store.blobs.stat(digest)) !== undefined).toBe(status === 201);
      }
    } finally {
      await registry.close();
    }
  });
});

describe("upload sessions outlive the server", () => {
  it("a session started before a restart goes on after it: status, the next chunk, completion", async () => {
    const data = randomBytes(2 * MiB + 5);
    const half = MiB;
    const first = await serve();
    let location: string;
    try {
      location = (await call(first, "/v2/resume/blobs/uploads/", { method: "POST" })).headers.get(
        "location",
      )!;
      const patched = await call(first, location, {
        method: "PATCH",
        body: data.subarray(0, half),
        headers: { "Content-Range": `0-${half - 1}` },
      });
      expect(patched.status).toBe(202);
    } finally {
      await first.close();
    }
    const second = await serve();
    try {
      const status = await call(second, location);
      expect(status.status).toBe(204);
      expect(status.headers.get("range")).toBe(`0-${half - 1}`);
      const rest = await call(second, location, {
        method: "PATCH",
        body: data.subarray(half),
        headers: { "Content-Range": `${half}-${data.byteLength - 1}` },
      });
      expect(rest.status).toBe(202);
      const digest = digestOf(data);
      expect((await call(second, `${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
      const served = Buffer.from(await (await call(second, `/v2/resume/blobs/${digest}`)).arrayBuffer());
      expect(served.equals(data)).toBe(true);
      expect(await errorCode(await call(second, location))).toBe("BLOB_UPLOAD_UNKNOWN");
    } finally {
      await second.close();
    }
  });

  it("a graceful stop cuts a chunk in flight, keeps what arrived, and the client resumes from there", async () => {
    const data = randomBytes(3 * MiB);
    // Past a whole number of the server's 1 MiB write batches: the tail is written when the cut comes.
    const sent = 2 * MiB + 4096;
    const first = await serve();
    const location = (await call(first, "/v2/cut/blobs/uploads/", { method: "POST" })).headers.get(
      "location",
    )!;
    const url = new URL(`${first.url}${location}`);
    let inFlight: ClientRequest | undefined;
    const outcome = new Promise<string>((resolve) => {
      inFlight = httpRequest(url, {
        method: "PATCH",
        headers: { "Content-Type": "application/octet-stream" },
      });
      inFlight.on("response", (response) => resolve(`answered ${response.statusCode}`));
      inFlight.on("error", (error) => resolve(`cut: ${error.message}`));
    });
    inFlight!.write(data.subarray(0, sent));
    await waitForOffset(first, location, 2 * MiB);
    await first.close();
    expect(await outcome).toMatch(/^cut: /);

    const second = await serve();
    try {
      // Everything flushed before the cut, and the batched tail the server had read by then.
      const range = (await call(second, location)).headers.get("range")!;
      const held = Number(/^0-(\d+)$/.exec(range)![1]) + 1;
      expect(held).toBeGreaterThanOrEqual(2 * MiB);
      expect(held).toBeLessThanOrEqual(sent);
      const rest = await call(second, location, {
        method: "PATCH",
        body: data.subarray(held),
        headers: { "Content-Range": `${held}-${data.byteLength - 1}` },
      });
      expect(rest.status).toBe(202);
      const digest = digestOf(data);
      expect((await call(second, `${location}?digest=${digest}`, { method: "PUT" })).status).toBe(201);
      expect((await store.fsck()).corrupt).toEqual([]);
    } finally {
      await second.close();
    }
  });

  it("gc removes abandoned sessions (file and row) and keeps live ones", async () => {
    const registry = await serve();
    let abandoned: string;
    try {
      abandoned = (await call(registry, "/v2/gc/blobs/uploads/", { method: "POST" })).headers.get(
        "location",
      )!;
      await call(registry, abandoned, { method: "PATCH", body: randomBytes(1000) });
      const kept = await Store.open(dataDir, { staleUploadMs: 60_000 });
      try {
        expect((await kept.gc()).uploadsRemoved).toBe(0);
      } finally {
        kept.close();
      }
      const eager = await Store.open(dataDir, { staleUploadMs: 0 });
      try {
        expect((await eager.gc({ dryRun: true })).uploadsRemoved).toBeGreaterThanOrEqual(1);
        expect((await eager.gc()).uploadsRemoved).toBeGreaterThanOrEqual(1);
        expect((await eager.gc()).uploadsRemoved).toBe(0);
      } finally {
        eager.close();
      }
    } finally {
      await registry.close();
    }
    const after = await serve();
    try {
      expect(await errorCode(await call(after, abandoned))).toBe("BLOB_UPLOAD_UNKNOWN");
    } finally {
      await after.close();
    }
  });
});
