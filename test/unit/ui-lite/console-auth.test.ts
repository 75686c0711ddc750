/**
 * The console's auth over HTTP: one-time passwords, sessions and their expiry, CSRF, roles, login
 * back-off and lock. TLS is the browser tests'; here the app runs on plain loopback HTTP.
 */
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCK_MS } from "../../../ui-lite/index.js";
import { openConsoleSite, type ConsoleSite } from "./console-site.js";
import { ConsoleClient, listenLocal } from "./http-client.js";

let site: ConsoleSite;
let server: Server;
let base: string;
let adminPassword: string;
let viewerPassword: string;
const NEW_ADMIN_PASSWORD = "correct horse battery staple";
const NEW_VIEWER_PASSWORD = "viewer staple battery horse";

beforeAll(async () => {
  site = await openConsoleSite();
  server = createServer(site.app);
  base = await listenLocal(server);
  adminPassword = (await site.users.add("alice", "admin")).password;
  viewerPassword = (await site.users.add("victor", "viewer")).password;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  await site.close();
});

async function signedIn(name: string, password: string): Promise<ConsoleClient> {
  const client = new ConsoleClient(base);
  const reply = await client.login(name, password);
  expect(reply.status).toBe(303);
  return client;
}

async function changePassword(client: ConsoleClient, current: string, next: string) {
  const form = await client.get("/password");
  return client.request("POST", "/password", {
    _csrf: ConsoleClient.csrfOf(form.body),
    current,
    next,
    again: next,
  });
}

