/** The console's users, passwords and login counts in airlock.db, as the CLI and the console use them. */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openState, type State } from "../../../installer/state/index.js";
import { LoginThrottle } from "../../../ui-lite/throttle.js";
import { html } from "../../../ui-lite/html.js";
import { UI_SCHEMA_VERSION, UserRecords } from "../../../ui-lite/index.js";
import { rejection } from "../../helpers/errors.js";

let dataDir: string;
let state: State;
let now: number;
const clock = (): Date => new Date(now);

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-ui-users-"));
  state = openState(dataDir);
  now = Date.parse("2026-12-03T12:00:00.000Z");
});

afterEach(async () => {
  state.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe("console users", () => {
  it("keep their schema on their own migration track, applied once however often it is opened", () => {
    new UserRecords(state);
    new UserRecords(state);
    const row = state.db.prepare("SELECT version FROM schema_migrations WHERE component = 'ui'").get();
    expect(row).toEqual({ version: UI_SCHEMA_VERSION });
  });

  it("store a per-user salted scrypt hash, never the one-time password, and log each change", async () => {
    const users = new UserRecords(state, clock);
    const a = await users.add("alice", "admin");
    const b = await users.add("bob", "viewer");
    expect(a.password).toMatch(/^[A-Za-z0-9]{20}$/);
    const hashes = state.db.prepare("SELECT password_hash FROM ui_users ORDER BY name").all() as {
      password_hash: string;
    }[];
    for (const { password_hash } of hashes) {
      expect(password_hash).toMatch(/^scrypt\$32768\$8\$1\$[\w-]{22}\$[\w-]{43}$/);
      expect(password_hash).not.toContain(a.password);
    }
    expect(hashes[0]!.password_hash.split("$")[4]).not.toBe(hashes[1]!.password_hash.split("$")[4]);
    expect(await users.authenticate("alice", a.password)).toMatchObject({
      name: "alice",
      mustChangePassword: true,
    });
    expect(await users.authenticate("alice", b.password)).toBeUndefined();
    expect(await users.authenticate("nobody", a.password)).toBeUndefined();
    expect(state.events.list({ object: "ui/user/" }).map((e) => e.action)).toEqual([
      "ui.user.add",
      "ui.user.add",
    ]);
  });

  it("refuse a bad name, a second user of one name, removing the last admin, and an unknown user", async () => {
    const users = new UserRecords(state, clock);
    await users.add("alice", "admin");
    expect(await rejection(users.add("Alice", "admin"))).toMatchObject({ code: "USAGE", exitCode: 2 });
    expect(await rejection(users.add("../x", "admin"))).toMatchObject({ code: "USAGE" });
    expect(await rejection(users.add("alice", "viewer"))).toMatchObject({ code: "UI_USER_EXISTS" });
    expect(() => users.remove("alice")).toThrow(expect.objectContaining({ code: "UI_LAST_ADMIN" }));
    expect(() => users.remove("zed")).toThrow(expect.objectContaining({ code: "UI_USER_NOT_FOUND" }));
    expect(await rejection(users.resetPassword("zed"))).toMatchObject({ code: "UI_USER_NOT_FOUND" });
    await users.add("bob", "viewer");
    users.remove("bob");
    expect(users.list().map((u) => u.name)).toEqual(["alice"]);
  });

  it("reset-password gives a new one-time password and ends the user's sessions; a change needs the current one", async () => {
    const users = new UserRecords(state, clock);
    const { password } = await users.add("alice", "admin");
    expect(await rejection(users.changePassword("alice", "wrong", "a new long password"))).toMatchObject({
      code: "UI_PASSWORD_WRONG",
    });
    expect(await rejection(users.changePassword("alice", password, "short"))).toMatchObject({
      code: "UI_PASSWORD_WEAK",
    });
    await users.changePassword("alice", password, "a new long password");
    expect(users.get("alice")!.mustChangePassword).toBe(false);
    state.db
      .prepare(
        "INSERT INTO ui_sessions (token_hash, user_id, csrf_token, created_at, last_seen_at) VALUES ('h', ?, 'c', 't', 't')",
      )
      .run(users.get("alice")!.id);
    const reset = await users.resetPassword("alice");
    expect(users.get("alice")!.mustChangePassword).toBe(true);
    expect(await users.authenticate("alice", "a new long password")).toBeUndefined();
    expect(await users.authenticate("alice", reset)).toBeDefined();
    expect(state.db.prepare("SELECT count(*) AS n FROM ui_sessions").get()).toEqual({ n: 0 });
  });
});

describe("the login throttle", () => {
  it("locks an address after 5 failures whatever names they tried, and forgets after the lock", () => {
    new UserRecords(state);
    const throttle = new LoginThrottle(state.db, clock);
    for (let i = 0; i < 5; i++) {
      expect(throttle.check(`name${i}`, "10.0.0.9")).toEqual({ allowed: true });
      throttle.fail(`name${i}`, "10.0.0.9");
      now += 60_000;
    }
    expect(throttle.check("someone-else", "10.0.0.9")).toMatchObject({ allowed: false, locked: true });
    expect(throttle.check("someone-else", "10.0.0.10")).toEqual({ allowed: true });
    now += 15 * 60_000;
    expect(throttle.check("someone-else", "10.0.0.9")).toEqual({ allowed: true });
  });

  it("backs off after the third failure: 2 s, then 4 s", () => {
    new UserRecords(state);
    const throttle = new LoginThrottle(state.db, clock);
    for (let i = 0; i < 3; i++) throttle.fail("alice", `10.0.0.${i}`);
    expect(throttle.check("alice", "10.0.0.50")).toMatchObject({ allowed: false, locked: false });
    now += 2_000;
    expect(throttle.check("alice", "10.0.0.50")).toEqual({ allowed: true });
    throttle.fail("alice", "10.0.0.50");
    now += 2_000;
    expect(throttle.check("alice", "10.0.0.51")).toMatchObject({ allowed: false });
    now += 2_000;
    expect(throttle.check("alice", "10.0.0.51")).toEqual({ allowed: true });
  });
});

describe("html", () => {
  it("escapes every interpolated value but markup it made itself", () => {
    const name = `<img src=x onerror="alert(1)">&'`;
    expect(html`<td title="${name}">${name}${html`<b>${name}</b>`}</td>`.text).toBe(
      '<td title="&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;">&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;<b>&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#39;</b></td>',
    );
  });
});
