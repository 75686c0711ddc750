/**
 * The installer's state across real processes (issue 13, point 1): of two processes racing for the
 * writer lock exactly one wins and the other's error names the winner's PID; a SIGKILLed holder's
 * lock is taken over; a process killed inside a transaction leaves nothing of it visible.
 * The children run the built library from dist/.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { openState } from "../../installer/state/index.js";
import { REPO_ROOT, waitFor } from "../helpers/fixtures.js";
import { rejection } from "../helpers/errors.js";

const STATE_LIB = pathToFileURL(join(REPO_ROOT, "dist", "installer", "state", "index.js")).href;

/**
 * A child that waits for the start time, opens the state (both racers migrate the fresh data dir at
 * once), takes the lock, prints one JSON line with the outcome — a failed open too — and (when it
 * won) holds the lock until its stdin closes.
 */
const LOCKER = `
import { openState } from ${JSON.stringify(STATE_LIB)};
const [dataDir, startAt] = process.argv.slice(2);
while (Date.now() < Number(startAt));
let state;
try {
  state = openState(dataDir);
  state.lock("airlock install (child " + process.pid + ")");
  process.stdout.write(JSON.stringify({ pid: process.pid, won: true }) + "\\n");
  process.stdin.resume();
  process.stdin.on("end", () => state.close());
} catch (error) {
  process.stdout.write(JSON.stringify({ pid: process.pid, won: false, code: error.code, message: error.message }) + "\\n");
  state?.close();
}
`;

/** A child that commits an install, then dies by SIGKILL halfway through a release's transaction. */
const CRASHER = `
import { openState } from ${JSON.stringify(STATE_LIB)};
const state = openState(process.argv[2]);
const install = state.installs.start({ bundleDigest: "sha256:aa", bundleName: "mgmt", version: "4.5.0", steps: ["apply"] });
state.transaction(() => {
  state.installs.startStep(install.id, "apply");
  state.releases.record({ installId: install.id, bundleDigest: "sha256:aa", bundleName: "mgmt", version: "4.5.0",
    valuesGiven: {}, valuesEffective: {}, objects: [{ kind: "Namespace" }] });
  process.kill(process.pid, "SIGKILL");
});
`;

interface LockOutcome {
  pid: number;
  won: boolean;
  code?: string;
  message?: string;
}

let dir: string;
const children = new Set<ChildProcess>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-state-procs-"));
  await writeFile(join(dir, "locker.mjs"), LOCKER);
  await writeFile(join(dir, "crasher.mjs"), CRASHER);
});

afterEach(() => {
  for (const child of children) child.kill("SIGKILL");
  children.clear();
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function startChild(script: string, args: string[]): { child: ChildProcess; lines: string[] } {
  const child = spawn(process.execPath, [join(dir, script), ...args], { stdio: ["pipe", "pipe", "inherit"] });
  children.add(child);
  const lines: string[] = [];
  let buffer = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    buffer += chunk;
    const parts = buffer.split("\n");
    buffer = parts.pop()!;
    lines.push(...parts);
  });
  return { child, lines };
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolvePromise) =>
    child.once("exit", (code, signal) => resolvePromise({ code, signal })),
  );
}

describe("the writer lock across processes", () => {
  it("of two processes racing for it (and for migrating a fresh data dir), exactly one wins; the other's error names the winner's PID", async () => {
    for (let round = 0; round < 3; round++) {
      const dataDir = join(dir, `race-${round}`);
      const startAt = String(Date.now() + 600);
      const racers = [
        startChild("locker.mjs", [dataDir, startAt]),
        startChild("locker.mjs", [dataDir, startAt]),
      ];
      await waitFor(() => racers.every((r) => r.lines.length > 0), 20_000, "both racers to report");
      const outcomes = racers.map((r) => JSON.parse(r.lines[0]!) as LockOutcome);
      const winners = outcomes.filter((o) => o.won);
      const losers = outcomes.filter((o) => !o.won);
      expect(winners).toHaveLength(1);
      expect(losers).toHaveLength(1);
      expect(losers[0]).toMatchObject({ code: "LOCK_HELD" });
      expect(losers[0]!.message).toContain(
        `process ${winners[0]!.pid} (airlock install (child ${winners[0]!.pid}))`,
      );
      for (const racer of racers) racer.child.stdin!.end();
      await Promise.all(racers.map((r) => exited(r.child)));
      const state = openState(dataDir);
      try {
        expect(state.lockHolder()).toBeUndefined();
      } finally {
        state.close();
      }
    }
  });

  it("held by a process that was SIGKILLed is taken over", async () => {
    const dataDir = join(dir, "killed");
    const holder = startChild("locker.mjs", [dataDir, "0"]);
    await waitFor(() => holder.lines.length > 0, 20_000, "the holder to take the lock");
    const outcome = JSON.parse(holder.lines[0]!) as LockOutcome;
    expect(outcome.won).toBe(true);

    const state = openState(dataDir);
    try {
      const error = await rejection(Promise.resolve().then(() => state.lock("airlock install")));
      expect(error.code).toBe("LOCK_HELD");
      expect(error.message).toContain(`process ${outcome.pid}`);

      holder.child.kill("SIGKILL");
      expect((await exited(holder.child)).signal).toBe("SIGKILL");
      const lock = state.lock("airlock install");
      expect(lock.holder.pid).toBe(process.pid);
      lock.release();
    } finally {
      state.close();
    }
  });
});

describe("a process killed inside a transaction", () => {
  it("leaves what it committed before, and nothing of the transaction", async () => {
    const dataDir = join(dir, "crash");
    const { child } = startChild("crasher.mjs", [dataDir]);
    expect((await exited(child)).signal).toBe("SIGKILL");
    const state = openState(dataDir);
    try {
      const [install] = state.installs.list();
      expect(install).toMatchObject({ bundleName: "mgmt", state: "running" });
      expect(state.installs.step(install!.id, "apply").state).toBe("pending");
      expect(state.releases.list()).toEqual([]);
      expect(state.events.list().map((e) => e.action)).toEqual(["install.start"]);
    } finally {
      state.close();
    }
  });
});
