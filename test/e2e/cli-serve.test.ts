/**
 * `airlock serve` as a process, through the built CLI: the registry answers a pull over TLS with the
 * pull account, the console its login page over TLS with the site CA, /healthz the parts' states;
 * SIGHUP picks up a new account on a connection it keeps open; a second serve on the data dir is
 * refused naming the first one's PID; SIGTERM stops it cleanly with exit 0 and the daemon lock gone.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { get as httpGet } from "node:http";
import { Agent, request } from "node:https";
import type { Socket } from "node:net";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle } from "../../bundle/index.js";
import { openState } from "../../installer/state/index.js";
import { freePorts } from "../helpers/daemons.js";
import { CLI, REPO_ROOT, runCli, useFixtures, waitFor, type Fixtures } from "../helpers/fixtures.js";

let fx: Fixtures;
let dataDir: string;
let htpasswd: string;
let ports: { registry: number; console: number; health: number };
let serve: ChildProcess;
let stderr = "";
let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

const PULLER = { username: "cluster-pull", password: "pull-password-1" };
const NEWCOMER = { username: "newcomer", password: "newcomer-password" };

async function writeAccounts(accounts: { username: string; password: string }[]): Promise<void> {
  const lines = accounts.map((a) => `${a.username}:${bcrypt.hashSync(a.password, 4)}`);
  await writeFile(htpasswd, `${lines.join("\n")}\n`, { mode: 0o600 });
}

function healthz(): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = httpGet(`http://127.0.0.1:${ports.health}/healthz`, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }),
      );
    });
    req.on("error", reject);
  });
}

interface Answer {
  status: number;
  body: string;
  socket: Socket;
  headers: Record<string, unknown>;
}

/** One HTTPS GET trusting only the site CA, optionally with an account and a keep-alive agent. */
async function httpsGet(
  url: string,
  options: { account?: { username: string; password: string }; agent?: Agent; accept?: string } = {},
): Promise<Answer> {
  const ca = await readFile(join(dataDir, "pki", "ca.crt"), "utf8");
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = {};
    if (options.account !== undefined) {
      const { username, password } = options.account;
      headers.authorization = `Basic ${Buffer.from(`${username}:${password}`).toString("base64")}`;
    }
    if (options.accept !== undefined) headers.accept = options.accept;
    const req = request(url, { ca, headers, agent: options.agent }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () =>
        resolve({ status: res.statusCode ?? 0, body, socket: res.socket, headers: res.headers }),
      );
    });
    req.on("error", reject);
    req.end();
  });
}

const MANIFEST_TYPES = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * 1024 * 1024 });
  const bundle = join(await fx.dir("work"), "mgmt-4.4.0.airlock.tar");
  await buildBundle({ specFile: fx.spec440, output: bundle });
  dataDir = join(await fx.dir("data"), "airlock");
  const imported = await runCli(["--data-dir", dataDir, "bundle", "import", bundle]);
  expect(imported.code, imported.stderr).toBe(0);
  htpasswd = join(fx.root, "htpasswd");
  await writeAccounts([PULLER]);
  const [registry, console, health] = await freePorts(3);
  ports = { registry: registry!, console: console!, health: health! };
  serve = spawn(
    process.execPath,
    [
      ...[CLI, "--data-dir", dataDir, "serve", "--registry-listen", `127.0.0.1:${ports.registry}`],
      ...["--console-listen", `127.0.0.1:${ports.console}`, "--health-listen", `127.0.0.1:${ports.health}`],
      ...["--auth", `htpasswd:${htpasswd}`],
    ],
    { cwd: REPO_ROOT, env: { ...process.env, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] },
  );
  serve.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  serve.stdout!.resume();
  exited = new Promise((resolve) => serve.on("exit", (code, signal) => resolve({ code, signal })));
  await waitFor(
    () =>
      healthz().then(
        ({ status }) => status === 200,
        () => false,
      ),
    30_000,
    `airlock serve to answer /healthz (stderr: ${stderr})`,
  );
}, 120_000);

