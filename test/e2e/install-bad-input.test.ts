/**
 * `airlock install` given bad input (issue 13, point 11), the cases cli-install.test.ts does not
 * cover (it has the failing preflight, the wrong signature and key, the bad values field, the
 * unreachable cluster and a lock held by another process): a bundle without the plane; a broken
 * kubeconfig; an apply the API server rejects; a StatefulSet that never becomes ready; the disk
 * filling up during the import; a second install while the first runs. Each: a typed error with a
 * hint, a non-zero exit, and a state the next run finishes from (where anything was written).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, statfs, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle } from "../../bundle/index.js";
import {
  MemoryCluster,
  clusterApiKubeconfig,
  serveClusterApi,
  type RunningClusterApiServer,
} from "../../installer/cluster/index.js";
import { openState } from "../../installer/state/index.js";
import { freePort, siteDaemonListenArgs } from "../helpers/daemons.js";
import {
  CLI,
  REPO_ROOT,
  runCli,
  runTool,
  selfSignedCertificate,
  useFixtures,
  waitFor,
  type Fixtures,
} from "../helpers/fixtures.js";
import { fakeSystemctl, type FakeSystemctl } from "../helpers/systemctl.js";

const TOKEN = "install-bad-input-token";
const HOLD_INGEST = join(REPO_ROOT, "test/helpers/hold-ingest.mjs");
let fx: Fixtures;
let bundle: string;
let tls: { cert: string; key: string };
const closers: (() => Promise<void>)[] = [];

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * 1024 * 1024 });
  bundle = join(await fx.dir("work"), "mgmt.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: bundle });
  const files = await selfSignedCertificate(await fx.dir("apiserver"));
  tls = { cert: await readFile(files.certFile, "utf8"), key: await readFile(files.keyFile, "utf8") };
}, 120_000);

afterAll(async () => {
  for (const close of closers.reverse()) await close();
  await fx?.cleanup();
}, 60_000);

interface Site {
  cluster: MemoryCluster;
  kubeconfig: string;
  dataDir: string;
  hostRoot: string;
  systemctl: FakeSystemctl;
  args(extra?: string[]): string[];
}

/** A fresh site: its data dir (or the one given), host root, registry port, and an in-memory cluster behind an API server. */
async function site(options: { dataDir?: string; podReadyMs?: number } = {}): Promise<Site> {
  const cluster = new MemoryCluster(
    options.podReadyMs === undefined ? {} : { podReadyMs: options.podReadyMs },
  );
  const api: RunningClusterApiServer = await serveClusterApi(cluster, { tls, token: TOKEN });
  const kubeconfig = join(await fx.dir("kube"), "kubeconfig");
  await writeFile(kubeconfig, clusterApiKubeconfig(api.url, tls.cert, TOKEN));
  const hostRoot = await fx.dir("host");
  const dataDir = options.dataDir ?? join(await fx.dir("data"), "airlock");
  const systemctl = await fakeSystemctl(await fx.dir("systemctl"), hostRoot);
  const listen = `127.0.0.1:${await freePort()}`;
  const daemonListen = await siteDaemonListenArgs();
  closers.push(async () => {
    await systemctl.stopAll();
    await api.close();
    cluster.close();
  });
  return {
    cluster,
    kubeconfig,
    dataDir,
    hostRoot,
    systemctl,
    args: (extra = []) => [
      ...["--data-dir", dataDir, "install", "--bundle", bundle, "--kubeconfig", kubeconfig],
      ...[
        "--host-root",
        hostRoot,
        "--registry-listen",
        listen,
        "--timeout",
        "60s",
        ...daemonListen,
        ...extra,
      ],
    ],
  };
}

function stepStates(dataDir: string): [string, string][] {
  const state = openState(dataDir);
  try {
    return state.installs.steps(state.installs.latest()!.id).map((step) => [step.name, step.state]);
  } finally {
    state.close();
  }
}

/** The built CLI with the ingest-holding preload: resolves once its `nth` blob ingest is held. */
async function startHeldAtIngest(
  args: string[],
  env: NodeJS.ProcessEnv,
  nth: number,
): Promise<{ child: ChildProcess; output: () => string; exited: Promise<number | null> }> {
  const mark = join(await fx.dir("hold"), "held");
  const child = spawn(process.execPath, [CLI, ...args], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      NO_COLOR: "1",
      ...env,
      NODE_OPTIONS: `--import=${HOLD_INGEST}`,
      AIRLOCK_HOLD_INGEST: String(nth),
      AIRLOCK_HOLD_MARK: mark,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  closers.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
  });
  await Promise.race([
    waitFor(() => Promise.resolve(existsSync(mark)), 60_000, "the import held"),
    exited.then((code) => {
      throw new Error(`install exited (${code}) before its import was held: ${output}`);
    }),
  ]);
  return { child, output: () => output, exited };
}

