/**
 * The Upgrades pages in chromium (issue 15, points 2, 5, 6 and 8): on a site with the sample 4.4.0
 * deployed (3 brokers, the operator's override) and 4.5.0 imported, an admin makes a plan and
 * reviews it side by side, schedules it with a window that does not parse (shown beside the field)
 * and then one that does, and watches a run's timeline update over server-sent events while the
 * test drives the run row as the rollout records it; then the rollback's confirmation, and history.
 * Every page is checked by axe-core; screenshots go to test/browser/artifacts/.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBundle } from "../../bundle/index.js";
import { useFixtures, type Fixtures } from "../helpers/fixtures.js";
import { deploy440, startRollbackRun } from "../helpers/upgrade-site.js";
import { expectAccessible, openBrowserSite, screenshots, signIn, type BrowserSite } from "./harness.js";

const PASSWORD = "a long admin passphrase";
let site: BrowserSite;
let fx: Fixtures;
const rollbacks: string[] = [];

beforeAll(async () => {
  fx = await useFixtures({ size: 1024 * 1024 });
  site = await openBrowserSite({
    seed: false,
    upgrades: {
      wake: () => undefined,
      rollback: (actor) => {
        rollbacks.push(actor);
        const run = startRollbackRun(site.site.state);
        return Promise.resolve({ runId: run.id });
      },
    },
  });
  const { bundle450 } = await deploy440(fx, site.site.dataDir, { msgbroker: { replicas: 3 } });
  await importBundle(site.site.store, [bundle450]);
  const { password } = await site.site.users.add("alice", "admin");
  await site.site.users.changePassword("alice", password, PASSWORD);
  await signIn(site.page, "alice", PASSWORD);
}, 180_000);

afterAll(async () => {
  await site?.close();
  await fx?.cleanup();
});

const mainText = (): Promise<string> => site.page.locator("main").innerText();

/** A step as the rollout records it: started, then finished `ms` later. */
function recordStep(runId: number, step: string, at: number, ms = 200): number {
  site.site.state.runs.stepStarted(runId, step, at);
  site.site.state.runs.stepFinished(runId, step, at + ms, "done");
  return at + ms;
}

let planId: number;
let runId: number;