afterAll(async () => {
  if (serve?.exitCode === null && serve.signalCode === null) {
    serve.kill("SIGKILL");
    await exited;
  }
  await fx?.cleanup();
});

describe("airlock serve", () => {
  it("/healthz answers 200 with each part's state", async () => {
    const { status, body } = await healthz();
    expect(status).toBe(200);
    expect(body).toMatchObject({
      ok: true,
      pid: serve.pid,
      daemon: "serving",
      registry: { state: "up", url: `https://127.0.0.1:${ports.registry}` },
      console: { state: "up", url: `https://127.0.0.1:${ports.console}` },
      // A bare data dir: nothing to resume, nothing scheduled.
      scheduler: { state: "waiting" },
    });
  });

  it("the registry serves a pull over TLS with the site CA to the pull account, and refuses anyone else", async () => {
    const base = `https://127.0.0.1:${ports.registry}/v2/hubble/msgbroker/manifests/4.4.0`;
    const pulled = await httpsGet(base, { account: PULLER, accept: MANIFEST_TYPES });
    expect(pulled.status).toBe(200);
    expect(pulled.headers["docker-content-digest"]).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect((JSON.parse(pulled.body) as { schemaVersion: number }).schemaVersion).toBe(2);
    expect((await httpsGet(base, { accept: MANIFEST_TYPES })).status).toBe(401);
  });

  it("the console serves its login page over TLS with a certificate from the site CA", async () => {
    const login = await httpsGet(`https://127.0.0.1:${ports.console}/login`);
    expect(login.status).toBe(200);
    expect(login.body).toContain('method="post" action="/login"');
    expect(login.body).toContain("<h1>Sign in to Airlock</h1>");
    const overview = await httpsGet(`https://127.0.0.1:${ports.console}/`);
    expect(overview.status).toBe(303);
    expect(overview.headers.location).toBe("/login");
  });

  it("SIGHUP picks up a new account without dropping a connection held open", async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const v2 = `https://127.0.0.1:${ports.registry}/v2/`;
      const before = await httpsGet(v2, { account: PULLER, agent });
      expect(before.status).toBe(200);
      await writeAccounts([PULLER, NEWCOMER]);
      expect((await httpsGet(v2, { account: NEWCOMER, agent })).status).toBe(401);
      const reloads = stderr.split("registry: reloaded").length;
      serve.kill("SIGHUP");
      await waitFor(() => stderr.split("registry: reloaded").length > reloads, 10_000, "the reload");
      const after = await httpsGet(v2, { account: NEWCOMER, agent });
      expect(after.status).toBe(200);
      expect(after.socket).toBe(before.socket);
      expect((await healthz()).status).toBe(200);
    } finally {
      agent.destroy();
    }
  });

  it("a second airlock serve on the same data dir is refused at once, naming the running one's PID", async () => {
    const [registry, console, health] = await freePorts(3);
    const second = await runCli([
      ...["--data-dir", dataDir, "serve", "--registry-listen", `127.0.0.1:${registry}`],
      ...["--console-listen", `127.0.0.1:${console}`, "--health-listen", `127.0.0.1:${health}`],
      ...["--auth", `htpasswd:${htpasswd}`],
    ]);
    expect(second.code).toBe(1);
    expect(second.stderr).toContain(
      `error DAEMON_RUNNING: airlock serve already runs on this data dir: process ${serve.pid} (airlock serve)`,
    );
    expect(second.stderr).toContain(`hint:  stop process ${serve.pid} first`);
    expect((await healthz()).status).toBe(200);
  });

  it("SIGTERM stops it cleanly: exit 0, the ports closed, the daemon lock released", async () => {
    serve.kill("SIGTERM");
    const { code, signal } = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(stderr).toContain("serve: stopped");
    expect(stderr).not.toMatch(/still serving|ERROR/);
    await expect(healthz()).rejects.toThrow(/ECONNREFUSED/);
    const state = openState(dataDir);
    try {
      expect(state.lockHolder("daemon")).toBeUndefined();
    } finally {
      state.close();
    }
  });
});
