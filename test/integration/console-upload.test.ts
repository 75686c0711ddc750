/**
 * The console's resumable bundle upload (issue 15, point 3) over loopback HTTPS: offsets, a dropped
 * connection resumed, the import with its events, a refused file, the auth gates, and the README's
 * curl commands run as written.
 */
import { appendFile, readdir, readFile, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { join } from "node:path";
import { BLOB_DIR } from "../../bundle/index.js";
import { Agent, getGlobalDispatcher, setGlobalDispatcher, type Dispatcher } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createConsoleApp, startConsole, type ConsoleServer } from "../../ui-lite/index.js";
import {
  MiB,
  REPO_ROOT,
  runTool,
  sampleBundle,
  useFixtures,
  waitFor,
  type Fixtures,
} from "../helpers/fixtures.js";
import { openConsoleSite, type ConsoleSite } from "../unit/ui-lite/console-site.js";
import { ConsoleClient } from "../unit/ui-lite/http-client.js";

const PASSWORD = "correct horse battery staple";

let fx: Fixtures;
let bundle: string;
let site: ConsoleSite;
let served: ConsoleServer;
let admin: ConsoleClient;
let csrf: string;
let previousDispatcher: Dispatcher;

async function signedIn(name: string, role: "admin" | "viewer"): Promise<ConsoleClient> {
  const { password } = await site.users.add(name, role);
  await site.users.changePassword(name, password, PASSWORD);
  const client = new ConsoleClient(served.url);
  expect((await client.login(name, PASSWORD)).status).toBe(303);
  return client;
}

async function createUpload(client: ConsoleClient, size: number, token = csrf) {
  return client.request(
    "POST",
    "/uploads",
    { name: "mgmt.airlock.tar", size: String(size) },
    {
      "x-csrf-token": token,
    },
  );
}

