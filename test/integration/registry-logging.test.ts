/**
 * Issue 11, point 3: the registry logs through the shared Logger. Each request is one info line
 * (method, path, status, bytes, duration, user, request id, the id also answered in X-Request-Id);
 * an internal error is an error line with its stack; at warn nothing per request is built. And a
 * client that stops reading a pull is cut after the stalled-client timeout, while a slow client that
 * keeps reading is served to the end.
 */
import { createCipheriv, createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { digestOf, type Digest, type Logger, type LogLevel } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { Authenticator, startRegistryServer, type RunningRegistry } from "../../registry/server/index.js";
import { createCliLogger } from "../../installer/cli/logging.js";
import { MiB, waitFor } from "../helpers/fixtures.js";

const REPOSITORY = "hubble/logged";
const BLOB_BYTES = 64 * MiB;
const STALLED_CLIENT_TIMEOUT_MS = 500;

let root: string;
let store: Store;
let blob: Digest;
const servers: RunningRegistry[] = [];
const lines: string[] = [];

/** Seeded bytes (AES-256-CTR of zeros): random-looking, so nothing compresses them on the way. */
function seededBytes(size: number): Buffer {
  const key = createHash("sha256").update("registry-logging").digest();
  return createCipheriv("aes-256-ctr", key, Buffer.alloc(16)).update(Buffer.alloc(size));
}

const records = (): Record<string, unknown>[] =>
  lines.map((line) => JSON.parse(line) as Record<string, unknown>);
const requestLines = (): Record<string, unknown>[] => records().filter((line) => line.msg === "request");

async function serve(options: Parameters<typeof startRegistryServer>[1]): Promise<RunningRegistry> {
  const server = await startRegistryServer(store, options);
  servers.push(server);
  return server;
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "airlock-registry-logging-"));
  store = await Store.open(root);
  const pusher = await serve({ listen: "127.0.0.1:0", allowPush: true });
  const data = seededBytes(BLOB_BYTES);
  blob = digestOf(data);
  const pushed = await fetch(`${pusher.url}/v2/${REPOSITORY}/blobs/uploads/?digest=${blob}`, {
    method: "POST",
    body: data,
  });
  expect(pushed.status).toBe(201);
});

afterAll(async () => {
  for (const server of servers) await server.close();
  store?.close();
  await rm(root, { recursive: true, force: true });
});

