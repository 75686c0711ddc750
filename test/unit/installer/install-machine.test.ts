/**
 * The install's state machine with fake steps: each step's state in SQLite, a failing step leaves
 * the install resumable from it, a re-run skips what still holds and re-runs from the first step
 * that does not, and the writer lock keeps a second run out.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { runMachine, type StepDefinition, type StepEvent } from "../../../installer/install/index.js";
import { openState, type State } from "../../../installer/state/index.js";
import { AirlockError } from "../../../registry/oci/index.js";
import { rejection } from "../../helpers/errors.js";

interface FakeWorld {
  /** How often each step's work ran. */
  runs: Map<string, number>;
  /** Steps whose work fails while named here. */
  failing: Set<string>;
  /** Steps whose earlier work no longer holds (their re-check says so). */
  undone: Set<string>;
}

const NAMES = ["preflight", "import", "pki", "registry", "apply"];
const IDENTITY = { bundleDigest: "sha256:aa", bundleName: "mgmt", version: "4.5.0" };

function fakeStep(name: string): StepDefinition<FakeWorld> {
  return {
    name,
    title: name.toUpperCase(),
    stillDone: (world, detail) => Promise.resolve(!world.undone.has(name) && detail.ran === true),
    run: (world) => {
      world.runs.set(name, (world.runs.get(name) ?? 0) + 1);
      if (world.failing.has(name)) {
        return Promise.reject(new AirlockError("NODE_COMMAND_FAILED", `${name} failed`, { hint: "fix it" }));
      }
      return Promise.resolve({ detail: { ran: true, step: name }, summary: `${name} ran` });
    },
  };
}

let dataDir: string;
let state: State;
let world: FakeWorld;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-machine-"));
  state = openState(dataDir, { actor: "test" });
  world = { runs: new Map(), failing: new Set(), undone: new Set() };
});

afterEach(async () => {
  state.close();
  await rm(dataDir, { recursive: true, force: true });
});

function run(events: StepEvent[] = [], identity = IDENTITY): ReturnType<typeof runMachine<FakeWorld>> {
  return runMachine({
    state,
    identity,
    steps: NAMES.map(fakeStep),
    context: world,
    details: new Map(),
    onStep: (event) => events.push(event),
  });
}

describe("the install state machine", () => {
  it("runs every step in order, recording each done with its detail and an event per change", async () => {
    const events: StepEvent[] = [];
    const result = await run(events);
    expect(result.started).toBe(true);
    expect(result.install.state).toBe("done");
    expect(result.steps.map((step) => [step.name, step.outcome])).toEqual(
      NAMES.map((name) => [name, "done"]),
    );
    expect(events.map((event) => `${event.name}:${event.phase}`)).toEqual(
      NAMES.flatMap((name) => [`${name}:start`, `${name}:done`]),
    );
    const steps = state.installs.steps(result.install.id);
    expect(steps.map((step) => [step.name, step.state, step.detail.step])).toEqual(
      NAMES.map((name) => [name, "done", name]),
    );
    expect(steps.every((step) => step.startedAt !== undefined && step.endedAt !== undefined)).toBe(true);
    const logged = state.events.list({ object: `install/${result.install.id}/step/` });
    expect(logged.map((event) => event.outcome)).toEqual(NAMES.flatMap(() => ["started", "ok"]));
  });

  it("a failing step fails the install, keeps its error code, and the next run resumes from it", async () => {
    world.failing.add("registry");
    const events: StepEvent[] = [];
    const error = await rejection(run(events));
    expect(error.code).toBe("NODE_COMMAND_FAILED");
    expect(events.at(-1)).toMatchObject({
      name: "registry",
      phase: "failed",
      error: { code: "NODE_COMMAND_FAILED" },
    });
    const install = state.installs.latest()!;
    expect(install.state).toBe("failed");
    expect(state.installs.steps(install.id).map((step) => [step.name, step.state])).toEqual([
      ["preflight", "done"],
      ["import", "done"],
      ["pki", "done"],
      ["registry", "failed"],
      ["apply", "pending"],
    ]);
    expect(state.installs.step(install.id, "registry")).toMatchObject({
      errorCode: "NODE_COMMAND_FAILED",
      errorMessage: "registry failed",
    });

    world.failing.clear();
    const resumed = await run();
    expect(resumed.started).toBe(false);
    expect(resumed.install.id).toBe(install.id);
    expect(resumed.install.state).toBe("done");
    expect(resumed.steps.map((step) => step.outcome)).toEqual([
      "already-done",
      "already-done",
      "already-done",
      "done",
      "done",
    ]);
    expect(Object.fromEntries(world.runs)).toEqual({
      preflight: 1,
      import: 1,
      pki: 1,
      registry: 2,
      apply: 1,
    });
    expect(state.installs.step(install.id, "registry").errorCode).toBeUndefined();
    expect(state.installs.list()).toHaveLength(1);
  });

  it("a finished step whose re-check fails runs again, and so does every step after it", async () => {
    world.failing.add("apply");
    await rejection(run());
    world.failing.clear();
    world.undone.add("import");
    const resumed = await run();
    expect(resumed.steps.map((step) => [step.name, step.outcome])).toEqual([
      ["preflight", "already-done"],
      ["import", "done"],
      ["pki", "done"],
      ["registry", "done"],
      ["apply", "done"],
    ]);
    expect(world.runs.get("preflight")).toBe(1);
    expect(world.runs.get("pki")).toBe(2);
  });

  it("a re-check that throws counts as not done", async () => {
    world.failing.add("apply");
    await rejection(run());
    world.failing.clear();
    const steps = NAMES.map(fakeStep);
    steps[1] = { ...steps[1]!, stillDone: () => Promise.reject(new Error("store gone")) };
    const resumed = await runMachine({
      state,
      identity: IDENTITY,
      steps,
      context: world,
      details: new Map(),
    });
    expect(resumed.steps[1]).toMatchObject({ name: "import", outcome: "done" });
  });

  it("hands later steps the detail of steps it skipped", async () => {
    world.failing.add("apply");
    await rejection(run());
    world.failing.clear();
    const details = new Map<string, Record<string, unknown>>();
    const seen: unknown[] = [];
    const steps = NAMES.map(fakeStep);
    steps[4] = {
      ...steps[4]!,
      run: () => {
        seen.push(details.get("pki"));
        return Promise.resolve({ detail: {}, summary: "" });
      },
    };
    await runMachine({ state, identity: IDENTITY, steps, context: world, details });
    expect(seen).toEqual([{ ran: true, step: "pki" }]);
  });

  it("another bundle's unfinished install is not resumed: a new install starts", async () => {
    world.failing.add("pki");
    const first = await rejection(run());
    expect(first.code).toBe("NODE_COMMAND_FAILED");
    world.failing.clear();
    const other = await run([], { ...IDENTITY, bundleDigest: "sha256:bb" });
    expect(other.started).toBe(true);
    expect(other.steps.every((step) => step.outcome === "done")).toBe(true);
    expect(state.installs.list().map((install) => install.state)).toEqual(["failed", "done"]);
  });

  it("the writer lock a run holds keeps a second one out, naming the holder's PID", async () => {
    const lock = state.lock("airlock install");
    const second = openState(dataDir, { actor: "test" });
    try {
      const error = await rejection(Promise.resolve().then(() => second.lock("airlock install")));
      expect(error.code).toBe("LOCK_HELD");
      expect(error.message).toContain(`process ${process.pid} (airlock install)`);
    } finally {
      second.close();
      lock.release();
    }
  });
});
