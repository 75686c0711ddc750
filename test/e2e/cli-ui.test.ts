/**
 * `airlock ui user add|ls|rm|reset-password` through the built CLI: a one-time password printed once,
 * the list as text or JSON, usage errors exit 2, failures exit 1 with code and hint.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openState } from "../../installer/state/index.js";
import { UserRecords } from "../../ui-lite/index.js";
import { runCli, type CliResult } from "../helpers/fixtures.js";

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-cli-ui-"));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const cli = (args: string[]): Promise<CliResult> => runCli(["--data-dir", dataDir, ...args]);

async function ok(args: string[]): Promise<CliResult> {
  const result = await cli(args);
  expect(result.code, `airlock ${args.join(" ")}\n${result.stderr}`).toBe(0);
  return result;
}

/** Whether a password signs the user in, checked through the library the console uses. */
async function signsIn(name: string, password: string): Promise<boolean> {
  const state = openState(dataDir);
  try {
    return (await new UserRecords(state).authenticate(name, password)) !== undefined;
  } finally {
    state.close();
  }
}

describe("airlock ui user, run as a user", () => {
  it("add prints a one-time password that signs the user in; ls shows it still to be changed", async () => {
    const added = await ok(["ui", "user", "add", "alice", "--role", "admin"]);
    const password = /one-time password: (\S+)/.exec(added.stdout)![1]!;
    expect(await signsIn("alice", password)).toBe(true);
    const json = JSON.parse(
      (await ok(["ui", "user", "add", "bob", "--role", "viewer", "--json"])).stdout,
    ) as {
      user: { name: string; role: string };
      password: string;
    };
    expect(json.user).toMatchObject({ name: "bob", role: "viewer" });
    expect(await signsIn("bob", json.password)).toBe(true);
    const listed = JSON.parse((await ok(["ui", "user", "ls", "--json"])).stdout) as { users: unknown[] };
    expect(listed.users).toMatchObject([
      { name: "alice", role: "admin", mustChangePassword: true },
      { name: "bob", role: "viewer", mustChangePassword: true },
    ]);
    expect((await ok(["ui", "user", "ls"])).stdout).toMatch(
      /^alice\s+admin\s+\d{4}-\d\d-\d\d\s+\(one-time password/m,
    );
  });

  it("reset-password replaces the password; rm removes a user but never the last admin", async () => {
    const reset = await ok(["ui", "user", "reset-password", "bob"]);
    expect(await signsIn("bob", /one-time password: (\S+)/.exec(reset.stdout)![1]!)).toBe(true);
    await ok(["ui", "user", "rm", "bob"]);
    const last = await cli(["ui", "user", "rm", "alice"]);
    expect(last.code).toBe(1);
    expect(last.stderr).toContain("error UI_LAST_ADMIN");
    const missing = await cli(["ui", "user", "rm", "bob"]);
    expect([missing.code, missing.stderr]).toEqual([1, expect.stringContaining("UI_USER_NOT_FOUND")]);
  });

  it("refuses a bad name or role as usage, exit 2", async () => {
    expect((await cli(["ui", "user", "add", "Root", "--role", "admin"])).code).toBe(2);
    expect((await cli(["ui", "user", "add", "carol", "--role", "root"])).code).toBe(2);
    expect((await cli(["ui", "user", "add", "carol"])).code).toBe(2);
  });
});