describe("the Upgrades pages in a browser", () => {
  it("makes a plan for 4.5.0 and shows it as a side-by-side diff with the operator's override marked", async () => {
    const { page } = site;
    await page.goto("/upgrades");
    expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("Upgrades");
    await expectAccessible(page);
    await screenshots(page, "upgrades-empty");
    await page.getByLabel("Version to upgrade mgmt 4.4.0 to").selectOption("4.5.0");
    await page.getByRole("button", { name: "Make the plan" }).click();
    await expect.poll(() => new URL(page.url()).pathname).toMatch(/^\/upgrades\/plans\/\d+$/);
    planId = Number(new URL(page.url()).pathname.split("/").at(-1));
    const text = await mainText();
    expect(text).toContain("mgmt 4.4.0 → 4.5.0 (upgrade)");
    expect(text).toContain("rolling restart of 3 pods");
    expect(text).toContain("★ the operator");
    const table = page.getByRole("table", { name: /changed fields of StatefulSet hubble-system\/msgbroker/ });
    expect(await table.getByRole("columnheader").allTextContents()).toEqual(["Field", "Current", "Incoming"]);
    await expectAccessible(page);
    await screenshots(page, "upgrade-plan");
  });

  it("shows a window that does not parse beside the field with the bad token marked, and schedules nothing", async () => {
    const { page } = site;
    await page.getByLabel("Maintenance windows, one a line").fill("Sat 25:00-04:00 Europe/Berlin");
    const answer = page.waitForResponse((response) => response.request().method() === "POST");
    await page.getByRole("button", { name: "Schedule" }).click();
    expect((await answer).status()).toBe(400);
    const field = page.getByLabel("Maintenance windows, one a line");
    expect(await field.getAttribute("aria-invalid")).toBe("true");
    expect(await field.inputValue()).toBe("Sat 25:00-04:00 Europe/Berlin");
    expect(await page.locator("#windows-error").textContent()).toContain("`25:00` is not a time");
    expect(await page.locator("#windows-error mark").textContent()).toBe("25:00");
    expect(site.site.state.schedules.activeFor(planId)).toBeUndefined();
    await expectAccessible(page);
    await screenshots(page, "upgrade-schedule-error");
  });

  it("schedules it into a window and shows the next openings in UTC and the site's zone", async () => {
    const { page } = site;
    await page.getByLabel("Maintenance windows, one a line").fill("Sat 02:00-04:00 America/New_York");
    await page.getByRole("button", { name: "Schedule" }).click();
    await expect.poll(() => mainText()).toContain("The next 3 openings");
    const openings = page.getByRole("table", { name: "The next 3 openings" });
    expect(await openings.locator("tbody tr").first().innerText()).toMatch(/UTC · .* Europe\/Berlin/);
    expect(site.site.state.schedules.activeFor(planId)?.windows).toEqual([
      "Sat 02:00-04:00 America/New_York",
    ]);
    await expectAccessible(page);
    await screenshots(page, "upgrade-scheduled");
  });

  it("updates a run's timeline over server-sent events as the run row changes, without a reload", async () => {
    const { page } = site;
    const { runs } = site.site.state;
    const run = runs.create({ planId });
    runId = run.id;
    let at = Date.now();
    runs.stepStarted(run.id, "pre-gate", at);
    await page.goto(`/upgrades/runs/${run.id}`);
    const timeline = page.locator("svg.timeline");
    expect(await timeline.locator("title").textContent()).toContain("pre-gate running");
    await expect.poll(() => page.locator("[data-run-events]").getAttribute("data-live")).toBe("on");
    // Set in this document: a reload would lose it.
    await page.evaluate("globalThis.sameDocument = true");
    runs.gate(run.id, {
      gate: "pre:plane",
      passed: true,
      detail: "healthy",
      startedAt: at,
      finishedAt: at + 80,
    });
    runs.stepFinished(run.id, "pre-gate", (at += 100), "done");
    at = recordStep(run.id, "config", at);
    at = recordStep(run.id, "statefulset", at);
    runs.stepStarted(run.id, "roll msgbroker-2", at);
    runs.gate(run.id, {
      gate: "ready",
      pod: "msgbroker-2",
      passed: true,
      detail: "Ready",
      startedAt: at,
      finishedAt: at + 1_200,
    });
    await expect.poll(() => timeline.textContent()).toContain("roll msgbroker-2 — running");
    expect(await timeline.textContent()).toContain("ready: passed");
    expect(await timeline.textContent()).toContain("healthz: pending");
    expect(await page.evaluate("globalThis.sameDocument")).toBe(true);
    await expectAccessible(page);
    await screenshots(page, "upgrade-run-live");
    runs.stepFinished(run.id, "roll msgbroker-2", (at += 2_000), "done");
    for (const step of ["roll msgbroker-1", "roll msgbroker-0", "finish", "final-gate"])
      at = recordStep(run.id, step, at);
    runs.finish(run.id, { state: "done" });
    await expect.poll(() => page.locator(".run-line").textContent()).toContain("Done: the new release runs.");
    expect(await timeline.textContent()).toContain("final-gate — done");
    expect(await page.evaluate("globalThis.sameDocument")).toBe(true);
    await screenshots(page, "upgrade-run-done");
  });

  it("confirms a rollback naming the release it returns to and that data is not rolled back, and lists every run", async () => {
    const { page } = site;
    // What the run deploys when it is done: 4.5.0, the release a rollback returns from.
    const current = site.site.state.releases.current()!;
    const next = site.site.state.releases.record({ ...current, version: "4.5.0", upgradeId: runId });
    site.site.state.releases.deploy(next.id);
    await page.goto("/upgrades");
    await page.getByRole("link", { name: /^Roll back to mgmt 4\.4\.0/ }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe("/upgrades/rollback");
    const text = await mainText();
    expect(text).toContain(`Roll the plane back to mgmt 4.4.0 (release ${current.id})?`);
    expect(text).toContain(
      "Data written since the upgrade started (broker state on its volumes) is not rolled back",
    );
    await expectAccessible(page);
    await screenshots(page, "upgrade-rollback-confirm");
    await page.getByRole("button", { name: "Roll back to mgmt 4.4.0" }).click();
    await expect.poll(() => new URL(page.url()).pathname).toMatch(/^\/upgrades\/runs\/\d+$/);
    expect(rollbacks).toEqual(["alice"]);
    expect(await page.locator("svg.timeline title").textContent()).toContain("rollback running");
    await page.goto("/upgrades");
    const history = page.getByRole("table", { name: /^Every run, newest first/ });
    expect(await history.locator("tbody tr").count()).toBe(2);
    await expectAccessible(page);
    await screenshots(page, "upgrades");
  });
});