describe("airlock install refuses bad input before anything is written", () => {
  it("a bundle that carries no plane: BUNDLE_PLANE_MISSING, naming what it holds", async () => {
    const spec = join(fx.sampleDir, "bundle-no-plane.yaml");
    const text = await readFile(fx.spec, "utf8");
    await writeFile(
      spec,
      text.replace(/ {2}# The real broker[^\n]*\n {2}- ref: hubble\/msgbroker[^\n]*\n[^\n]*\n/, ""),
    );
    const noPlane = join(await fx.dir("work"), "mgmt-no-plane.airlock.tar");
    await buildBundle({ specFile: spec, output: noPlane });
    const target = await site();
    const result = await runCli(
      target.args().map((arg) => (arg === bundle ? noPlane : arg)),
      { env: target.systemctl.env },
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(
      "error BUNDLE_PLANE_MISSING: mgmt 4.5.0 carries no hubble/msgbroker image",
    );
    expect(result.stderr).toMatch(
      /hint: +the bundle holds hubble\/console:4\.5\.0, hubble\/agent:4\.5\.0; build it with/,
    );
    expect(existsSync(target.dataDir)).toBe(false);
    expect(await target.systemctl.calls()).toEqual([]);
  });

  it("a broken kubeconfig: the preflight names it, nothing written", async () => {
    const target = await site();
    await writeFile(target.kubeconfig, "clusters: [this is not: a kubeconfig\n");
    const result = await runCli(target.args(), { env: target.systemctl.env });
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error PREFLIGHT_FAILED");
    expect(result.stderr).toContain(`kubeconfig (${target.kubeconfig} is not a kubeconfig`);
    expect(existsSync(target.dataDir)).toBe(false);
  });
});

describe("airlock install stopped by the cluster, then finished by the next run", () => {
  it("an apply the API server rejects fails the apply step with the server's reason; the re-run applies", async () => {
    const target = await site();
    target.cluster.failNext(
      "apply",
      "StatefulSet",
      422,
      "spec.replicas: Invalid value: admission refused it",
    );
    const failed = await runCli(target.args(), { env: target.systemctl.env });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^error CLUSTER_\w+: .*admission refused it/m);
    expect(failed.stderr).toMatch(/^ {2}hint: /m);
    expect(failed.stdout).toMatch(/^FAIL +Apply +/m);
    expect(stepStates(target.dataDir).slice(5, 7)).toEqual([
      ["render", "done"],
      ["apply", "failed"],
    ]);
    const rerun = await runCli(target.args(), { env: target.systemctl.env });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/^installed mgmt 4\.5\.0 in /m);
  }, 120_000);

  it("a StatefulSet that never becomes ready: ROLLOUT_TIMEOUT names each pod, its reason and the pull failure", async () => {
    const target = await site();
    target.cluster.failImage("hubble/msgbroker", "ImagePullBackOff");
    const failed = await runCli(target.args(["--timeout", "5s"]), { env: target.systemctl.env });
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain("error ROLLOUT_TIMEOUT");
    expect(failed.stderr).toMatch(/msgbroker-0[^\n]*ImagePullBackOff/);
    expect(failed.stderr).toMatch(/msgbroker-1[^\n]*ImagePullBackOff/);
    expect(failed.stderr).toMatch(/^ {2}hint: /m);
    expect(stepStates(target.dataDir).find(([name]) => name === "apply")).toEqual(["apply", "failed"]);
    // The image is pullable again: the next run finishes, nothing of the first undone.
    target.cluster.healImage("hubble/msgbroker");
    const rerun = await runCli(target.args(), { env: target.systemctl.env });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/^ok +Registry service +\d+\.\d s {2}already done$/m);
  }, 120_000);
});

describe("airlock install and the host", () => {
  it("the disk filling up during the import: STORE_DISK_FULL; with space again the re-run installs, the store clean", async () => {
    const mount = await fx.dir("small-disk");
    const mounted = await runTool("mount", ["-t", "tmpfs", "-o", "size=700m", "airlock-test", mount]);
    expect(mounted.code, mounted.stderr).toBe(0);
    closers.push(async () => {
      await runTool("umount", ["-l", mount]);
    });
    const target = await site({ dataDir: join(mount, "airlock") });
    const held = await startHeldAtIngest(target.args(), target.systemctl.env, 1);
    // Mid-import, the file system shrinks to what is used plus 64 KiB: the next writes find it full.
    const stats = await statfs(mount);
    const usedBytes = (stats.blocks - stats.bfree) * stats.bsize;
    const shrunk = await runTool("mount", ["-o", `remount,size=${usedBytes + 64 * 1024}`, mount]);
    expect(shrunk.code, shrunk.stderr).toBe(0);
    held.child.kill("SIGUSR2");
    expect(await held.exited).toBe(1);
    expect(held.output()).toContain("error STORE_DISK_FULL");
    expect(held.output()).toMatch(/hint: +free space \(or move --data-dir to a larger disk\) and re-run/);
    expect(stepStates(target.dataDir).slice(0, 2)).toEqual([
      ["preflight", "done"],
      ["import", "failed"],
    ]);
    const grown = await runTool("mount", ["-o", "remount,size=700m", mount]);
    expect(grown.code, grown.stderr).toBe(0);
    const rerun = await runCli(target.args(), { env: target.systemctl.env });
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stdout).toMatch(/^installed mgmt 4\.5\.0 in /m);
    const fsck = await runCli(["--data-dir", target.dataDir, "store", "fsck"]);
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
  }, 180_000);

  it("a second install while the first is importing: LOCK_HELD naming the first's PID; the first then finishes", async () => {
    const target = await site();
    const first = await startHeldAtIngest(target.args(), target.systemctl.env, 1);
    const started = Date.now();
    const second = await runCli(target.args(), { env: target.systemctl.env });
    expect(second.code, second.stdout + second.stderr).toBe(1);
    expect(second.stderr).toContain(
      `error LOCK_HELD: another airlock is changing this site: process ${first.child.pid}`,
    );
    expect(Date.now() - started).toBeLessThan(15_000);
    first.child.kill("SIGUSR2");
    expect(await first.exited, first.output()).toBe(0);
    expect(first.output()).toMatch(/^installed mgmt 4\.5\.0 in /m);
  }, 180_000);
});
