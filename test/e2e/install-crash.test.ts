/**
 * Crash safety of `airlock install` (issue 13, point 7): the built CLI is SIGKILLed at every step
 * boundary (as soon as it reports the step done) and inside each long step — the import held
 * mid-blob by a preload (test/helpers/hold-ingest.mjs), the apply with one object applied and its
 * answer held, the wait with its watch held (test/helpers/held-cluster.ts) — then run again. Each
 * re-run must end installed with exactly one release, the store's fsck clean, the accounts and the
 * certificates not duplicated.
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle } from "../../bundle/index.js";
import {
  MemoryCluster,
  clusterApiKubeconfig,
  serveClusterApi,
  type RunningClusterApiServer,
} from "../../installer/cluster/index.js";
import { listCertificates, openPki } from "../../installer/pki/index.js";
import { openState, STATE_FILE } from "../../installer/state/index.js";
import { freePort, siteDaemonListenArgs } from "../helpers/daemons.js";
import {
  CLI,
  REPO_ROOT,
  runCli,
  selfSignedCertificate,
  useFixtures,
  waitFor,
  type Fixtures,
} from "../helpers/fixtures.js";
import { HoldingCluster } from "../helpers/held-cluster.js";
import { fakeSystemctl, type FakeSystemctl } from "../helpers/systemctl.js";

const TOKEN = "install-crash-token";
let fx: Fixtures;
let bundle: string;
let tls: { cert: string; key: string };

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * 1024 * 1024 });
  bundle = join(await fx.dir("work"), "mgmt.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: bundle });
  const files = await selfSignedCertificate(await fx.dir("apiserver"));
  tls = { cert: await readFile(files.certFile, "utf8"), key: await readFile(files.keyFile, "utf8") };
}, 120_000);

afterAll(async () => {
  await fx?.cleanup();
});

interface Site {
  args: string[];
  dataDir: string;
  systemctl: FakeSystemctl;
  /** The cluster as the API server serves it: it can hold a request. */
  cluster: HoldingCluster;
  close(): Promise<void>;
}

/** A fresh site: its own data dir, host root, registry port and in-memory cluster behind an API server. */
async function site(): Promise<Site> {
  const memory = new MemoryCluster();
  const cluster = new HoldingCluster(memory);
  const api: RunningClusterApiServer = await serveClusterApi(cluster, { tls, token: TOKEN });
  const kubeconfig = join(await fx.dir("kube"), "kubeconfig");
  await writeFile(kubeconfig, clusterApiKubeconfig(api.url, tls.cert, TOKEN));
  const hostRoot = await fx.dir("host");
  const dataDir = join(await fx.dir("data"), "airlock");
  const systemctl = await fakeSystemctl(await fx.dir("systemctl"), hostRoot);
  const args = [
    ...["--data-dir", dataDir, "install", "--bundle", bundle, "--kubeconfig", kubeconfig],
    ...["--host-root", hostRoot, "--registry-listen", `127.0.0.1:${await freePort()}`, "--timeout", "60s"],
    ...(await siteDaemonListenArgs()),
  ];
  return {
    args,
    dataDir,
    systemctl,
    cluster,
    close: async () => {
      await systemctl.stopAll();
      await api.close();
      memory.close();
    },
  };
}

/**
 * Runs the CLI and SIGKILLs it once `at` says so (given what it printed so far, and its PID);
 * resolves with what it printed. An exit before that fails.
 */
function killWhen(
  args: string[],
  env: NodeJS.ProcessEnv,
  at: (stdout: () => string) => Promise<void>,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    at(() => stdout).then(
      () => child.kill("SIGKILL"),
      (error: unknown) => {
        child.kill("SIGKILL");
        reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
    child.on("close", (code, signal) => {
      if (signal === "SIGKILL") resolve(stdout);
      else reject(new Error(`install ended (${code}) before the kill: ${stdout}${stderr}`));
    });
  });
}

/** Resolves once the CLI has reported `title` done. */
const afterStep =
  (title: string) =>
  (stdout: () => string): Promise<void> =>
    waitFor(
      () => Promise.resolve(new RegExp(`^ok +${title} `, "m").test(stdout())),
      60_000,
      `"${title}" done`,
    );

/** The install's step row of `name`, read from the site's state while the CLI runs. */
function stepState(dataDir: string, name: string): string | undefined {
  if (!existsSync(join(dataDir, STATE_FILE))) return undefined;
  const state = openState(dataDir);
  try {
    const latest = state.installs.latest();
    return latest === undefined ? undefined : state.installs.step(latest.id, name).state;
  } finally {
    state.close();
  }
}

/** At most one release; each account once; each certificate once and from the site CA. */
async function expectNoDuplicates(dataDir: string): Promise<void> {
  const state = openState(dataDir);
  try {
    expect(state.releases.list().length).toBeLessThanOrEqual(1);
  } finally {
    state.close();
  }
  const htpasswd = await readFile(join(dataDir, "registry/htpasswd"), "utf8").catch(() => "");
  const accounts = htpasswd
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => line.split(":")[0]);
  expect(new Set(accounts).size).toBe(accounts.length);
  if (!existsSync(join(dataDir, "pki"))) return;
  const certificates = await listCertificates(openPki(dataDir));
  const names = certificates.map((certificate) => certificate.name);
  expect(new Set(names).size).toBe(names.length);
  expect(certificates.filter((certificate) => certificate.status !== "ok")).toEqual([]);
}