function patch(client: ConsoleClient, id: string, range: string, body: Uint8Array) {
  const cookie = [...client.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  return fetch(`${served.url}/uploads/${id}`, {
    method: "PATCH",
    headers: {
      cookie,
      "x-csrf-token": csrf,
      "content-range": range,
      "content-type": "application/octet-stream",
    },
    body,
  });
}

/** Reads the upload's events until its outcome. */
async function eventsOf(client: ConsoleClient, id: string): Promise<Record<string, unknown>[]> {
  const reply = await client.get(`/uploads/${id}/events`);
  expect(reply.status).toBe(200);
  return reply.body
    .split("\n")
    .filter((line) => line.startsWith("data: "))
    .map((line) => JSON.parse(line.slice(6)) as Record<string, unknown>);
}

/** Starts a chunk, hands the first `sent` bytes to the socket, then drops the connection. */
async function dropMidChunk(
  client: ConsoleClient,
  id: string,
  range: string,
  sent: Uint8Array,
): Promise<void> {
  const cookie = [...client.cookies].map(([k, v]) => `${k}=${v}`).join("; ");
  const url = new URL(`${served.url}/uploads/${id}`);
  const ca = await readFile(site.pki.caFile, "utf8");
  await new Promise<void>((resolve) => {
    const req = httpsRequest(url, {
      method: "PATCH",
      ca,
      headers: { cookie, "x-csrf-token": csrf, "content-range": range, "content-length": String(32 * MiB) },
    });
    req.on("error", () => resolve());
    req.write(sent, () => {
      req.destroy();
      resolve();
    });
  });
}

beforeAll(async () => {
  fx = await useFixtures();
  ({ bundle } = await sampleBundle(fx));
  site = await openConsoleSite();
  served = await startConsole({
    app: site.app,
    listen: { host: "127.0.0.1", port: 0 },
    tls: { pki: site.pki },
  });
  previousDispatcher = getGlobalDispatcher();
  setGlobalDispatcher(new Agent({ connect: { ca: await readFile(site.pki.caFile, "utf8") } }));
  admin = await signedIn("alice", "admin");
  csrf = ConsoleClient.csrfOf((await admin.get("/bundles")).body);
}, 120_000);

afterAll(async () => {
  setGlobalDispatcher(previousDispatcher);
  await served?.close();
  await site?.close();
  await fx?.cleanup();
});

describe("the console's bundle upload", () => {
  it("refuses a chunk not at the server's offset with 416 and the offset, an upload the disk cannot hold with 507, and a viewer or a missing CSRF token with 403", async () => {
    const created = await createUpload(admin, 10);
    expect(created.status).toBe(201);
    const session = JSON.parse(created.body) as { id: string; offset: number };
    expect(created.location).toBe(`/uploads/${session.id}`);
    expect(session.offset).toBe(0);
    const early = await patch(admin, session.id, "bytes 4-9/10", new Uint8Array(6));
    expect(early.status).toBe(416);
    expect(((await early.json()) as { offset: number }).offset).toBe(0);
    expect((await patch(admin, session.id, "bytes 0-3/10", new Uint8Array(4))).status).toBe(204);
    const again = await patch(admin, session.id, "bytes 0-3/10", new Uint8Array(4));
    expect(again.status).toBe(416);
    expect(again.headers.get("upload-offset")).toBe("4");

    const viewer = await signedIn("victor", "viewer");
    const viewerCsrf = ConsoleClient.csrfOf((await viewer.get("/bundles")).body);
    expect((await createUpload(viewer, 10, viewerCsrf)).status).toBe(403);
    expect((await createUpload(admin, 10, "forged")).status).toBe(403);
    expect((await admin.request("POST", "/uploads", { name: "x", size: "10" })).status).toBe(403);
    const tooBig = await createUpload(admin, 2 ** 52);
    expect(tooBig.status).toBe(507);
    expect(tooBig.body).toContain("UI_UPLOAD_DISK_FULL");
    expect((await readdir(join(site.dataDir, "console-uploads"))).length).toBe(1);
  });

  it("resumes from the server's offset after a connection dropped mid-chunk, then imports the bundle and lists it", async () => {
    const bytes = await readFile(bundle);
    const size = bytes.byteLength;
    const created = JSON.parse((await createUpload(admin, size)).body) as { id: string };
    const half = Math.floor(size / 2);
    await dropMidChunk(admin, created.id, `bytes 0-${size - 1}/${size}`, bytes.subarray(0, half));
    let offset = -1;
    await waitFor(
      async () => {
        const status = JSON.parse((await admin.get(`/uploads/${created.id}`)).body) as { offset: number };
        offset = status.offset;
        if (offset === 0) return false;
        const rest = await patch(
          admin,
          created.id,
          `bytes ${offset}-${size - 1}/${size}`,
          bytes.subarray(offset),
        );
        return rest.status === 202;
      },
      20_000,
      "the rest of the upload accepted at the server's offset",
    );
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThanOrEqual(half);
    const events = await eventsOf(admin, created.id);
    const last = events.at(-1)!;
    expect(last).toMatchObject({
      phase: "done",
      outcome: { ok: true, name: "mgmt", version: "4.5.0", imported: true },
    });
    expect((await admin.get("/bundles")).body).toContain(
      String((last.outcome as { digest: string }).digest).slice(7, 19),
    );
    expect(
      site.store.listBundles().some((b) => b.digest === (last.outcome as { digest: string }).digest),
    ).toBe(true);
    expect(await readdir(join(site.dataDir, "console-uploads"))).not.toContain(`${created.id}.partial`);
  });

  it("refuses a file that is not a bundle with the verify error's message, and imports nothing", async () => {
    const before = site.store.listBundles().length;
    const junk = new TextEncoder().encode("this is not a tar archive\n".repeat(40_000));
    const created = JSON.parse((await createUpload(admin, junk.byteLength)).body) as { id: string };
    expect(
      (await patch(admin, created.id, `bytes 0-${junk.byteLength - 1}/${junk.byteLength}`, junk)).status,
    ).toBe(202);
    const last = (await eventsOf(admin, created.id)).at(-1)!;
    expect(last.phase).toBe("failed");
    const outcome = last.outcome as { ok: boolean; code: string; message: string };
    expect(outcome.ok).toBe(false);
    expect(outcome.code).toMatch(/^BUNDLE_/);
    expect(outcome.message.length).toBeGreaterThan(10);
    expect(site.store.listBundles().length).toBe(before);
    expect(await readdir(join(site.dataDir, "console-uploads"))).not.toContain(`${created.id}.partial`);
    const status = JSON.parse((await admin.get(`/uploads/${created.id}`)).body) as { state: string };
    expect(status.state).toBe("failed");
  });

  it("keeps a session across a console restart: a new app on the same data dir resumes at the offset", async () => {
    const bytes = await readFile(bundle);
    const size = bytes.byteLength;
    const created = JSON.parse((await createUpload(admin, size)).body) as { id: string };
    const half = Math.floor(size / 2);
    expect(
      (await patch(admin, created.id, `bytes 0-${half - 1}/${size}`, bytes.subarray(0, half))).status,
    ).toBe(204);
    await served.close();
    const app = createConsoleApp({
      dataDir: site.dataDir,
      store: site.store,
      state: site.state,
      pki: site.pki,
      clock: site.clock,
    });
    served = await startConsole({ app, listen: { host: "127.0.0.1", port: 0 }, tls: { pki: site.pki } });
    admin = await signedIn("dave", "admin");
    csrf = ConsoleClient.csrfOf((await admin.get("/bundles")).body);
    const status = JSON.parse((await admin.get(`/uploads/${created.id}`)).body) as {
      offset: number;
      name: string;
    };
    expect(status).toMatchObject({ offset: half, name: "mgmt.airlock.tar" });
    const rest = await patch(admin, created.id, `bytes ${half}-${size - 1}/${size}`, bytes.subarray(half));
    expect(rest.status).toBe(202);
    // The bundle is there from the earlier test: a finished import of it reports so.
    expect((await eventsOf(admin, created.id)).at(-1)).toMatchObject({
      phase: "done",
      outcome: { ok: true, imported: false, name: "mgmt" },
    });
  });

  it("runs an import a restart cut short again when the events are asked for", async () => {
    const bytes = await readFile(bundle);
    const size = bytes.byteLength;
    const created = JSON.parse((await createUpload(admin, size)).body) as { id: string };
    const last = size - 1;
    expect(
      (await patch(admin, created.id, `bytes 0-${last - 1}/${size}`, bytes.subarray(0, last))).status,
    ).toBe(204);
    // What a console killed mid-import leaves: every byte on disk, the row at 'importing', no job.
    await appendFile(join(site.dataDir, "console-uploads", `${created.id}.partial`), bytes.subarray(last));
    site.state.db.prepare("UPDATE ui_uploads SET state = 'importing' WHERE id = ?").run(created.id);
    expect((await eventsOf(admin, created.id)).at(-1)).toMatchObject({
      phase: "done",
      outcome: { ok: true },
    });
    expect(JSON.parse((await admin.get(`/uploads/${created.id}`)).body)).toMatchObject({ state: "done" });
  });

  it("never makes a path of the client's name or an id it did not issue, and drops sessions after a day", async () => {
    const odd = await admin.request(
      "POST",
      "/uploads",
      { name: "../../etc/passwd", size: "4" },
      { "x-csrf-token": csrf },
    );
    const session = JSON.parse(odd.body) as { id: string; name: string };
    expect(session.id).toMatch(/^[0-9a-f]{32}$/);
    expect((await patch(admin, session.id, "bytes 0-1/4", new Uint8Array(2))).status).toBe(204);
    expect(await readdir(join(site.dataDir, "console-uploads"))).toContain(`${session.id}.partial`);
    for (const path of ["/uploads/..%2F..%2Fairlock.db", `/uploads/${session.id}x`]) {
      expect((await admin.get(path)).status, path).toBe(404);
    }
    site.advance(25 * 60 * 60 * 1000);
    admin = await signedIn("erin", "admin");
    csrf = ConsoleClient.csrfOf((await admin.get("/bundles")).body);
    expect((await createUpload(admin, 4)).status).toBe(201);
    expect((await admin.get(`/uploads/${session.id}`)).status).toBe(404);
    expect(await readdir(join(site.dataDir, "console-uploads"))).not.toContain(`${session.id}.partial`);
  });

  it("imports while the bytes arrive: blobs are stored before the last chunk, nothing recorded until it", async () => {
    const other = await useFixtures({ seed: 44 });
    try {
      const { bundle: otherBundle, metadata } = await sampleBundle(other);
      const bytes = await readFile(otherBundle);
      const size = bytes.byteLength;
      const blobs = metadata.files.filter((file) => file.path.startsWith(BLOB_DIR));
      const before = site.store.listBundles().length;
      const created = JSON.parse((await createUpload(admin, size)).body) as { id: string };
      const held = size - 1024;
      expect(
        (await patch(admin, created.id, `bytes 0-${held - 1}/${size}`, bytes.subarray(0, held))).status,
      ).toBe(204);
      // The import reads in 4 MiB steps, each once its bytes are there: all but the last step is stored.
      const total = blobs.reduce((sum, file) => sum + file.size, 0);
      await waitFor(
        async () => {
          const stored = await Promise.all(
            blobs.map(async (file) =>
              (await site.store.blobs.stat(`sha256:${file.sha256}`)) ? file.size : 0,
            ),
          );
          return stored.reduce((sum, bytes) => sum + bytes, 0) >= total / 2;
        },
        20_000,
        "half the blob bytes stored while the last chunk is still to come",
      );
      expect(site.store.listBundles().length).toBe(before);
      expect(
        (await patch(admin, created.id, `bytes ${held}-${size - 1}/${size}`, bytes.subarray(held))).status,
      ).toBe(202);
      expect((await eventsOf(admin, created.id)).at(-1)).toMatchObject({
        phase: "done",
        outcome: { ok: true, imported: true },
      });
      expect(site.store.listBundles().length).toBe(before + 1);
    } finally {
      await other.cleanup();
    }
  });

  it("is driven by curl exactly as the README documents", async () => {
    const readme = await readFile(join(REPO_ROOT, "ui-lite", "README.md"), "utf8");
    const script = /<!-- curl-upload -->\s*```sh\n([\s\S]*?)```/.exec(readme)![1]!;
    const work = await fx.dir("curl");
    await writeFile(join(work, "upload.sh"), `set -euo pipefail\n${script}`);
    await signedIn("carol", "admin");
    const env = { CONSOLE: served.url, CA: site.pki.caFile, ADMIN: "carol", PASSWORD, FILE: bundle };
    const result = await runTool("bash", [join(work, "upload.sh")], {
      cwd: work,
      env: { ...process.env, ...env },
    });
    expect(result.code, result.stderr).toBe(0);
    const data = result.stdout
      .toString()
      .split("\n")
      .filter((line) => line.startsWith("data: "));
    expect(JSON.parse(data.at(-1)!.slice(6))).toMatchObject({
      phase: "done",
      outcome: { ok: true, name: "mgmt" },
    });
  });
});