describe("the console's auth", () => {
  it("opens nothing but the login form and the stylesheet without a session", async () => {
    const client = new ConsoleClient(base);
    for (const path of ["/", "/bundles", "/images", "/certificates", "/events", "/password", "/nope"]) {
      const reply = await client.get(path);
      expect([path, reply.status, reply.location]).toEqual([path, 303, "/login"]);
    }
    expect((await client.request("POST", "/certificates/registry/rotate", { _csrf: "x" })).status).toBe(401);
    expect((await client.get("/login")).status).toBe(200);
    expect((await client.get("/assets/style.css")).status).toBe(200);
  });

  it("sets the session cookie Secure, HttpOnly, SameSite=Strict, and a one-time password opens only the password form", async () => {
    const client = new ConsoleClient(base);
    const reply = await client.login("alice", adminPassword);
    expect(reply.location).toBe("/password");
    const cookie = reply.setCookies.find((line) => line.startsWith("airlock_session="))!;
    expect(cookie).toMatch(/; Secure/);
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; SameSite=Strict/);
    expect((await client.get("/")).location).toBe("/password");
    expect((await changePassword(client, adminPassword, "short")).status).toBe(400);
    const changed = await changePassword(client, adminPassword, NEW_ADMIN_PASSWORD);
    expect([changed.status, changed.location]).toEqual([303, "/"]);
    expect((await client.get("/")).status).toBe(200);
    // The one-time password is spent.
    expect((await new ConsoleClient(base).login("alice", adminPassword)).status).toBe(401);
  });

  it("refuses a sign-in without the login form's token, and keeps a form valid when /login is asked for again", async () => {
    const client = new ConsoleClient(base);
    const form = await client.get("/login");
    const token = ConsoleClient.csrfOf(form.body);
    const forged = await client.request("POST", "/login", {
      _csrf: "x".repeat(43),
      name: "alice",
      password: "p",
    });
    expect(forged.status).toBe(403);
    await client.get("/login");
    const reply = await client.request("POST", "/login", {
      _csrf: token,
      name: "alice",
      password: NEW_ADMIN_PASSWORD,
    });
    expect([reply.status, reply.location]).toEqual([303, "/"]);
    expect(
      site.state.events.list({ action: "ui.login", object: "ui/user/alice", outcome: "failed" }),
    ).toHaveLength(1);
  });

  it("refuses a state change without the session's CSRF token, or with a tampered one, and changes nothing", async () => {
    const client = await signedIn("alice", NEW_ADMIN_PASSWORD);
    const before = (await site.pki.ensureCa()).serialNumber;
    const serialOf = async () => (await import("../../../installer/pki/index.js")).listCertificates(site.pki);
    const registryBefore = (await serialOf()).find((c) => c.name === "registry")!.serialNumber;
    const page = await client.get("/certificates");
    const token = ConsoleClient.csrfOf(page.body);
    const tampered = token.slice(0, -2) + (token.endsWith("AA") ? "BB" : "AA");
    expect((await client.request("POST", "/certificates/registry/rotate", {})).status).toBe(403);
    expect((await client.request("POST", "/certificates/registry/rotate", { _csrf: tampered })).status).toBe(
      403,
    );
    expect(
      (await client.request("POST", "/certificates/registry/rotate", {}, { "x-csrf-token": tampered }))
        .status,
    ).toBe(403);
    expect((await serialOf()).find((c) => c.name === "registry")!.serialNumber).toBe(registryBefore);
    const rotated = await client.request(
      "POST",
      "/certificates/registry/rotate",
      {},
      { "x-csrf-token": token },
    );
    expect([rotated.status, rotated.location]).toEqual([303, "/certificates"]);
    expect((await serialOf()).find((c) => c.name === "registry")!.serialNumber).not.toBe(registryBefore);
    expect((await site.pki.ensureCa()).serialNumber).toBe(before);
    expect(site.state.events.list({ action: "pki.rotate" })).toMatchObject([
      { actor: "alice", object: "certificate/registry" },
    ]);
  });

  it("refuses a path that is not a leaf certificate's name with 404", async () => {
    const client = await signedIn("alice", NEW_ADMIN_PASSWORD);
    const token = ConsoleClient.csrfOf((await client.get("/certificates")).body);
    for (const name of ["..%2F..%2Fetc%2Fpasswd", "ca", "nope"]) {
      const reply = await client.request("POST", `/certificates/${name}/rotate`, { _csrf: token });
      expect([name, reply.status]).toEqual([name, 404]);
    }
    expect((await client.get("/images?page=../1")).status).toBe(400);
    expect((await client.get("/events?outcome=<script>")).body).not.toContain("<script>");
  });

  it("refuses a viewer's forged POST with 403 even with a valid CSRF token", async () => {
    const client = await signedIn("victor", viewerPassword);
    await changePassword(client, viewerPassword, NEW_VIEWER_PASSWORD);
    const page = await client.get("/certificates");
    expect(page.status).toBe(200);
    expect(page.body).not.toContain("/rotate");
    const token = ConsoleClient.csrfOf(page.body);
    const reply = await client.request("POST", "/certificates/registry/rotate", { _csrf: token });
    expect(reply.status).toBe(403);
    expect(reply.body).toContain("victor is a viewer");
  });

  it("ends a session after the idle limit: the next page goes back to login", async () => {
    const client = await signedIn("alice", NEW_ADMIN_PASSWORD);
    expect((await client.get("/")).status).toBe(200);
    site.advance(31 * 60_000);
    expect((await client.get("/")).location).toBe("/login");
  });

  it("ends a busy session at the absolute limit of 12 hours", async () => {
    const client = await signedIn("alice", NEW_ADMIN_PASSWORD);
    for (let hour = 0; hour < 12; hour++) {
      expect((await client.get("/")).status, `hour ${hour}`).toBe(200);
      site.advance(20 * 60_000);
      expect((await client.get("/")).status).toBe(200);
      site.advance(20 * 60_000);
      expect((await client.get("/")).status).toBe(200);
      site.advance(20 * 60_000);
    }
    expect((await client.get("/")).location).toBe("/login");
  });

  it("backs off after 3 failures and locks the account for 15 minutes after 5, then lets the right password in", async () => {
    const client = new ConsoleClient(base);
    const statuses: number[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      statuses.push((await client.login("alice", "wrong password")).status);
      if (attempt >= 2) {
        // The fourth try within its back-off is refused, and counts for nothing.
        if (attempt === 2) expect((await client.login("alice", "wrong password")).status).toBe(429);
        site.advance(60_000);
      }
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401]);
    const locked = await client.login("alice", NEW_ADMIN_PASSWORD);
    expect(locked.status).toBe(429);
    expect(locked.body).toContain("locked for");
    site.advance(LOCK_MS);
    expect((await new ConsoleClient(base).login("alice", NEW_ADMIN_PASSWORD)).location).toBe("/");
    expect(site.state.events.list({ action: "ui.login", outcome: "failed" }).length).toBeGreaterThanOrEqual(
      5,
    );
  });
});