describe("registry request logs", () => {
  it("logs one JSON line per request with method, path, status, bytes, duration, user and request id", async () => {
    lines.length = 0;
    const logger = createCliLogger({
      format: "json",
      color: false,
      debug: false,
      write: (l) => lines.push(l),
    });
    const auth = new Authenticator({
      mode: "basic",
      users: new Map([["alice", bcrypt.hashSync("alice-pw", 4)]]),
      pushUsers: new Set(),
      anonymousPull: true,
    });
    const server = await serve({ listen: "127.0.0.1:0", auth, logger });
    const asAlice = { Authorization: `Basic ${Buffer.from("alice:alice-pw").toString("base64")}` };
    const answers = [
      await fetch(`${server.url}/v2/`),
      await fetch(`${server.url}/v2/${REPOSITORY}/blobs/${blob}`, { method: "HEAD", headers: asAlice }),
      await fetch(`${server.url}/v2/${REPOSITORY}/manifests/absent?n=1`, { headers: asAlice }),
    ];
    for (const answer of answers) await answer.arrayBuffer();
    await waitFor(() => requestLines().length === 3, 5000, "three request lines");
    const ids = answers.map((answer) => answer.headers.get("x-request-id"));
    expect(new Set(ids).size).toBe(3);
    const byId = new Map(requestLines().map((line) => [line.requestId, line]));
    expect(ids.map((id) => byId.get(id))).toMatchObject([
      { level: "info", method: "GET", path: "/v2/", status: 200, user: "anonymous" },
      { method: "HEAD", path: `/v2/${REPOSITORY}/blobs/${blob}`, status: 200, user: "alice" },
      { method: "GET", path: `/v2/${REPOSITORY}/manifests/absent`, status: 404, user: "alice" },
    ]);
    for (const line of requestLines()) {
      expect(line.bytes as number).toBeGreaterThan(100);
      expect(line.durationMs as number).toBeGreaterThanOrEqual(0);
      expect(line).not.toHaveProperty("aborted");
    }
    expect(records().filter((line) => line.level !== "info")).toEqual([]);
  });

  it("logs an internal error at error with its stack, under the request's id", async () => {
    lines.length = 0;
    const logger = createCliLogger({
      format: "json",
      color: false,
      debug: false,
      write: (l) => lines.push(l),
    });
    const server = await serve({ listen: "127.0.0.1:0", logger });
    const hasBlob = store.hasBlob.bind(store);
    store.hasBlob = () => {
      throw new Error("injected: the store's database is gone");
    };
    try {
      const answer = await fetch(`${server.url}/v2/${REPOSITORY}/blobs/${blob}`);
      expect(answer.status).toBe(500);
      expect(await answer.text()).not.toContain("injected");
      await waitFor(() => requestLines().length === 1, 5000, "the request line");
      const errors = records().filter((line) => line.level === "error");
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({
        msg: "internal error",
        requestId: answer.headers.get("x-request-id"),
        method: "GET",
        err: { type: "Error", message: "injected: the store's database is gone" },
      });
      expect((errors[0]!.err as { stack: string }).stack).toMatch(/\n\s+at .*handler/);
      expect(requestLines()[0]).toMatchObject({ status: 500 });
    } finally {
      store.hasBlob = hasBlob;
    }
  });

  it("logs a storage failure (503) at error with the store's code and its stack", async () => {
    lines.length = 0;
    const logger = createCliLogger({
      format: "json",
      color: false,
      debug: false,
      write: (l) => lines.push(l),
    });
    const failingRoot = await mkdtemp(join(tmpdir(), "airlock-registry-logging-eio-"));
    const failing = await Store.open(failingRoot, {
      syncFile: () => Promise.reject(Object.assign(new Error("EIO: injected, datasync"), { code: "EIO" })),
    });
    const server = await startRegistryServer(failing, { listen: "127.0.0.1:0", allowPush: true, logger });
    try {
      const data = Buffer.from("a layer the disk will not keep");
      const answer = await fetch(`${server.url}/v2/${REPOSITORY}/blobs/uploads/?digest=${digestOf(data)}`, {
        method: "POST",
        body: data,
      });
      expect(answer.status).toBe(503);
      await waitFor(() => requestLines().length === 1, 5000, "the request line");
      const errors = records().filter((line) => line.level === "error");
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatchObject({
        msg: "internal error",
        requestId: answer.headers.get("x-request-id"),
        method: "POST",
        path: `/v2/${REPOSITORY}/blobs/uploads/`,
        err: { code: "STORE_WRITE_FAILED" },
      });
      expect((errors[0]!.err as { stack: string }).stack).toMatch(/\n\s+at /);
      expect(requestLines()[0]).toMatchObject({ status: 503 });
    } finally {
      await server.close();
      failing.close();
      await rm(failingRoot, { recursive: true, force: true });
    }
  });

  it("at warn level builds nothing per request", async () => {
    const calls: Record<string, number> = { debug: 0, info: 0, warn: 0, error: 0, checks: 0 };
    const count =
      (level: string) =>
      (fields: unknown): void => {
        calls[level]!++;
        JSON.stringify(fields);
      };
    const atWarn: Logger = {
      debug: count("debug"),
      info: count("info"),
      warn: count("warn"),
      error: count("error"),
      child: () => atWarn,
      isLevelEnabled: (level: LogLevel) => {
        calls.checks!++;
        return level === "warn" || level === "error";
      },
    };
    const server = await serve({ listen: "127.0.0.1:0", logger: atWarn });
    for (const path of ["/v2/", `/v2/${REPOSITORY}/manifests/absent`, `/v2/${REPOSITORY}/tags/list`]) {
      const answer = await fetch(`${server.url}${path}`);
      await answer.arrayBuffer();
      expect(answer.headers.get("x-request-id")).toMatch(/^[0-9a-f-]{36}$/);
    }
    expect(calls).toEqual({ debug: 0, info: 0, warn: 0, error: 0, checks: 3 });
  });
});

/** A raw HTTP/1.1 GET: the socket, and how many bytes arrived so far. */
function rawGet(server: RunningRegistry, headers: string): { socket: Socket; received: () => number } {
  const { port } = new URL(server.url);
  const socket = connect(Number(port), "127.0.0.1");
  let received = 0;
  socket.on("data", (chunk: Buffer) => (received += chunk.byteLength));
  socket.write(
    `GET /v2/${REPOSITORY}/blobs/${blob} HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n${headers}\r\n`,
  );
  return { socket, received: () => received };
}

const closed = (socket: Socket): Promise<void> => new Promise((resolve) => socket.once("close", resolve));

