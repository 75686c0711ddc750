/**
 * The Upgrades pages over loopback HTTP, on a site with the sample 4.4.0 deployed (operator override:
 * 3 brokers) and 4.5.0 imported: a plan made through the console as `upgrade plan --to-version`
 * makes it, reviewed side by side; windows that do not parse (400 beside the field, nothing
 * scheduled); a schedule with its next openings; cancel; a stale plan refused and re-planned; run
 * now and rollback through the daemon's hooks, and said to need the daemon without them; a run's
 * timeline as SVG and over server-sent events; roles, CSRF and path parameters.
 */
import { createServer, type Server } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBundle } from "../../../bundle/index.js";
import { createConsoleApp } from "../../../ui-lite/index.js";
import { useFixtures, type Fixtures } from "../../helpers/fixtures.js";
import { deploy440, startRollbackRun } from "../../helpers/upgrade-site.js";
import { openConsoleSite, type ConsoleSite } from "./console-site.js";
import { ConsoleClient, listenLocal, signInAs } from "./http-client.js";

let fx: Fixtures;
let site: ConsoleSite;
const servers: Server[] = [];
let admin: ConsoleClient;
let viewer: ConsoleClient;
/** The same users against a console without the daemon's hooks. */
let adminWithoutDaemon: ConsoleClient;
const wakes: number[] = [];
const rollbacks: string[] = [];

async function serve(app: Parameters<typeof createServer>[1]): Promise<string> {
  const server = createServer(app);
  servers.push(server);
  return listenLocal(server);
}

beforeAll(async () => {
  fx = await useFixtures({ size: 1024 * 1024 });
  site = await openConsoleSite({
    seed: false,
    liveLimits: { pollMs: 20 },
    upgrades: {
      wake: () => wakes.push(wakes.length + 1),
      rollback: (actor) => {
        rollbacks.push(actor);
        const run = startRollbackRun(site.state);
        const { runs } = site.state;
        const at = run.steps[0]!.startedAt;
        runs.gate(run.id, {
          gate: "rollback:ready",
          pod: "msgbroker-0",
          passed: true,
          detail: "Ready",
          startedAt: at,
          finishedAt: at + 900,
        });
        runs.stepFinished(run.id, "rollback", at + 2_000, "done");
        runs.finish(run.id, { state: "rolled-back", rollbackReason: `asked for by ${actor}` });
        return Promise.resolve({ runId: run.id });
      },
    },
  });
  const { bundle450 } = await deploy440(fx, site.dataDir, { msgbroker: { replicas: 3 } });
  await importBundle(site.store, [bundle450]);
  admin = new ConsoleClient(await serve(site.app));
  viewer = new ConsoleClient(admin.base);
  await signInAs(admin, site.users, "alice", "admin");
  await signInAs(viewer, site.users, "victor", "viewer");
  const { dataDir, store, state, pki, clock } = site;
  adminWithoutDaemon = new ConsoleClient(
    await serve(createConsoleApp({ dataDir, store, state, pki, clock, timeZone: "Europe/Berlin" })),
  );
  for (const [name, value] of admin.cookies) adminWithoutDaemon.cookies.set(name, value);
}, 180_000);

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  await site?.close();
  await fx?.cleanup();
});

async function post(client: ConsoleClient, path: string, form: Record<string, string> = {}) {
  const page = await client.get("/upgrades");
  return client.request("POST", path, { _csrf: ConsoleClient.csrfOf(page.body), ...form });
}

async function makePlan(): Promise<number> {
  const made = await post(admin, "/upgrades/plans", { version: "4.5.0" });
  expect(made.status).toBe(303);
  return Number(/^\/upgrades\/plans\/(\d+)$/.exec(made.location ?? "")![1]);
}

const WINDOW_FORM = { when: "windows", freezes: "", at: "" };

