/**
 * The daemon's scheduler over fake upgrade actions and the real writer lock of a state in a temp
 * dir: it resumes first, starts what is due, holds the lock only while it acts (so another writer
 * runs between), retries when another process holds it, wakes early, and stop() aborts a run in
 * flight through its signal.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Scheduler, type UpgradeActions } from "../../../installer/daemon/index.js";
import { openState, type State } from "../../../installer/state/index.js";
import { silentLogger } from "../../../registry/oci/index.js";
import { waitFor } from "../../helpers/fixtures.js";

let dir: string;
let state: State;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-scheduler-"));
  state = openState(dir);
});

afterEach(async () => {
  state.close();
  await rm(dir, { recursive: true, force: true });
});

/** Fake actions: a due time the test sets, each call recorded with whether the lock was held then. */
function fakeActions(options: { run?: (signal: AbortSignal) => Promise<string> } = {}) {
  const calls: { what: string; lockHeld: boolean }[] = [];
  let due: Date | undefined;
  const actions: UpgradeActions = {
    resumeInterrupted: () => {
      calls.push({ what: "resume", lockHeld: state.lockHolder() !== undefined });
      return Promise.resolve(undefined);
    },
    nextDueAt: () => due,
    startDue: async (_now, signal) => {
      calls.push({ what: "start", lockHeld: state.lockHolder() !== undefined });
      due = undefined;
      return options.run === undefined ? "upgraded" : options.run(signal);
    },
  };
  return { actions, calls, setDue: (at: Date | undefined) => (due = at) };
}

function scheduler(actions: UpgradeActions, maxWaitMs = 60_000): Scheduler {
  return new Scheduler({
    actions,
    lock: () => state.lock("airlock serve"),
    clock: () => new Date(),
    logger: silentLogger,
    maxWaitMs,
    lockRetryMs: 20,
  });
}

describe("the daemon's scheduler", () => {
  it("resumes an interrupted run first, under the lock, then waits with the lock free", async () => {
    const fake = fakeActions();
    const s = scheduler(fake.actions);
    s.start();
    await waitFor(() => s.status().state === "waiting", 5_000, "the first wait");
    expect(fake.calls).toEqual([{ what: "resume", lockHeld: true }]);
    expect(state.lockHolder()).toBeUndefined();
    await s.stop();
    expect(s.status().state).toBe("stopped");
  });

  it("wake() starts an upgrade made due by another writer, before the capped wait ends", async () => {
    const fake = fakeActions();
    const s = scheduler(fake.actions);
    s.start();
    await waitFor(() => s.status().state === "waiting", 5_000, "the first wait");
    fake.setDue(new Date(Date.now() - 1));
    s.wake();
    await waitFor(() => fake.calls.length === 2, 5_000, "the start");
    expect(fake.calls[1]).toEqual({ what: "start", lockHeld: true });
    await waitFor(() => s.status().last === "upgraded", 5_000, "the result");
    expect(state.lockHolder()).toBeUndefined();
    await s.stop();
  });

  it("sees a schedule written elsewhere at its next look without a wake (the wait is capped)", async () => {
    const fake = fakeActions();
    const s = scheduler(fake.actions, 30);
    s.start();
    await waitFor(() => s.status().state === "waiting", 5_000, "the first wait");
    fake.setDue(new Date(Date.now() - 1));
    await waitFor(() => fake.calls.some((call) => call.what === "start"), 5_000, "the start");
    await s.stop();
  });

  it("while another process holds the writer lock it waits and tries again, then acts", async () => {
    const held = state.lock("airlock upgrade run");
    // The lock row names this test's own PID: alive, so the scheduler must see it as held.
    const fake = fakeActions();
    const s = scheduler(fake.actions);
    s.start();
    await waitFor(
      () => /another airlock is changing this site/.test(s.status().last ?? ""),
      5_000,
      "LOCK_HELD",
    );
    expect(fake.calls).toEqual([]);
    held.release();
    await waitFor(() => fake.calls.length === 1, 5_000, "the resume after the lock went");
    await s.stop();
  });

  it("stop() aborts a run in flight through its signal and releases the lock", async () => {
    let aborted = false;
    const fake = fakeActions({
      run: (signal) =>
        new Promise((_resolve, reject) => {
          signal.addEventListener("abort", () => {
            aborted = true;
            reject(signal.reason as Error);
          });
        }),
    });
    fake.setDue(new Date(Date.now() - 1));
    const s = scheduler(fake.actions);
    s.start();
    await waitFor(() => s.status().state === "running" && fake.calls.length === 2, 5_000, "the run");
    expect(state.lockHolder()?.command).toBe("airlock serve");
    await s.stop();
    expect(aborted).toBe(true);
    expect(state.lockHolder()).toBeUndefined();
    expect(s.status().state).toBe("stopped");
    expect(s.status().last).toContain("safe point");
  });

  it("an action that fails is logged and recorded, and the scheduler goes on waiting", async () => {
    const fake = fakeActions({ run: () => Promise.reject(new Error("cluster gone")) });
    fake.setDue(new Date(Date.now() - 1));
    const s = scheduler(fake.actions);
    s.start();
    await waitFor(
      () => /start failed: Error: cluster gone/.test(s.status().last ?? ""),
      5_000,
      "the failure",
    );
    expect(s.status().state).toBe("waiting");
    await s.stop();
  });
});
