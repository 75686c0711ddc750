/**
 * The Upgrades pages in chromium (issue 15, point 6): the section, a plan's review made through its
 * form, a window that does not parse shown beside its field, a run's timeline, and the rollback
 * confirmation, each checked by axe-core (no serious or critical violation) and saved as screenshots
 * at 1280×800 and 390 px wide, on a site with the sample 4.4.0 deployed and 4.5.0 imported.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBundle } from "../../bundle/index.js";
import { useFixtures, type Fixtures } from "../helpers/fixtures.js";
import { deploy440 } from "../helpers/upgrade-site.js";
import { expectAccessible, openBrowserSite, screenshots, signIn, type BrowserSite } from "./harness.js";

const PASSWORD = "a long admin passphrase";
let fx: Fixtures;
let site: BrowserSite;

beforeAll(async () => {
  fx = await useFixtures({ size: 1024 * 1024 });
  site = await openBrowserSite({
    seed: false,
    upgrades: { wake: () => undefined, rollback: () => Promise.reject(new Error("not in this test")) },
  });
  const { bundle450 } = await deploy440(fx, site.site.dataDir, { msgbroker: { replicas: 3 } });
  await importBundle(site.site.store, [bundle450]);
  const { password } = await site.site.users.add("alice", "admin");
  await site.site.users.changePassword("alice", password, PASSWORD);
  await signIn(site.page, "alice", PASSWORD);
  await site.page.waitForURL((url) => url.pathname === "/");
}, 180_000);

afterAll(async () => {
  await site?.close();
  await fx?.cleanup();
});

describe("the Upgrades pages in a browser", () => {
  it("shows the section, then a plan made through its form, each accessible and readable at 390 px", async () => {
    const { page } = site;
    expect((await page.goto("/upgrades"))?.status()).toBe(200);
    expect(await page.locator("main").textContent()).toContain("No plan yet.");
    await expectAccessible(page);
    await screenshots(page, "upgrades");
    await page.getByRole("button", { name: /Make the plan/ }).click();
    await expect.poll(() => new URL(page.url()).pathname).toMatch(/^\/upgrades\/plans\/\d+$/);
    expect(await page.locator("main").textContent()).toContain("StatefulSet hubble-system/msgbroker");
    await expectAccessible(page);
    await screenshots(page, "upgrade-plan");
  });

  it("shows a window that does not parse beside its field, accessibly", async () => {
    const { page } = site;
    const planPath = new URL(page.url()).pathname;
    expect(planPath).toMatch(/^\/upgrades\/plans\/\d+$/);
    await page.locator('textarea[name="windows"]').fill("sat 25:00-26:00 UTC");
    await page.locator(`form[action="${planPath}/schedule"] button[type="submit"]`).click();
    await expect.poll(() => page.locator("mark").first().textContent()).toContain("25:00");
    await expectAccessible(page);
    await screenshots(page, "upgrade-plan-bad-window");
  });

  it("draws a run's timeline and confirms a rollback, each accessible", async () => {
    const { page } = site;
    const planId = Number(/\/upgrades\/plans\/(\d+)/.exec(page.url())![1]);
    const run = site.site.state.runs.create({ planId });
    site.site.state.runs.updateStep(run.id, "config");
    expect((await page.goto(`/upgrades/runs/${run.id}`))?.status()).toBe(200);
    expect(await page.locator("svg.timeline").count()).toBe(1);
    await expectAccessible(page);
    await screenshots(page, "upgrade-run");
    site.site.state.runs.finish(run.id, { state: "failed", failure: "GATE_FAILED: msgbroker-2 not ready" });
    // The upgraded release as the run would have left it, so there is an earlier one to return to.
    const { state } = site.site;
    const current = state.releases.current()!;
    const { bundleDigest, bundleName, valuesGiven, valuesEffective, objects } = current;
    const upgraded = state.releases.record({
      bundleDigest,
      bundleName,
      version: "4.5.0",
      valuesGiven,
      valuesEffective,
      objects,
    });
    state.releases.deploy(upgraded.id);
    expect((await page.goto("/upgrades/rollback"))?.status()).toBe(200);
    expect(await page.locator("main").textContent()).toContain(`back to mgmt 4.4.0 (release ${current.id})`);
    await expectAccessible(page);
    await screenshots(page, "upgrade-rollback");
  });
});
