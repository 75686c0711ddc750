/**
 * A data dir for console tests: a store with bundles and tags, the site PKI with a CA, the registry's
 * certificate and one that expires soon, and the installer's state; a console app on a clock the test moves.
 */
import { createHash } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openPki, registryServerCertificate, type Pki } from "../../../installer/pki/index.js";
import { openState, type State } from "../../../installer/state/index.js";
import type { Digest } from "../../../registry/oci/index.js";
import { Store, type ImageRecord } from "../../../registry/store/index.js";
import {
  createConsoleApp,
  UserRecords,
  type ConsoleOptions,
  type ConsoleUpgradeHooks,
} from "../../../ui-lite/index.js";

export interface ConsoleSite {
  dataDir: string;
  store: Store;
  state: State;
  pki: Pki;
  users: UserRecords;
  app: ReturnType<typeof createConsoleApp>;
  /** The console's clock, for a second app on the same data dir. */
  clock: () => Date;
  /** Moves the console's clock forward. */
  advance(ms: number): void;
  close(): Promise<void>;
}

const digestOf = (text: string): Digest =>
  `sha256:${createHash("sha256").update(text).digest("hex")}` as Digest;

function images(version: string, count: number): ImageRecord[] {
  return Array.from({ length: count }, (_, i) => ({
    ref: `airlock.local/hubble/service-${String(i).padStart(4, "0")}:${version}`,
    repository: `hubble/service-${String(i).padStart(4, "0")}`,
    tag: version,
    digest: digestOf(`${version}/${i}`),
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    size: 1_000_000 + i * 4096,
    kind: "image" as const,
  }));
}

/** Records a bundle's rows and tags directly (no blobs: the pages read rows only). */
export async function seedBundle(store: Store, version: string, imageCount: number): Promise<void> {
  await store.recordBundle({
    digest: digestOf(`bundle ${version}`),
    name: "mgmt",
    version,
    upgradeFrom: undefined,
    baseDigest: undefined,
    created: "2026-11-30T10:00:00.000Z",
    signature: "verified",
    totalBytes: 3 * 1024 ** 3,
    images: images(version, imageCount),
    files: [],
    manifests: [],
  });
}

export interface ConsoleSiteOptions {
  tags?: number;
  /** Record the two made-up mgmt bundles and their tags (default); off for a site that imports real ones. */
  seed?: boolean;
  upgrades?: ConsoleUpgradeHooks;
  liveLimits?: ConsoleOptions["liveLimits"];
}

export async function openConsoleSite(options: ConsoleSiteOptions = {}): Promise<ConsoleSite> {
  const dataDir = await mkdtemp(join(tmpdir(), "airlock-console-"));
  let offset = 0;
  const clock = (): Date => new Date(Date.now() + offset);
  const store = await Store.open(dataDir);
  const state = openState(dataDir, { clock });
  const pki = openPki(dataDir, { now: clock });
  await registryServerCertificate(pki, { hosts: ["registry.site.example"] });
  await pki.ensureCertificate({
    name: "edge",
    kind: "server",
    commonName: "edge <proxy>",
    dnsNames: ["edge.site.example"],
    validityDays: 20,
  });
  if (options.seed !== false) {
    await seedBundle(store, "4.4.0", 3);
    await seedBundle(store, "4.5.0", options.tags ?? 5);
  }
  state.events.append({ action: "install", object: "install/1", outcome: "ok", actor: "cli" });
  const users = new UserRecords(state, clock);
  const app = createConsoleApp({
    dataDir,
    store,
    state,
    pki,
    clock,
    timeZone: "Europe/Berlin",
    upgrades: options.upgrades,
    liveLimits: options.liveLimits,
  });
  return {
    dataDir,
    store,
    state,
    pki,
    users,
    app,
    clock,
    advance: (ms) => {
      offset += ms;
    },
    close: async () => {
      store.close();
      state.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
