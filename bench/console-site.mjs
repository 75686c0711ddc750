// bench/console.mjs's console: the site its page timings run on, the sign-in, and the page timings
// (issue 15, point 7: every page under 50 ms at p95 with 100 bundles, 1,000 tags and 10,000 events).
import { createHash } from "node:crypto";
import { performance } from "node:perf_hooks";
import { URLSearchParams } from "node:url";
import { fetch } from "undici";
import { seedUpgrades } from "./console-upgrades.mjs";
import { renderTable } from "./lib.mjs";

export const PAGE_TARGET_MS = 50;
export const SITE = { bundles: 100, imagesPerBundle: 10, events: 10_000 };
export const PASSWORD = "a long benchmark passphrase";
/** Pages the navigation does not link, each a different query: the last page of tags, filtered events. */
const MORE_PAGES = [
  "/images?page=10",
  "/events?action=bundle.import",
  "/events?object=bundle/",
  "/events?outcome=failed",
  "/events?before=5000",
  "/password",
];

const digestOf = (text) => `sha256:${createHash("sha256").update(text).digest("hex")}`;

function bundleRecord(index) {
  const version = `4.${Math.floor(index / 10)}.${index % 10}`;
  const previous = index === 0 ? undefined : `4.${Math.floor((index - 1) / 10)}.${(index - 1) % 10}`;
  return {
    digest: digestOf(`bundle ${version}`),
    name: "mgmt",
    version,
    upgradeFrom: previous,
    baseDigest: undefined,
    created: new Date(Date.UTC(2026, 0, 1) + index * 86_400_000).toISOString(),
    signature: index % 7 === 0 ? "unchecked" : "verified",
    totalBytes: 2 * 1024 ** 3 + index,
    images: Array.from({ length: SITE.imagesPerBundle }, (_, i) => ({
      ref: `airlock.local/hubble/service-${i}:${version}`,
      repository: `hubble/service-${i}`,
      tag: version,
      digest: digestOf(`${version}/${i}`),
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      size: 40_000_000 + i * 4096,
      kind: "image",
    })),
    files: [{ path: "files/values.yaml", digest: digestOf(`values ${version}`), size: 2048, mode: 0o644 }],
    manifests: [],
  };
}

const ACTIONS = ["ui.login", "bundle.import", "install.step", "pki.rotate", "upgrade.plan", "ui.user.add"];

/**
 * Fills a fresh data dir as a site a year in: 100 bundles of 10 images (1,000 tags), 10,000 events,
 * a year of upgrades (console-upgrades.mjs) ending on a deployed release and a plan under review, and
 * the site PKI with a certificate that expires soon. Rows go in through the libraries, as imports
 * and the CLI write them; the bundles carry no blobs (the pages read rows only). Returns the seeded
 * pages no navigation links (a plan's review, a run's timeline).
 */
export async function seedSite({ store, state, pki, registryServerCertificate, manifests, upgrade }) {
  await registryServerCertificate(pki, { hosts: ["127.0.0.1", "registry.site.example"] });
  await pki.ensureCertificate({
    name: "edge",
    kind: "server",
    commonName: "edge proxy",
    dnsNames: ["edge.site.example"],
    validityDays: 20,
  });
  for (let i = 0; i < SITE.bundles; i++) await store.recordBundle(bundleRecord(i));
  const pages = seedUpgrades({ manifests, upgrade }, state);
  const already = state.events.list().length;
  state.db.transaction(() => {
    for (let i = already; i < SITE.events; i++) {
      const action = ACTIONS[i % ACTIONS.length];
      state.events.append({
        actor: i % 3 === 0 ? "cli" : "alice",
        action,
        object: action === "bundle.import" ? `bundle/mgmt/4.${i % 10}.0` : `${action.split(".")[0]}/${i}`,
        outcome: i % 50 === 0 ? "failed" : "ok",
        detail: { sequence: i },
      });
    }
  })();
  return pages;
}

/** Signs in through the login form as a browser does; returns the cookie header and CSRF token. */
export async function signIn(base, dispatcher, name = "bench") {
  const jar = new Map();
  const call = async (route, init = {}) => {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
    const response = await fetch(base + route, {
      ...init,
      dispatcher,
      redirect: "manual",
      headers: { ...init.headers, cookie },
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(";");
      jar.set(pair.slice(0, pair.indexOf("=")), pair.slice(pair.indexOf("=") + 1));
    }
    return response;
  };
  const tokenOf = (text) => /name="_csrf" value="([^"]+)"/.exec(text)[1];
  const loginToken = tokenOf(await (await call("/login")).text());
  const body = new URLSearchParams({ _csrf: loginToken, name, password: PASSWORD });
  const login = await call("/login", { method: "POST", body });
  if (login.status !== 303) throw new Error(`console login answered ${login.status}`);
  const csrf = tokenOf(await (await call("/bundles")).text());
  return { cookie: [...jar].map(([k, v]) => `${k}=${v}`).join("; "), csrf };
}

const percentile = (sorted, p) =>
  sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

/** Every page the navigation links, then the `seeded` pages, MORE_PAGES and the login form. */
async function pagesOf(base, dispatcher, headers, seeded) {
  const overview = await (await fetch(`${base}/`, { headers, dispatcher })).text();
  const nav = /<nav aria-label="Console">([\s\S]*?)<\/nav>/.exec(overview)?.[1] ?? "";
  const linked = [...nav.matchAll(/href="([^"]+)"/g)].map((match) => match[1]);
  if (linked.length === 0) throw new Error("the Overview has no navigation: not signed in?");
  return [...linked, ...seeded, ...MORE_PAGES, "/login"];
}

/**
 * Each page `requests` times after 5 unmeasured, one after another on one keep-alive connection: the
 * time from sending the request to the last byte of the page, which bounds the server's render time.
 */
export async function timePages(base, dispatcher, { cookie }, requests, seeded = []) {
  const headers = { cookie };
  const rows = [];
  for (const page of await pagesOf(base, dispatcher, headers, seeded)) {
    const times = [];
    for (let i = 0; i < requests + 5; i++) {
      const started = performance.now();
      const response = await fetch(base + page, { headers: page === "/login" ? {} : headers, dispatcher });
      const text = await response.text();
      const ms = performance.now() - started;
      if (response.status !== 200)
        throw new Error(`GET ${page} answered ${response.status}: ${text.slice(0, 200)}`);
      if (i >= 5) times.push(ms);
    }
    times.sort((a, b) => a - b);
    rows.push({ page, p50: percentile(times, 50), p95: percentile(times, 95), max: times.at(-1) });
  }
  return rows;
}

export function pageTable(rows) {
  const ms = (value) => `${value.toFixed(1)} ms`;
  return renderTable(
    ["page", "p50", "p95", "max", `p95 < ${PAGE_TARGET_MS} ms`],
    rows.map((row) => [
      row.page,
      ms(row.p50),
      ms(row.p95),
      ms(row.max),
      row.p95 < PAGE_TARGET_MS ? "PASS" : "FAIL",
    ]),
    ["l", "r", "r", "r", "l"],
  );
}