describe("stalled clients", () => {
  it("cuts a pull whose client stopped reading after the timeout, and serves a slow reader to the end", async () => {
    lines.length = 0;
    const logger = createCliLogger({
      format: "json",
      color: false,
      debug: false,
      write: (l) => lines.push(l),
    });
    const server = await serve({
      listen: "127.0.0.1:0",
      logger,
      stalledClientTimeoutMs: STALLED_CLIENT_TIMEOUT_MS,
    });

    // Reads 12 MiB at about 4 MiB/s: some 3 s, six times the timeout, progressing all along (the
    // server's part ends sooner, once the rest fits in the sockets' buffers).
    const slowBytes = 12 * MiB;
    const slowStarted = Date.now();
    const slow = rawGet(server, `Range: bytes=0-${slowBytes - 1}\r\n`);
    let sinceBreak = 0;
    slow.socket.on("data", (chunk: Buffer) => {
      sinceBreak += chunk.byteLength;
      if (sinceBreak < 64 * 1024) return;
      sinceBreak = 0;
      slow.socket.pause();
      setTimeout(() => slow.socket.resume(), 15);
    });
    const slowClosed = closed(slow.socket);

    // Asks for 64 MiB and reads nothing: the sockets' buffers fill and the server's writes stop.
    const started = Date.now();
    const stalled = rawGet(server, "");
    stalled.socket.pause();
    const stalledClosed = closed(stalled.socket);
    await waitFor(() => requestLines().some((line) => line.status === 200), 20_000, "the stalled pull's end");
    const stalledLine = requestLines().find((line) => line.status === 200)!;
    expect(Date.now() - started).toBeGreaterThanOrEqual(STALLED_CLIENT_TIMEOUT_MS);
    expect(stalledLine).toMatchObject({ aborted: true });
    expect(stalledLine.bytes as number).toBeLessThan(BLOB_BYTES);
    expect(records().find((line) => line.level === "warn")).toMatchObject({
      msg: "cut a client that stopped reading",
    });
    stalled.socket.resume();
    await stalledClosed;
    expect(stalled.received()).toBeLessThan(BLOB_BYTES);

    await slowClosed;
    expect(Date.now() - slowStarted).toBeGreaterThan(4 * STALLED_CLIENT_TIMEOUT_MS);
    const slowLine = requestLines().find((line) => line.status === 206)!;
    expect(slowLine).not.toHaveProperty("aborted");
    expect(slowLine.durationMs as number).toBeGreaterThan(2 * STALLED_CLIENT_TIMEOUT_MS);
    expect(slow.received()).toBeGreaterThan(slowBytes);
  });

  it("cuts an upload whose client stopped sending, keeping the session, and takes a slow chunk whole", async () => {
    lines.length = 0;
    const logger = createCliLogger({
      format: "json",
      color: false,
      debug: false,
      write: (l) => lines.push(l),
    });
    const server = await serve({
      listen: "127.0.0.1:0",
      allowPush: true,
      logger,
      stalledClientTimeoutMs: STALLED_CLIENT_TIMEOUT_MS,
    });
    const start = async (): Promise<string> => {
      const started = await fetch(`${server.url}/v2/${REPOSITORY}/blobs/uploads/`, { method: "POST" });
      expect(started.status).toBe(202);
      return started.headers.get("location")!;
    };
    const patch = (
      location: string,
      length: number,
    ): { socket: Socket; answer: () => string; closed: Promise<void> } => {
      const { port } = new URL(server.url);
      const socket = connect(Number(port), "127.0.0.1");
      const socketClosed = closed(socket);
      let answer = "";
      socket.setEncoding("latin1").on("data", (chunk: string) => (answer += chunk));
      socket.write(
        `PATCH ${location} HTTP/1.1\r\nHost: registry\r\nConnection: close\r\n` +
          `Content-Type: application/octet-stream\r\nContent-Length: ${length}\r\n\r\n`,
      );
      return { socket, answer: () => answer, closed: socketClosed };
    };
    const chunk = seededBytes(64 * 1024);

    // Sends 1 MiB of a 4 MiB chunk, then nothing.
    const stalledAt = await start();
    const stalled = patch(stalledAt, 4 * MiB);
    for (let sent = 0; sent < MiB; sent += chunk.byteLength) stalled.socket.write(chunk);
    await stalled.closed;
    expect(stalled.answer()).toBe("");
    expect(records().find((line) => line.level === "warn")).toMatchObject({
      msg: "cut a client that stopped sending",
      method: "PATCH",
    });
    const status = await fetch(`${server.url}${stalledAt}`);
    expect(status.status).toBe(204);
    const held = Number(/^0-(\d+)$/.exec(status.headers.get("range") ?? "")?.[1]);
    expect(held).toBeLessThan(MiB);

    // Sends 2 MiB in 64 KiB pieces 40 ms apart: over 1.2 s, past twice the timeout, progressing all along.
    const slowAt = await start();
    const slow = patch(slowAt, 2 * MiB);
    const slowStarted = Date.now();
    for (let sent = 0; sent < 2 * MiB; sent += chunk.byteLength) {
      slow.socket.write(chunk);
      await new Promise((resolve) => setTimeout(resolve, 40));
    }
    await slow.closed;
    expect(Date.now() - slowStarted).toBeGreaterThan(2 * STALLED_CLIENT_TIMEOUT_MS);
    expect(slow.answer()).toMatch(/^HTTP\/1\.1 202 /);
    expect(slow.answer()).toMatch(/\r\nRange: 0-2097151\r\n/);
  });
});
