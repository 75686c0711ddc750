/**
 * The browser tests' harness: a real console over HTTPS on 127.0.0.1 with a certificate from the site
 * CA, and Debian's chromium driven by playwright-core, trusting exactly that certificate's key (its
 * SPKI hash) so TLS verification stays meaningful for anything else.
 */
import { createHash, X509Certificate } from "node:crypto";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { expect } from "vitest";
import { startConsole, type ConsoleServer } from "../../ui-lite/index.js";
import { openConsoleSite, type ConsoleSite, type ConsoleSiteOptions } from "../unit/ui-lite/console-site.js";

export const CHROMIUM = "/usr/bin/chromium";
export const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), "artifacts");

export interface BrowserSite {
  site: ConsoleSite;
  console: ConsoleServer;
  browser: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

/** base64 of sha256 over the certificate's SubjectPublicKeyInfo: what chromium's SPKI allow-list takes. */
export function spkiHash(certificatePem: string): string {
  const spki = new X509Certificate(certificatePem).publicKey.export({ type: "spki", format: "der" });
  return createHash("sha256").update(spki).digest("base64");
}

export async function openBrowserSite(options: ConsoleSiteOptions = {}): Promise<BrowserSite> {
  const site = await openConsoleSite(options);
  const server = await startConsole({
    app: site.app,
    listen: { host: "127.0.0.1", port: 0 },
    tls: { pki: site.pki },
  });
  const profile = await mkdtemp(join(tmpdir(), "airlock-chromium-"));
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
      "--disable-quic",
      `--ignore-certificate-errors-spki-list=${spkiHash(server.certificatePem)}`,
    ],
    viewport: { width: 1280, height: 800 },
    // The console's CSP allows no inline script; axe is injected as one.
    bypassCSP: true,
    baseURL: server.url,
  });
  const page = browser.pages()[0] ?? (await browser.newPage());
  await mkdir(ARTIFACTS, { recursive: true });
  return {
    site,
    console: server,
    browser,
    page,
    close: async () => {
      await browser.close();
      await server.close();
      await site.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}

const axeSource = (): Promise<string> =>
  readFile(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: unknown }[];
}

/** Runs axe-core in the page; fails on any serious or critical violation, naming each. */
export async function expectAccessible(page: Page): Promise<void> {
  await page.addScriptTag({ content: await axeSource() });
  const violations = await page.evaluate(async () => {
    const axe = (globalThis as unknown as { axe: { run(): Promise<{ violations: AxeViolation[] }> } }).axe;
    return (await axe.run()).violations;
  });
  const severe = violations
    .filter((violation) => violation.impact === "serious" || violation.impact === "critical")
    .map(
      (violation) =>
        `${violation.id} (${violation.impact}): ${violation.help} at ${JSON.stringify(violation.nodes.map((n) => n.target))}`,
    );
  expect(severe, `axe on ${page.url()}`).toEqual([]);
}

/** A full-page screenshot at 1280×800 and at 390 px wide, under test/browser/artifacts/. */
export async function screenshots(page: Page, name: string): Promise<void> {
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.screenshot({ path: join(ARTIFACTS, `${name}-1280.png`), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(ARTIFACTS, `${name}-390.png`), fullPage: true });
  // Nothing wider than the narrow viewport: readable without sideways scrolling of the page itself.
  const overflow = await page.evaluate<number>(
    "document.documentElement.scrollWidth - document.documentElement.clientWidth",
  );
  expect(overflow, `${name} scrolls sideways at 390 px`).toBeLessThanOrEqual(0);
  await page.setViewportSize({ width: 1280, height: 800 });
}

export async function signIn(page: Page, name: string, password: string): Promise<void> {
  await page.goto("/login");
  await page.getByLabel("User name").fill(name);
  await page.getByLabel("Password").fill(password);
  await page.getByRole("button", { name: "Sign in" }).click();
}