/** The re-run ends installed: one release, one install, a clean store, the two accounts and three certificates once each. */
async function expectInstalledOnce(target: Site): Promise<string> {
  const rerun = await runCli(target.args, { env: target.systemctl.env });
  expect(rerun.stderr).toBe("");
  expect(rerun.code).toBe(0);
  expect(rerun.stdout).toMatch(/^installed mgmt 4\.5\.0 in /m);
  const state = openState(target.dataDir);
  try {
    expect(state.releases.list().map((release) => release.status)).toEqual(["deployed"]);
    expect(state.installs.list().map((install) => install.state)).toEqual(["done"]);
  } finally {
    state.close();
  }
  const fsck = await runCli(["--data-dir", target.dataDir, "store", "fsck"]);
  expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
  await expectNoDuplicates(target.dataDir);
  const htpasswd = await readFile(join(target.dataDir, "registry/htpasswd"), "utf8");
  expect(
    htpasswd
      .trim()
      .split("\n")
      .map((line) => line.split(":")[0]),
  ).toEqual(["cluster-pull", "admin"]);
  const names = (await listCertificates(openPki(target.dataDir))).map((certificate) => certificate.name);
  expect(names).toEqual(expect.arrayContaining(["registry", "msgbroker-peer", "msgbroker-server"]));
  return rerun.stdout;
}

/** Where a run is killed, what the state says then, and what the next run says of that step. */
interface KillPoint {
  label: string;
  /** The step row at the kill: done after a boundary, running inside a step. */
  step: [name: string, state: "done" | "running"];
  /** The next run's line for that step's title: skipped as done, or run (again). */
  next: RegExp;
  env?: (target: Site) => Promise<NodeJS.ProcessEnv>;
  at(target: Site, env: NodeJS.ProcessEnv): (stdout: () => string) => Promise<void>;
}

const boundary = (title: string, name: string): KillPoint => ({
  label: `after "${title}"`,
  step: [name, "done"],
  next: new RegExp(`^ok +${title} +\\d+\\.\\d s {2}already done$`, "m"),
  at: () => afterStep(title),
});

const inside = (
  title: string,
  name: string,
  point: Omit<KillPoint, "label" | "step" | "next">,
): KillPoint => ({
  label: `inside "${title}"`,
  step: [name, "running"],
  next: new RegExp(`^ok +${title} +\\d+\\.\\d s {2}(?!already done)`, "m"),
  ...point,
});

/** Every step boundary, in order, with a kill inside each long step (import, apply, wait). */
const KILLS: KillPoint[] = [
  boundary("Preflight", "preflight"),
  inside("Verify and import", "import", {
    // The store's second blob ingest, held right after its first chunk by the preload.
    env: async (target) => ({
      ...target.systemctl.env,
      NODE_OPTIONS: `--import=${join(REPO_ROOT, "test/helpers/hold-ingest.mjs")}`,
      AIRLOCK_HOLD_INGEST: "1",
      AIRLOCK_HOLD_MARK: join(await fx.dir("hold"), "held"),
    }),
    at: (_target, env) => () =>
      waitFor(() => Promise.resolve(existsSync(env.AIRLOCK_HOLD_MARK!)), 60_000, "the import held mid-blob"),
  }),
  boundary("Verify and import", "import"),
  boundary("Site PKI", "pki"),
  boundary("Registry service", "registry"),
  boundary("Cluster", "cluster"),
  boundary("Render the plane", "render"),
  inside("Apply", "apply", {
    // The client Service is applied in the cluster; its answer never reaches the CLI.
    at: (target) => () => target.cluster.holdNext("apply", (ref) => ref.kind === "Service"),
  }),
  boundary("Apply", "apply"),
  inside("Wait for the plane", "wait", {
    // The wait step's first read of the StatefulSet (client-node's watch lists it first) never answers.
    at: (target) => () =>
      target.cluster.holdNext(
        "list",
        (ref) => ref.kind === "StatefulSet" && stepState(target.dataDir, "wait") === "running",
      ),
  }),
  boundary("Wait for the plane", "wait"),
];

describe("airlock install SIGKILLed at every step boundary and inside each long step", () => {
  it("each run goes on from where the last was killed; the last ends installed, once, with nothing duplicated", async () => {
    const target = await site();
    try {
      let previous: KillPoint | undefined;
      for (const point of KILLS) {
        const env = (await point.env?.(target)) ?? target.systemctl.env;
        const printed = await killWhen(target.args, env, point.at(target, env));
        if (previous !== undefined) expect(printed, `the run killed ${point.label}`).toMatch(previous.next);
        expect(stepState(target.dataDir, point.step[0]), point.label).toBe(point.step[1]);
        await expectNoDuplicates(target.dataDir);
        previous = point;
      }
      expect(await expectInstalledOnce(target)).toMatch(previous!.next);
    } finally {
      await target.close();
    }
  }, 300_000);
});