describe("plan review", () => {
  it("offers an admin the imported 4.5.0 to plan; a viewer sees the page without the form", async () => {
    const page = await admin.get("/upgrades");
    expect(page.status).toBe(200);
    expect(page.body).toContain("No plan yet.");
    expect(page.body).toContain('<option value="4.5.0">4.5.0</option>');
    expect(page.body).toContain('aria-current="page"');
    const seen = await viewer.get("/upgrades");
    expect(seen.status).toBe(200);
    expect(seen.body).not.toContain("Make the plan");
  });

  it("makes the plan --to-version makes, and shows each object's fields side by side with the overrides marked", async () => {
    const id = await makePlan();
    const record = site.state.plans.get(id);
    expect([record.fromVersion, record.toVersion, record.status]).toEqual(["4.4.0", "4.5.0", "planned"]);
    expect(site.state.events.list({ action: "upgrade.plan" }).at(-1)?.actor).toBe("alice");
    const page = await admin.get(`/upgrades/plans/${id}`);
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/4\.4\.0 → <strong>4\.5\.0<\/strong> \(upgrade\)/);
    expect(page.body).toContain("StatefulSet hubble-system/msgbroker");
    expect(page.body).toContain("rolling restart of 3 pods");
    expect(page.body).toMatch(/<th scope="col">Current<\/th>\s*<th scope="col">Incoming<\/th>/);
    expect(page.body).toMatch(/<code>spec\.template\.spec\.containers\[0\]\.image<\/code>/);
    expect(page.body).toMatch(/<code>msgbroker\.replicas<\/code>[\s\S]*?★ the operator/);
    expect(page.body).toContain("<li><code>hubble/msgbroker:4.5.0</code></li>");
    expect(page.body).toContain("To import");
  });

  it("refuses a version that is not imported, or a path in its place, with 400 and no plan", async () => {
    const before = site.state.plans.summaries(100).length;
    for (const version of ["9.9.9", "../../etc/passwd", ""]) {
      const refused = await post(admin, "/upgrades/plans", { version });
      expect([version, refused.status]).toEqual([version, 400]);
      expect(refused.body).toContain("UI_BAD_PARAMETER");
    }
    expect(site.state.plans.summaries(100)).toHaveLength(before);
  });
});

describe("scheduling", () => {
  it("answers a window that does not parse with 400 beside the field, the bad token marked, and schedules nothing", async () => {
    const id = await makePlan();
    const windows = "Sat 02:00-04:00 Europe/Berlin\nSun 25:00-03:00 UTC";
    const refused = await post(admin, `/upgrades/plans/${id}/schedule`, { ...WINDOW_FORM, windows });
    expect(refused.status).toBe(400);
    expect(refused.body).toMatch(
      /<p class="field-error" id="windows-error" role="alert">\s*`25:00` is not a time/,
    );
    expect(refused.body).toContain("<mark>25:00</mark>");
    expect(refused.body).toMatch(/<textarea[^>]*id="windows"[^>]*aria-invalid="true"/);
    expect(refused.body).toContain(`>${windows}</textarea>`);
    const zone = await post(admin, `/upgrades/plans/${id}/schedule`, {
      ...WINDOW_FORM,
      windows: "Sat 02:00-04:00 Mars/Olympus",
    });
    expect(zone.status).toBe(400);
    expect(zone.body).toContain("<mark>Mars/Olympus</mark>");
    const cases = [
      { form: { ...WINDOW_FORM, windows: "" }, field: "windows" },
      {
        form: { ...WINDOW_FORM, windows: "daily 01:00-03:00 UTC", freezes: "2026-12-20..soon" },
        field: "freezes",
      },
      { form: { when: "at", windows: "", freezes: "", at: "2020-01-01T02:00Z" }, field: "at" },
      { form: { when: "at", windows: "", freezes: "", at: "tomorrow" }, field: "at" },
    ];
    for (const { form, field } of cases) {
      const answer = await post(admin, `/upgrades/plans/${id}/schedule`, form);
      expect([field, answer.status]).toEqual([field, 400]);
      expect(answer.body).toContain(`id="${field}-error"`);
    }
    expect(site.state.schedules.activeFor(id)).toBeUndefined();
    expect(site.state.plans.get(id).status).toBe("planned");
  });

  it("schedules into windows, shows the next openings in UTC and the site's zone, and cancels", async () => {
    const id = await makePlan();
    const windows = "Sat 02:00-04:00 America/New_York\nTue 01:00-03:00 UTC";
    const scheduled = await post(admin, `/upgrades/plans/${id}/schedule`, {
      ...WINDOW_FORM,
      windows,
      freezes: "2099-12-20..2099-12-27 UTC",
      hardDeadline: "on",
    });
    expect(scheduled.status).toBe(303);
    expect(site.state.schedules.activeFor(id)).toMatchObject({
      windows: windows.split("\n"),
      freezes: ["2099-12-20..2099-12-27 UTC"],
      hardDeadline: true,
    });
    expect(site.state.events.list({ action: "upgrade.schedule" }).at(-1)?.actor).toBe("alice");
    const page = await admin.get(`/upgrades/plans/${id}`);
    expect(page.body).toContain("The next 3 openings");
    expect(page.body).toMatch(/\d{4}-\d\d-\d\d \d\d:\d\d UTC · \d{4}-\d\d-\d\d \d\d:\d\d Europe\/Berlin/);
    expect(page.body).toContain("America/New_York");
    expect(page.body).not.toContain('action="/upgrades/plans/' + id + '/schedule"');
    const again = await post(admin, `/upgrades/plans/${id}/schedule`, { ...WINDOW_FORM, windows });
    expect(again.status).toBe(409);
    expect(again.body).toContain("SCHEDULE_OVERLAP");
    expect((await admin.get("/upgrades")).body).toMatch(new RegExp(`Plan ${id}</a>[\\s\\S]*?UTC`));
    expect((await post(admin, `/upgrades/plans/${id}/cancel`)).status).toBe(303);
    expect(site.state.plans.get(id).status).toBe("cancelled");
    expect(site.state.schedules.activeFor(id)).toBeUndefined();
    const cancelled = await post(admin, `/upgrades/plans/${id}/schedule`, { ...WINDOW_FORM, windows });
    expect(cancelled.status).toBe(409);
    expect(cancelled.body).toContain("PLAN_NOT_RUNNABLE");
  });

  it("shows a plan whose inputs changed as stale, refuses to schedule it (409, nothing changed), and re-plans", async () => {
    const id = await makePlan();
    const current = site.state.releases.current()!;
    // Another release deployed since, by an upgrade run (which is what a rollback returns from).
    const run = site.state.runs.create({ planId: id });
    site.state.releases.deploy(site.state.releases.record({ ...current, upgradeId: run.id }).id);
    site.state.runs.finish(run.id, { state: "done" });
    const page = await admin.get(`/upgrades/plans/${id}`);
    expect(page.body).toContain("This plan is stale");
    expect(page.body).toContain("Re-plan for 4.5.0");
    expect((await admin.get("/upgrades")).body).toContain("stale: re-plan");
    const refused = await post(admin, `/upgrades/plans/${id}/schedule`, {
      ...WINDOW_FORM,
      windows: "daily 01:00-03:00 UTC",
    });
    expect(refused.status).toBe(409);
    expect(refused.body).toContain("PLAN_STALE");
    expect(site.state.schedules.activeFor(id)).toBeUndefined();
    expect(site.state.plans.get(id).status).toBe("planned");
    const fresh = await makePlan();
    expect((await admin.get(`/upgrades/plans/${fresh}`)).body).not.toContain("This plan is stale");
  });
});

