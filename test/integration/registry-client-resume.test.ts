/**
 * pushBlob taking over an upload an earlier run left (issue 10, point 6), against Airlock's own
 * registry: resumed where the registry says the session stands, and started afresh when the session
 * is gone, names another host, claims more bytes than the blob has, or holds other bytes than ours.
 */
import { randomBytes } from "node:crypto";
import { createServer, type Server } from "node:http";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient, type BlobProgress } from "../../registry/client/index.js";
import { digestOf, type Descriptor } from "../../registry/oci/index.js";
import { startRegistryServer, type RunningRegistry } from "../../registry/server/index.js";
import { Store } from "../../registry/store/index.js";
import { MiB, sha256File } from "../helpers/fixtures.js";

const REPOSITORY = "resume/blob";
let root: string;
let store: Store;
let server: RunningRegistry;
let host: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "airlock-client-resume-"));
  store = await Store.open(root);
  server = await startRegistryServer(store, { listen: "127.0.0.1:0", allowPush: true });
  host = server.url.replace("http://", "");
});

afterAll(async () => {
  await server?.close();
  store?.close();
  await rm(root, { recursive: true, force: true });
});

/** A 2 MiB blob of its own, pushed chunked (over the 1 MiB monolithic limit set below). */
function freshBlob(): { bytes: Buffer; descriptor: Descriptor } {
  const bytes = randomBytes(2 * MiB);
  return {
    bytes,
    descriptor: { mediaType: "application/octet-stream", digest: digestOf(bytes), size: bytes.length },
  };
}

/** An upload session of the registry holding `bytes`, as a killed run would have left it. */
async function leftSession(bytes: Buffer): Promise<string> {
  const started = await fetch(`${server.url}/v2/${REPOSITORY}/blobs/uploads/`, { method: "POST" });
  expect(started.status).toBe(202);
  const location = new URL(started.headers.get("location")!, server.url).toString();
  if (bytes.length > 0) {
    const patched = await fetch(location, {
      method: "PATCH",
      headers: { "Content-Type": "application/octet-stream", "Content-Range": `0-${bytes.length - 1}` },
      body: bytes,
    });
    expect(patched.status).toBe(202);
  }
  return location;
}

/** Pushes with `resume`, counting the body bytes asked of the source; checks the blob arrived whole. */
async function pushResuming(
  blob: { bytes: Buffer; descriptor: Descriptor },
  resume: { location: string; offset: number },
): Promise<{ sentFrom: number[]; progress: BlobProgress[] }> {
  const client = new RegistryClient({ host, insecureHttp: true, monolithicMaxBytes: MiB, retryBaseMs: 1 });
  const sentFrom: number[] = [];
  const progress: BlobProgress[] = [];
  try {
    const outcome = await client.pushBlob(
      REPOSITORY,
      blob.descriptor,
      (offset) => {
        sentFrom.push(offset);
        return blob.bytes.subarray(offset);
      },
      { resume, onProgress: (p) => progress.push(p) },
    );
    expect(outcome).toBe("uploaded");
  } finally {
    await client.close();
  }
  expect(`sha256:${await sha256File(store.blobs.path(blob.descriptor.digest))}`).toBe(blob.descriptor.digest);
  return { sentFrom, progress };
}

describe("pushBlob with an earlier run's upload", () => {
  it("goes on from the offset the registry reports, and says so in its progress", async () => {
    const blob = freshBlob();
    const held = 1536 * 1024;
    const location = await leftSession(blob.bytes.subarray(0, held));
    // The checkpoint lags what the registry holds: the registry's word counts.
    const { sentFrom, progress } = await pushResuming(blob, { location, offset: MiB });
    expect(sentFrom).toEqual([held]);
    expect(progress[0]).toMatchObject({ done: held, resumedFrom: held, location });
  });

  it("a session the registry no longer has (404): a fresh upload", async () => {
    const blob = freshBlob();
    const location = `${server.url}/v2/${REPOSITORY}/blobs/uploads/${"0".repeat(32)}`;
    const { sentFrom, progress } = await pushResuming(blob, { location, offset: MiB });
    expect(sentFrom).toEqual([0]);
    expect(progress[0]!.resumedFrom).toBeUndefined();
  });

  it("a session on another host is never asked about: a fresh upload here", async () => {
    let asked = 0;
    const elsewhere: Server = createServer((_req, res) => {
      asked++;
      res.writeHead(204, { Range: "0-1048575", Location: "/v2/x/blobs/uploads/y" }).end();
    });
    await new Promise<void>((resolve) => elsewhere.listen(0, "127.0.0.1", resolve));
    try {
      const port = (elsewhere.address() as { port: number }).port;
      const blob = freshBlob();
      const { sentFrom } = await pushResuming(blob, {
        location: `http://127.0.0.1:${port}/v2/${REPOSITORY}/blobs/uploads/${"1".repeat(32)}`,
        offset: MiB,
      });
      expect(sentFrom).toEqual([0]);
      expect(asked).toBe(0);
    } finally {
      await new Promise((resolve) => elsewhere.close(resolve));
    }
  });

  it("a location that is no URL: a fresh upload", async () => {
    const { sentFrom } = await pushResuming(freshBlob(), { location: "http://[bad", offset: MiB });
    expect(sentFrom).toEqual([0]);
  });

  it("a session holding more bytes than the blob has: not trusted, a fresh upload", async () => {
    const blob = freshBlob();
    const location = await leftSession(randomBytes(3 * MiB));
    const { sentFrom } = await pushResuming(blob, { location, offset: MiB });
    expect(sentFrom).toEqual([0]);
  });

  it("a session holding other bytes than ours: its final PUT is refused, then a fresh upload completes", async () => {
    const blob = freshBlob();
    const location = await leftSession(randomBytes(MiB));
    const { sentFrom } = await pushResuming(blob, { location, offset: MiB });
    expect(sentFrom).toEqual([MiB, 0]);
  });
});
