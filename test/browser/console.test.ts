/**
 * The console in Debian's chromium against a real HTTPS console on 127.0.0.1: first sign-in with a
 * one-time password, every read-only page rendered and checked by axe-core (screenshots saved to
 * test/browser/artifacts/), the lockout, a viewer's forged POST, CSRF, and an expired session.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { LOCK_MS } from "../../ui-lite/index.js";
import { expectAccessible, openBrowserSite, screenshots, signIn, type BrowserSite } from "./harness.js";

let site: BrowserSite;
const ADMIN_PASSWORD = "a long admin passphrase";
const VIEWER_PASSWORD = "a long viewer passphrase";

beforeAll(async () => {
  site = await openBrowserSite({ tags: 1_000 });
});

afterAll(async () => {
  await site?.close();
});

const PAGES = [
  { path: "/", title: "Overview", name: "overview", shows: "expires in" },
  { path: "/bundles", title: "Bundles", name: "bundles", shows: "verified" },
  { path: "/images", title: "Images", name: "images", shows: "1003 tags in 1000 repositories; page 1 of 11" },
  { path: "/images?page=11", title: "Images", name: "images-last-page", shows: "page 11 of 11" },
  { path: "/certificates", title: "Certificates", name: "certificates", shows: "DNS:edge.site.example" },
  { path: "/events", title: "Events", name: "events", shows: "ui.login" },
];

/** POSTs from inside the page, as a script there could: the session cookie goes along. */
function forgedPost(path: string, token: string | undefined): Promise<number> {
  return site.page.evaluate(
    async ({ path, token }) => {
      const headers: Record<string, string> = token === undefined ? {} : { "x-csrf-token": token };
      return (await fetch(path, { method: "POST", headers, redirect: "manual" })).status;
    },
    { path, token },
  );
}

async function csrfOfPage(): Promise<string> {
  return site.page.locator('input[name="_csrf"]').first().inputValue();
}

describe("the console in a browser", () => {
  it("signs in with a one-time password and must change it before any page opens", async () => {
    const { password } = await site.site.users.add("alice", "admin");
    const { page } = site;
    await page.goto("/login");
    await expectAccessible(page);
    await screenshots(page, "login");
    await signIn(page, "alice", password);
    await expect.poll(() => new URL(page.url()).pathname).toBe("/password");
    await expect.poll(() => page.getByRole("status").textContent()).toContain("one-time password");
    await page.goto("/bundles");
    expect(new URL(page.url()).pathname).toBe("/password");
    await expectAccessible(page);
    await screenshots(page, "change-password");
    await page.getByLabel("Current password").fill(password);
    await page.getByLabel("New password", { exact: true }).fill(ADMIN_PASSWORD);
    await page.getByLabel("New password again").fill(ADMIN_PASSWORD);
    await page.getByRole("button", { name: "Change password" }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe("/");
  });

  for (const entry of PAGES) {
    it(`renders ${entry.path} with no serious or critical axe violation`, async () => {
      const { page } = site;
      const response = await page.goto(entry.path);
      expect(response?.status()).toBe(200);
      expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe(entry.title);
      expect(await page.locator("main").textContent()).toContain(entry.shows);
      await expectAccessible(page);
      await screenshots(page, entry.name);
    });
  }

  it("moves focus by keyboard with a visible outline, the skip link first", async () => {
    const { page } = site;
    await page.goto("/");
    await page.keyboard.press("Tab");
    const first = await page.evaluate<{ text: string; outline: string }>(
      "({ text: document.activeElement.textContent, outline: getComputedStyle(document.activeElement).outlineStyle })",
    );
    expect(first).toEqual({ text: "Skip to content", outline: "solid" });
    await page.keyboard.press("Tab");
    expect(await page.evaluate<string>("document.activeElement.textContent")).toBe("Overview");
    await screenshots(page, "overview-focus");
  });

  it("refuses a state change with a missing or tampered CSRF token with 403", async () => {
    await site.page.goto("/certificates");
    const token = await csrfOfPage();
    expect(await forgedPost("/certificates/registry/rotate", undefined)).toBe(403);
    expect(
      await forgedPost(
        "/certificates/registry/rotate",
        `${token.slice(0, -1)}${token.endsWith("A") ? "B" : "A"}`,
      ),
    ).toBe(403);
    expect(site.site.state.events.list({ action: "pki.rotate" })).toEqual([]);
  });

  it("refuses a viewer's forged POST with 403, valid CSRF token and all", async () => {
    const { password } = await site.site.users.add("victor", "viewer");
    const { page } = site;
    await page.getByRole("button", { name: "Sign out" }).click();
    await signIn(page, "victor", password);
    await page.getByLabel("Current password").fill(password);
    await page.getByLabel("New password", { exact: true }).fill(VIEWER_PASSWORD);
    await page.getByLabel("New password again").fill(VIEWER_PASSWORD);
    await page.getByRole("button", { name: "Change password" }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe("/");
    await page.goto("/certificates");
    expect(await page.getByRole("button", { name: /^Rotate/ }).count()).toBe(0);
    expect(await forgedPost("/certificates/registry/rotate", await csrfOfPage())).toBe(403);
    expect(site.site.state.events.list({ action: "pki.rotate" })).toEqual([]);
  });

  it("goes back to the login form once the session is idle too long", async () => {
    const { page } = site;
    await page.goto("/events");
    expect(new URL(page.url()).pathname).toBe("/events");
    site.site.advance(31 * 60_000);
    await page.goto("/events");
    expect(new URL(page.url()).pathname).toBe("/login");
  });

  it("locks an account for 15 minutes after 5 failed sign-ins, backing off after 3", async () => {
    const { page } = site;
    for (let attempt = 1; attempt <= 5; attempt++) {
      await signIn(page, "alice", "not the password");
      const alert = await page.getByRole("alert").textContent();
      expect(alert, `attempt ${attempt}`).toContain("Wrong user name or password.");
      // Past the third failure each try waits out its back-off first.
      if (attempt >= 3) site.site.advance(60_000);
    }
    await signIn(page, "alice", ADMIN_PASSWORD);
    expect(await page.getByRole("alert").textContent()).toMatch(/locked for 1[45] minutes/);
    await screenshots(page, "login-locked");
    site.site.advance(LOCK_MS);
    await signIn(page, "alice", ADMIN_PASSWORD);
    await expect.poll(() => new URL(page.url()).pathname).toBe("/");
  });
});
