import Database from "better-sqlite3";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { existsSync } from "node:fs";
import {
  CLUSTER_STEP,
  INSTALLER_SCHEMA_VERSION,
  openState,
  readSiteSummary,
  type State,
} from "../../../installer/state/index.js";
import { SCHEMA_VERSION, Store } from "../../../registry/store/index.js";
import { rejection } from "../../helpers/errors.js";

let dataDir: string;
let state: State | undefined;
let tick = 0;
/** A clock that moves one second per reading, so times are distinct and ordered. */
const clock = (): Date => new Date(Date.UTC(2026, 11, 3, 12, 0, tick++));

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-state-"));
  tick = 0;
});

afterEach(async () => {
  state?.close();
  state = undefined;
  await rm(dataDir, { recursive: true, force: true });
});

function open(): State {
  state?.close();
  state = openState(dataDir, { clock, actor: "test" });
  return state;
}

function rawDb(): Database.Database {
  return new Database(join(dataDir, "airlock.db"));
}

const INSTALL = {
  bundleDigest: "sha256:aa",
  bundleName: "mgmt",
  version: "4.5.0",
  steps: ["preflight", "import"],
};

describe("migrations", () => {
  it("create the installer's tables in an empty data dir and leave the store's user_version alone", () => {
    open().close();
    const db = rawDb();
    try {
      expect(db.prepare("SELECT component, version FROM schema_migrations").all()).toEqual([
        { component: "installer", version: INSTALLER_SCHEMA_VERSION },
      ]);
      const tables = (
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all() as {
          name: string;
        }[]
      ).map((row) => row.name);
      expect(tables).toEqual(
        expect.arrayContaining(["installs", "install_steps", "releases", "events", "writer_lock"]),
      );
      expect(db.pragma("user_version", { simple: true })).toBe(0);
      expect(db.pragma("journal_mode", { simple: true })).toBe("wal");
    } finally {
      db.close();
    }
  });

  it("are idempotent on re-open and keep what was recorded", () => {
    const install = open().installs.start(INSTALL);
    const reopened = open();
    expect(reopened.installs.get(install.id)).toEqual(install);
    const db = rawDb();
    try {
      expect(db.prepare("SELECT count(*) AS n FROM schema_migrations").get()).toEqual({ n: 1 });
    } finally {
      db.close();
    }
  });

  it("share airlock.db with the store in either order", async () => {
    const store = await Store.open(dataDir);
    try {
      open().installs.start(INSTALL);
      expect(store.db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    } finally {
      store.close();
    }
    const again = await Store.open(dataDir);
    again.close();
    expect(open().installs.list()).toHaveLength(1);
  });

  it("refuse a database whose installer schema is newer than this airlock", async () => {
    open().close();
    state = undefined;
    const db = rawDb();
    db.prepare("UPDATE schema_migrations SET version = ? WHERE component = 'installer'").run(
      INSTALLER_SCHEMA_VERSION + 1,
    );
    db.close();
    const error = await rejection(Promise.resolve().then(() => openState(dataDir)));
    expect(error.code).toBe("STATE_TOO_NEW");
    expect(error.where).toContain("airlock.db");
  });
});

describe("installs and steps", () => {
  it("record each step's state, times and error, with an event per change", () => {
    const s = open();
    const install = s.installs.start(INSTALL);
    expect(install).toMatchObject({
      bundleName: "mgmt",
      version: "4.5.0",
      state: "running",
      endedAt: undefined,
    });
    expect(s.installs.steps(install.id).map((step) => [step.name, step.state])).toEqual([
      ["preflight", "pending"],
      ["import", "pending"],
    ]);

    s.installs.startStep(install.id, "preflight");
    const done = s.installs.finishStep(install.id, "preflight", { checks: 14 });
    expect(done).toMatchObject({ state: "done", detail: { checks: 14 } });
    expect(done.startedAt! < done.endedAt!).toBe(true);

    s.installs.startStep(install.id, "import");
    const failed = s.installs.failStep(install.id, "import", { code: "DISK_FULL", message: "no space left" });
    expect(failed).toMatchObject({ state: "failed", errorCode: "DISK_FULL", errorMessage: "no space left" });
    expect(s.installs.get(install.id).state).toBe("failed");

    const rerun = s.installs.startStep(install.id, "import");
    expect(rerun).toMatchObject({ state: "running", errorCode: undefined, endedAt: undefined });
    expect(s.installs.get(install.id).state).toBe("running");
    s.installs.finishStep(install.id, "import");
    expect(s.installs.finish(install.id, "done")).toMatchObject({ state: "done" });
    expect(s.installs.latest()?.id).toBe(install.id);

    expect(s.events.list().map((e) => [e.action, e.object, e.outcome])).toEqual([
      ["install.start", `install/${install.id}`, "started"],
      ["install.step", `install/${install.id}/step/preflight`, "started"],
      ["install.step", `install/${install.id}/step/preflight`, "ok"],
      ["install.step", `install/${install.id}/step/import`, "started"],
      ["install.step", `install/${install.id}/step/import`, "failed"],
      ["install.step", `install/${install.id}/step/import`, "started"],
      ["install.step", `install/${install.id}/step/import`, "ok"],
      ["install.finish", `install/${install.id}`, "ok"],
    ]);
    expect(
      s.events.list({ object: `install/${install.id}/step/import`, newestFirst: true })[2]?.detail,
    ).toEqual({
      code: "DISK_FULL",
      message: "no space left",
    });
  });

  it("name a missing step as STATE_NOT_FOUND and change nothing", async () => {
    const s = open();
    const install = s.installs.start(INSTALL);
    const error = await rejection(Promise.resolve().then(() => s.installs.startStep(install.id, "apply")));
    expect(error.code).toBe("STATE_NOT_FOUND");
    expect(error.message).toContain("apply");
    expect(s.events.list()).toHaveLength(1);
  });
});

const RELEASE = {
  bundleDigest: "sha256:aa",
  bundleName: "mgmt",
  version: "4.4.0",
  valuesGiven: { replicas: 3 },
  valuesEffective: { replicas: 3, persistence: false },
  objects: [{ kind: "Namespace", metadata: { name: "hubble-system" } }],
};

describe("releases", () => {
  it("keep values as given, objects applied, and exactly one current release", () => {
    const s = open();
    const first = s.releases.record({ ...RELEASE, installId: s.installs.start(INSTALL).id });
    expect(first).toMatchObject({ status: "pending", current: false, valuesGiven: { replicas: 3 } });
    expect(s.releases.current()).toBeUndefined();
    s.releases.deploy(first.id);
    const second = s.releases.record({ ...RELEASE, version: "4.5.0", upgradeId: 7 });
    s.releases.deploy(second.id);
    expect(s.releases.current()).toMatchObject({ id: second.id, version: "4.5.0", upgradeId: 7 });
    expect(s.releases.get(first.id)).toMatchObject({ status: "superseded", current: false });
    expect(s.releases.get(first.id).objects).toEqual(RELEASE.objects);

    s.releases.deploy(first.id, { rollback: true });
    expect(s.releases.current()?.id).toBe(first.id);
    expect(s.releases.get(second.id).status).toBe("rolled-back");
    expect(s.releases.list().map((r) => r.id)).toEqual([second.id, first.id]);
    expect(s.events.list({ action: "release.rollback" })).toHaveLength(1);
  });

  it("refuse to fail the current release, and a second current row at the database", async () => {
    const s = open();
    const release = s.releases.deploy(s.releases.record(RELEASE).id);
    expect((await rejection(Promise.resolve().then(() => s.releases.fail(release.id, "x")))).code).toBe(
      "STATE_CONFLICT",
    );
    const other = s.releases.record(RELEASE);
    expect(() => s.db.prepare("UPDATE releases SET is_current = 1 WHERE id = ?").run(other.id)).toThrow(
      /UNIQUE/,
    );
    expect(s.releases.fail(other.id, "never became ready").status).toBe("failed");
  });
});

describe("events", () => {
  it("filter by time, action, object prefix and id, and refuse UPDATE and DELETE", () => {
    const s = open();
    const a = s.events.append({ action: "bundle.import", object: "bundle/mgmt-4.5.0", outcome: "ok" });
    const b = s.events.append({
      action: "install.step",
      object: "install/1/step/pki",
      outcome: "ok",
      actor: "ops",
    });
    const c = s.events.append({ action: "install.step", object: "install/2/step/pki", outcome: "failed" });
    expect(a.actor).toBe("test");
    expect(b.actor).toBe("ops");
    expect(s.events.list({ since: b.time }).map((e) => e.id)).toEqual([b.id, c.id]);
    expect(s.events.list({ until: b.time }).map((e) => e.id)).toEqual([a.id]);
    expect(s.events.list({ action: "install.step", object: "install/1/" }).map((e) => e.id)).toEqual([b.id]);
    expect(s.events.list({ afterId: a.id, newestFirst: true, limit: 1 }).map((e) => e.id)).toEqual([c.id]);
    expect(() => s.db.prepare("UPDATE events SET outcome = 'ok'").run()).toThrow(/append-only/);
    expect(() => s.db.prepare("DELETE FROM events").run()).toThrow(/append-only/);
    expect(s.events.list()).toHaveLength(3);
  });

  it("are written with the change they describe, or not at all", () => {
    const s = open();
    expect(() =>
      s.transaction(() => {
        s.releases.record(RELEASE);
        throw new Error("apply failed");
      }),
    ).toThrow("apply failed");
    expect(s.releases.list()).toEqual([]);
    expect(s.events.list()).toEqual([]);
  });
});

describe("the site summary preflight reads", () => {
  it("is empty for a data dir without a database, and creates none", () => {
    expect(readSiteSummary(join(dataDir, "nothing-here"))).toEqual({
      release: undefined,
      latestInstall: undefined,
      clusterStepStarted: false,
    });
    expect(existsSync(join(dataDir, "nothing-here"))).toBe(false);
  });

  it("names the current release, the latest install, and whether a cluster step began", () => {
    const s = open();
    const install = s.installs.start({ ...INSTALL, steps: ["preflight", CLUSTER_STEP] });
    expect(readSiteSummary(dataDir)).toMatchObject({
      release: undefined,
      latestInstall: { id: install.id, bundleName: "mgmt", state: "running" },
      clusterStepStarted: false,
    });
    s.installs.startStep(install.id, CLUSTER_STEP);
    s.releases.deploy(s.releases.record({ ...RELEASE, installId: install.id }).id);
    expect(readSiteSummary(dataDir)).toMatchObject({
      release: { bundleName: "mgmt", version: "4.4.0", bundleDigest: "sha256:aa" },
      clusterStepStarted: true,
    });
  });
});
