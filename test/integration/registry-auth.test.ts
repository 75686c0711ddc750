/**
 * Registry authentication (issue 4, point 4): htpasswd basic auth and the bearer-token flow, with
 * accounts made by Apache's real `htpasswd -B`, checked with skopeo and with raw requests.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBundle, type BundleMetadata } from "../../bundle/index.js";
import { Store } from "../../registry/store/index.js";
import {
  Authenticator,
  loadHtpasswd,
  startRegistryServer,
  type AuthConfig,
  type RunningRegistry,
} from "../../registry/server/index.js";
import {
  MiB,
  runCli,
  runTool,
  sha256Hex,
  useFixtures,
  sampleBundle,
  type Fixtures,
} from "../helpers/fixtures.js";

let fx: Fixtures;
let store: Store;
let bundle: string;
let metadata: BundleMetadata;
let htpasswd: string;
const servers: RunningRegistry[] = [];

const PASSWORDS = { alice: "alice-pulls", bob: "bob-pushes" };

beforeAll(async () => {
  fx = await useFixtures({ size: 12 * MiB });
  ({ bundle, metadata } = await sampleBundle(fx));
  store = await Store.open(await fx.dir("data"));
  await importBundle(store, [bundle]);
  htpasswd = join(await fx.dir("auth"), "htpasswd");
  const lines: string[] = [];
  for (const [user, password] of Object.entries(PASSWORDS)) {
    const made = await runTool("htpasswd", ["-Bbn", user, password]);
    expect(made.code, made.stderr).toBe(0);
    lines.push(made.stdout.toString().trim());
  }
  await writeFile(htpasswd, lines.join("\n") + "\n");
});

afterAll(async () => {
  for (const server of servers) await server.close();
  store?.close();
  await fx?.cleanup();
});

async function serve(config: Partial<AuthConfig> & Pick<AuthConfig, "mode">): Promise<RunningRegistry> {
  const auth = new Authenticator({
    users: await loadHtpasswd(htpasswd),
    pushUsers: new Set(["bob"]),
    anonymousPull: false,
    ...config,
  });
  const server = await startRegistryServer(store, { listen: "127.0.0.1:0", auth, allowPush: true });
  servers.push(server);
  return server;
}

function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
}

function host(server: RunningRegistry): string {
  return server.url.replace("http://", "");
}

async function skopeoPull(server: RunningRegistry, creds: string | undefined, ref = "hubble/console:4.5.0") {
  return runTool("skopeo", [
    "inspect",
    "--raw",
    "--tls-verify=false",
    ...(creds === undefined ? ["--no-creds"] : ["--creds", creds]),
    `docker://${host(server)}/${ref}`,
  ]);
}

async function skopeoPush(server: RunningRegistry, creds: string, ref: string) {
  return runTool("skopeo", [
    "copy",
    "--all",
    "--preserve-digests",
    "--dest-tls-verify=false",
    "--dest-creds",
    creds,
    `oci-archive:${bundle}:hubble/console:4.5.0`,
    `docker://${host(server)}/${ref}`,
  ]);
}

describe.each(["basic", "token"] as const)("%s auth with skopeo", (mode) => {
  let server: RunningRegistry;
  beforeAll(async () => {
    server = await serve({ mode });
  });

  it("refuses a pull without credentials and with a wrong password", async () => {
    expect((await skopeoPull(server, undefined)).code).not.toBe(0);
    const wrong = await skopeoPull(server, "alice:wrong");
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/unauthorized|authentication/i);
  });

  it("lets any account pull, byte for byte", async () => {
    const pulled = await skopeoPull(server, `alice:${PASSWORDS.alice}`);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(`sha256:${sha256Hex(pulled.stdout)}`).toBe(
      metadata.images.find((i) => i.ref === "hubble/console:4.5.0")!.digest,
    );
  });

  it("lets only push accounts push", async () => {
    const denied = await skopeoPush(server, `alice:${PASSWORDS.alice}`, `${mode}/by-alice:1`);
    expect(denied.code).not.toBe(0);
    const pushed = await skopeoPush(server, `bob:${PASSWORDS.bob}`, `${mode}/by-bob:1`);
    expect(pushed.code, pushed.stderr).toBe(0);
    expect((await skopeoPull(server, `alice:${PASSWORDS.alice}`, `${mode}/by-bob:1`)).code).toBe(0);
  });
});

describe("basic auth's check once a minute", () => {
  it("a password checked once is not a pass for another: after alice's right one, a wrong one still fails", async () => {
    // Stopped with the others in afterAll.
    const server = await serve({ mode: "basic" });
    const basic = (password: string) => ({
      headers: { Authorization: `Basic ${Buffer.from(`alice:${password}`).toString("base64")}` },
    });
    expect((await fetch(`${server.url}/v2/`, basic(PASSWORDS.alice))).status).toBe(200);
    expect((await fetch(`${server.url}/v2/`, basic(PASSWORDS.alice))).status).toBe(200);
    expect((await fetch(`${server.url}/v2/`, basic(`${PASSWORDS.alice}x`))).status).toBe(401);
  });
});

describe("the bearer-token flow", () => {
  let server: RunningRegistry;
  beforeAll(async () => {
    server = await serve({ mode: "token" });
  });

  async function token(user: string, password: string, scope: string): Promise<string> {
    const response = await fetch(`${server.url}/token?service=airlock&scope=${encodeURIComponent(scope)}`, {
      headers: { Authorization: basic(user, password) },
    });
    expect(response.status).toBe(200);
    return ((await response.json()) as { token: string }).token;
  }

  function claims(jwt: string): { access: { name: string; actions: string[] }[]; exp: number; sub: string } {
    return JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()) as never;
  }

  it("challenges with realm, service and scope", async () => {
    const response = await fetch(`${server.url}/v2/hubble/console/manifests/4.5.0`);
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe(
      `Bearer realm="${server.url}/token",service="airlock",scope="repository:hubble/console:pull"`,
    );
  });

  it("grants only what the account may: pull for alice, pull and push for bob", async () => {
    expect(
      claims(await token("alice", PASSWORDS.alice, "repository:hubble/console:pull,push")).access,
    ).toEqual([{ type: "repository", name: "hubble/console", actions: ["pull"] }]);
    expect(claims(await token("bob", PASSWORDS.bob, "repository:hubble/console:pull,push")).access).toEqual([
      { type: "repository", name: "hubble/console", actions: ["pull", "push"] },
    ]);
  });

  it("a token works for its scope only: another repository or a push is insufficient_scope", async () => {
    const jwt = await token("alice", PASSWORDS.alice, "repository:hubble/console:pull");
    const headers = { Authorization: `Bearer ${jwt}` };
    expect((await fetch(`${server.url}/v2/hubble/console/manifests/4.5.0`, { headers })).status).toBe(200);
    const other = await fetch(`${server.url}/v2/hubble/agent/manifests/4.5.0`, { headers });
    expect(other.status).toBe(401);
    expect(other.headers.get("www-authenticate")).toContain('error="insufficient_scope"');
    const push = await fetch(`${server.url}/v2/hubble/console/blobs/uploads/`, { method: "POST", headers });
    expect(push.status).toBe(401);
  });

  it("refuses an expired token and a tampered one as invalid_token", async () => {
    const shortLived = await serve({ mode: "token", tokenTtlSeconds: 0 });
    const expired = (await (
      await fetch(`${shortLived.url}/token?scope=repository:hubble/console:pull`, {
        headers: { Authorization: basic("alice", PASSWORDS.alice) },
      })
    ).json()) as { token: string };
    const stale = await fetch(`${shortLived.url}/v2/hubble/console/manifests/4.5.0`, {
      headers: { Authorization: `Bearer ${expired.token}` },
    });
    expect(stale.status).toBe(401);
    expect(stale.headers.get("www-authenticate")).toContain('error="invalid_token"');

    const jwt = await token("alice", PASSWORDS.alice, "repository:hubble/console:pull");
    const [head, , signature] = jwt.split(".");
    const forged = Buffer.from(
      JSON.stringify({
        ...claims(jwt),
        access: [{ type: "repository", name: "hubble/console", actions: ["pull", "push"] }],
      }),
    ).toString("base64url");
    const tampered = await fetch(`${server.url}/v2/hubble/console/blobs/uploads/`, {
      method: "POST",
      headers: { Authorization: `Bearer ${head}.${forged}.${signature}` },
    });
    expect(tampered.status).toBe(401);
    expect(tampered.headers.get("www-authenticate")).toContain('error="invalid_token"');
  });

  it("limits failed logins per address: the sixth wrong password in a minute gets 429 with Retry-After", async () => {
    const limited = await serve({ mode: "token" });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) {
      const response = await fetch(`${limited.url}/token?scope=repository:hubble/console:pull`, {
        headers: { Authorization: basic("alice", "wrong") },
      });
      statuses.push(response.status);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    const blocked = await fetch(`${limited.url}/token?scope=repository:hubble/console:pull`, {
      headers: { Authorization: basic("alice", PASSWORDS.alice) },
    });
    expect(blocked.status).toBe(429);
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});

describe("anonymous pull", () => {
  it("is refused unless asked for, and never extends to push", async () => {
    const open = await serve({ mode: "token", anonymousPull: true });
    const pulled = await skopeoPull(open, undefined);
    expect(pulled.code, pulled.stderr).toBe(0);
    const push = await fetch(`${open.url}/v2/hubble/console/blobs/uploads/`, { method: "POST" });
    expect(push.status).toBe(401);
  });
});

describe("airlock registry serve flags", () => {
  it("needs --auth or --anonymous-pull, and --push-user accounts that exist", async () => {
    const data = await fx.dir("cli");
    const serve = (...flags: string[]) =>
      runCli([
        "--data-dir",
        data,
        "registry",
        "serve",
        "--insecure-http",
        "--listen",
        "127.0.0.1:0",
        ...flags,
      ]);
    const none = await serve();
    expect(none.code).toBe(2);
    expect(none.stderr).toContain("--anonymous-pull");
    const ghost = await serve("--auth", `htpasswd:${htpasswd}`, "--push-user", "carol");
    expect(ghost.code).toBe(2);
    expect(ghost.stderr).toContain("carol");
  });
});