describe("run now and rollback", () => {
  it("runs now by scheduling now and waking the daemon; without the daemon it is not offered and refused", async () => {
    const id = await makePlan();
    const without = await adminWithoutDaemon.get(`/upgrades/plans/${id}`);
    expect(without.body).toContain("the site daemon (<code>airlock serve</code>) runs upgrades");
    expect(without.body).not.toContain(`action="/upgrades/plans/${id}/run-now"`);
    const refused = await post(adminWithoutDaemon, `/upgrades/plans/${id}/run-now`);
    expect(refused.status).toBe(409);
    expect(refused.body).toContain("UI_DAEMON_REQUIRED");
    expect(site.state.schedules.activeFor(id)).toBeUndefined();
    expect(wakes).toEqual([]);
    expect((await admin.get(`/upgrades/plans/${id}`)).body).toContain(
      `action="/upgrades/plans/${id}/run-now"`,
    );
    expect((await post(admin, `/upgrades/plans/${id}/run-now`)).status).toBe(303);
    expect(site.state.schedules.activeFor(id)?.now).toBe(true);
    expect(wakes).toEqual([1]);
  });

  it("confirms a rollback naming the release it returns to and that data is not rolled back, then asks the daemon", async () => {
    const confirm = await admin.get("/upgrades/rollback");
    expect(confirm.status).toBe(200);
    expect(confirm.body).toContain("Roll the plane back to mgmt 4.4.0 (release 1)?");
    expect(confirm.body).toContain("Data written since the upgrade started");
    expect(confirm.body).toContain("DATA_NOT_ROLLED_BACK");
    const unconfirmed = await post(admin, "/upgrades/rollback");
    expect(unconfirmed.status).toBe(409);
    expect(rollbacks).toEqual([]);
    const rolled = await admin.request("POST", "/upgrades/rollback", {
      _csrf: ConsoleClient.csrfOf(confirm.body),
      release: "1",
    });
    expect(rolled.status).toBe(303);
    expect(rolled.location).toMatch(/^\/upgrades\/runs\/\d+$/);
    expect(rollbacks).toEqual(["alice"]);
    const run = await admin.get(rolled.location!);
    expect(run.body).toContain("a rollback asked for by hand");
    expect(run.body).toContain("rollback — done, 2.0 s");
    expect(run.body).not.toContain("pre-gate");
    expect((await adminWithoutDaemon.get("/upgrades")).body).toContain(
      "rolls the plane back; this console runs without it",
    );
    expect((await adminWithoutDaemon.get("/upgrades/rollback")).status).toBe(409);
  });
});

