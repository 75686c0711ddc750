/**
 * The Bundles page's upload in chromium (issue 15, points 3 and 5): the sample bundle through the
 * file input, its progress reaching the import and the bundle listed; then a split bundle whose
 * upload is cut (one chunk's connection reset, then the page reloaded mid-chunk), resumed from the
 * console's offset, and imported.
 */
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import type { Request, Route } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle } from "../../bundle/index.js";
import { MiB, sampleBundle, useFixtures, type Fixtures } from "../helpers/fixtures.js";
import { expectAccessible, openBrowserSite, screenshots, signIn, type BrowserSite } from "./harness.js";

const PASSWORD = "a long admin passphrase";
let site: BrowserSite;
let fx: Fixtures;
let otherFx: Fixtures;

beforeAll(async () => {
  [fx, otherFx] = await Promise.all([useFixtures(), useFixtures({ seed: 43 })]);
  site = await openBrowserSite();
  const { password } = await site.site.users.add("alice", "admin");
  await site.site.users.changePassword("alice", password, PASSWORD);
  await signIn(site.page, "alice", PASSWORD);
}, 180_000);

afterAll(async () => {
  await site?.close();
  await fx?.cleanup();
  await otherFx?.cleanup();
});

/** Records every phase the progress bar shows, from before the upload starts. */
async function watchPhases(): Promise<void> {
  // A string: the tests compile without the DOM's types.
  await site.page.evaluate(`(() => {
    const bar = document.getElementById("upload-progress");
    const seen = (globalThis.phases = []);
    new MutationObserver(() => {
      const phase = bar.dataset.phase;
      if (phase !== undefined && seen.at(-1) !== phase) seen.push(phase);
    }).observe(bar, { attributes: true, attributeFilter: ["data-phase"] });
  })()`);
}

const phasesSeen = (): Promise<string[]> => site.page.evaluate<string[]>("globalThis.phases");

const status = () => site.page.locator("#upload-status");

describe("the Bundles page's upload", () => {
  it("uploads the sample bundle through the file input, shows upload then import, and lists it", async () => {
    const { page } = site;
    const { bundle } = await sampleBundle(fx);
    await page.goto("/bundles");
    await expectAccessible(page);
    await watchPhases();
    await page.getByLabel("Bundle file, or all its parts").setInputFiles(bundle);
    await page.getByRole("button", { name: "Upload and import" }).click();
    await expect.poll(() => status().textContent(), { timeout: 60_000 }).toMatch(/^Imported mgmt 4\.5\.0/);
    expect(await phasesSeen()).toEqual(["upload", "import", "done"]);
    const rows = page.locator("#bundle-list tbody tr");
    expect(await rows.count()).toBe(3);
    await expectAccessible(page);
    await screenshots(page, "bundles-uploaded");
  });

  it("resumes a split bundle's upload cut by a reset connection and by a reload, then imports it", async () => {
    const { page } = site;
    const work = await otherFx.dir("split");
    await buildBundle({
      specFile: otherFx.spec,
      output: join(work, "mgmt.airlock.tar"),
      splitSize: 10 * MiB,
    });
    const parts = (await readdir(work))
      .filter((name) => /\.\d{3}$/.test(name))
      .map((name) => join(work, name));
    expect(parts.length).toBeGreaterThan(2);
    expect(
      (await Promise.all(parts.map((part) => stat(part)))).reduce((sum, s) => sum + s.size, 0),
    ).toBeGreaterThan(17 * MiB);
    const starts: number[] = [];
    let chunks = 0;
    let held: Route | undefined;
    await page.route("**/uploads/*", async (route: Route, request: Request) => {
      if (request.method() !== "PATCH") return route.continue();
      starts.push(Number(/bytes (\d+)-/.exec(request.headers()["content-range"]!)![1]));
      chunks++;
      if (chunks === 2) return route.abort("connectionreset");
      // The retried chunk never reaches the console: the page is reloaded while it is in flight.
      if (chunks === 3) {
        held = route;
        return;
      }
      return route.continue();
    });
    await page.goto("/bundles");
    await page.getByLabel("Bundle file, or all its parts").setInputFiles(parts.reverse());
    await page.getByRole("button", { name: "Upload and import" }).click();
    await expect.poll(() => chunks, { timeout: 30_000 }).toBe(3);
    expect(starts).toEqual([0, 16 * MiB, 16 * MiB]);
    await page.reload();
    await held?.abort("connectionreset").catch(() => undefined);
    await expect(status().textContent()).resolves.toMatch(/did not finish: choose the same file again/);
    await watchPhases();
    await page.getByLabel("Bundle file, or all its parts").setInputFiles(parts);
    await page.getByRole("button", { name: "Upload and import" }).click();
    await expect.poll(() => status().textContent(), { timeout: 60_000 }).toMatch(/^Imported mgmt 4\.5\.0/);
    expect(starts[3]).toBe(16 * MiB);
    expect(await phasesSeen()).toEqual(["upload", "import", "done"]);
    expect(await page.locator("#bundle-list tbody tr").count()).toBe(4);
    await page.unroute("**/uploads/*");
  });
});