/** Reads a server-sent event stream until `done` holds for what arrived, or the stream ends. */
async function readEvents(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  done: (text: string) => boolean,
): Promise<{ text: string; ended: boolean }> {
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { value, done: ended } = await reader.read();
    if (ended) return { text, ended: true };
    text += decoder.decode(value, { stream: true });
    if (done(text)) return { text, ended: false };
  }
}

/** Records the steps as the rollout does (stepStarted, then stepFinished), each `ms` long from `at`. */
function recordSteps(runId: number, steps: string[], at: number, ms = 100): number {
  for (const step of steps) {
    site.state.runs.stepStarted(runId, step, at);
    site.state.runs.stepFinished(runId, step, at + ms, "done");
    at += ms;
  }
  return at;
}

function gateOf(gate: string, pod: string | undefined, passed: boolean, at: number, ms: number) {
  return { gate, pod, passed, detail: passed ? "passed" : "not Ready", startedAt: at, finishedAt: at + ms };
}

describe("the running upgrade", () => {
  it("draws the run's steps and gates as SVG, and pushes them over SSE as the run row changes, ending with the run", async () => {
    const planId = await makePlan();
    const { runs } = site.state;
    const run = runs.create({ planId });
    let at = Date.now();
    runs.stepStarted(run.id, "pre-gate", at);
    runs.gate(run.id, gateOf("pre:plane", undefined, true, at, 40));
    runs.stepFinished(run.id, "pre-gate", at + 100, "done");
    runs.stepStarted(run.id, "config", (at += 100));
    const page = await admin.get(`/upgrades/runs/${run.id}`);
    expect(page.status).toBe(200);
    expect(page.body).toMatch(/<svg\s+class="timeline"\s+role="img"/);
    expect(page.body).toContain("pre-gate — done, 100 ms");
    expect(page.body).toContain("pre:plane: passed");
    expect(page.body).toContain("config — running");
    expect(page.body).toContain("roll msgbroker-2 — pending");
    expect(page.body).toContain(`data-run-events="/upgrades/runs/${run.id}/events"`);
    expect(page.body).toContain('<script src="/assets/timeline.js" defer></script>');
    expect((await admin.get("/upgrades")).body).toContain(`Run ${run.id} timeline`);

    const cookie = [...admin.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
    const stream = await fetch(`${admin.base}/upgrades/runs/${run.id}/events`, {
      headers: { cookie },
      signal: AbortSignal.timeout(20_000),
    });
    expect(stream.headers.get("content-type")).toContain("text/event-stream");
    const reader = stream.body!.getReader() as ReadableStreamDefaultReader<Uint8Array>;
    const first = await readEvents(reader, (text) => text.includes("config — running"));
    expect(first.text).toContain("event: timeline");
    runs.stepFinished(run.id, "config", (at += 100), "done");
    at = recordSteps(run.id, ["statefulset"], at);
    runs.stepStarted(run.id, "roll msgbroker-2", at);
    runs.gate(run.id, gateOf("ready", "msgbroker-2", true, at, 1_500));
    const second = await readEvents(reader, (text) => text.includes("ready: passed"));
    expect(second.text).toContain("msgbroker-2, 1.5 s");
    expect(second.text).toContain("healthz: pending");
    expect(second.text).toContain("roll msgbroker-2 — running");
    runs.stepFinished(run.id, "roll msgbroker-2", (at += 2_000), "done");
    recordSteps(run.id, ["roll msgbroker-1", "roll msgbroker-0", "finish", "final-gate"], at);
    runs.finish(run.id, { state: "done" });
    const last = await readEvents(reader, () => false);
    expect(last.ended).toBe(true);
    expect(last.text).toContain("final-gate — done");
    expect(last.text).toContain("event: end\ndata: done");
    const ended = await admin.get(`/upgrades/runs/${run.id}`);
    expect(ended.body).not.toContain("data-run-events");
    expect((await admin.get("/upgrades")).body).toMatch(
      new RegExp(`Run ${run.id}</a\\s*>[\\s\\S]*?2\\s+passed`),
    );
  });

  it("draws a rolled-back run: the failed gate's step failed, the rest skipped, the rollback and its reason", async () => {
    const planId = await makePlan();
    const { runs } = site.state;
    const run = runs.create({ planId });
    let at = recordSteps(run.id, ["pre-gate", "config", "statefulset"], Date.now());
    runs.stepStarted(run.id, "roll msgbroker-2", at);
    runs.gate(run.id, gateOf("ready", "msgbroker-2", false, at, 300_000));
    runs.stepFinished(run.id, "roll msgbroker-2", (at += 300_000), "failed", "ready failed on msgbroker-2");
    runs.stepStarted(run.id, "rollback", at);
    runs.gate(run.id, gateOf("rollback:ready", "msgbroker-2", true, at, 800));
    runs.stepFinished(run.id, "rollback", at + 1_000, "done");
    runs.rolledBack(run.id, "ready failed on msgbroker-2: not Ready");
    runs.finish(run.id, { state: "rolled-back" });
    const page = await admin.get(`/upgrades/runs/${run.id}`);
    expect(page.body).toContain("roll msgbroker-2 — failed, 5 min 0 s");
    expect(page.body).toContain("roll msgbroker-1 — skipped");
    expect(page.body).toContain("final-gate — skipped");
    expect(page.body).toContain("rollback — done, 1.0 s");
    expect(page.body).toContain("ready: failed");
    expect(page.body).toContain("rollback:ready: passed");
    expect(page.body).toMatch(/Rolled back: ready failed on msgbroker-2: not Ready\.\s+Data written since/);
    expect(page.body).not.toContain("data-run-events");
  });
});

describe("roles, CSRF and path parameters", () => {
  it("lets a viewer see plans and runs, and refuses every upgrade POST with 403, nothing changed", async () => {
    const planId = await makePlan();
    const page = await viewer.get(`/upgrades/plans/${planId}`);
    expect(page.status).toBe(200);
    expect(page.body).not.toContain("/schedule");
    const token = ConsoleClient.csrfOf(page.body);
    const events = site.state.events.list({}).length;
    for (const path of [
      "/upgrades/plans",
      `/upgrades/plans/${planId}/schedule`,
      `/upgrades/plans/${planId}/run-now`,
      `/upgrades/plans/${planId}/cancel`,
      "/upgrades/rollback",
    ]) {
      const refused = await viewer.request("POST", path, { _csrf: token, version: "4.5.0", release: "1" });
      expect([path, refused.status]).toEqual([path, 403]);
    }
    expect(site.state.events.list({}).length).toBe(events);
  });

  it("refuses an upgrade POST with a missing or tampered CSRF token with 403", async () => {
    const id = await makePlan();
    const token = ConsoleClient.csrfOf((await admin.get("/upgrades")).body);
    const form = { ...WINDOW_FORM, windows: "daily 01:00-03:00 UTC" };
    expect((await admin.request("POST", `/upgrades/plans/${id}/schedule`, form)).status).toBe(403);
    const tampered = `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`;
    expect(
      (await admin.request("POST", `/upgrades/plans/${id}/schedule`, { ...form, _csrf: tampered })).status,
    ).toBe(403);
    expect(site.state.schedules.activeFor(id)).toBeUndefined();
  });

  it("answers ids that are not numbers with 400 and ids that name nothing with 404", async () => {
    for (const path of [
      "/upgrades/plans/abc",
      "/upgrades/plans/..%2F..%2Fetc%2Fpasswd",
      "/upgrades/plans/0",
      "/upgrades/plans/1e3",
      "/upgrades/runs/-1",
      "/upgrades/runs/..%2F1/events",
    ]) {
      expect([path, (await admin.get(path)).status]).toEqual([path, 400]);
    }
    for (const path of ["/upgrades/plans/9999", "/upgrades/runs/9999", "/upgrades/runs/9999/events"]) {
      expect([path, (await admin.get(path)).status]).toEqual([path, 404]);
    }
    const bad = await post(admin, "/upgrades/plans/..%2F1/schedule", {
      ...WINDOW_FORM,
      windows: "daily 01:00-03:00 UTC",
    });
    expect(bad.status).toBe(400);
  });
});
