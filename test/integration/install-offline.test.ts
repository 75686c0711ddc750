/**
 * Offline, proven (issue 13, point 9): the whole install step list runs inside a network namespace
 * whose only interface is `lo` — the built CLI under `ip netns exec`, the cluster's API server (a
 * MemoryCluster behind its facade) and the registry unit the stand-in systemctl starts all in
 * there — and completes. Any address but loopback is unreachable there, so a connection anywhere
 * else would fail; and every Node process of the install carries a preload that records each
 * connect, lookup, UDP send and socket error, so a failure the code swallowed is seen too: the only
 * connections are to the configured registry and cluster, no name (only address literals) is looked up, nothing is sent
 * over UDP, and the only socket errors are the registry refusing while it starts.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import { isIP } from "node:net";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, generateKeyPair } from "../../bundle/index.js";
import { clusterApiKubeconfig } from "../../installer/cluster/index.js";
import type { InstallResult, SiteStatus } from "../../installer/install/index.js";
import {
  CLI,
  REPO_ROOT,
  runTool,
  selfSignedCertificate,
  useFixtures,
  type Fixtures,
} from "../helpers/fixtures.js";
import { fakeSystemctl, type FakeSystemctl } from "../helpers/systemctl.js";

const NETNS = `al-off-${randomBytes(3).toString("hex")}`;
const TOKEN = "offline-token";
const REGISTRY = "127.0.0.1:5443";
const RECORDER = join(REPO_ROOT, "test/helpers/offline/connect-recorder.mjs");
let fx: Fixtures;
let bundle: string;
let publicKey: string;
let apiServer: ChildProcess | undefined;
let apiAddress: string;
let kubeconfig: string;
let hostRoot: string;
let dataDir: string;
let systemctl: FakeSystemctl;
let connectLog: string;
let netnsMade = false;

interface Recorded {
  pid: number;
  event: "start" | "connect" | "error" | "udp" | "lookup";
  argv?: string[];
  host?: string;
  port?: number;
  path?: string;
  hostname?: string;
  code?: string;
}

async function ip(...args: string[]): Promise<string> {
  const result = await runTool("ip", args);
  if (result.code !== 0) throw new Error(`ip ${args.join(" ")} failed: ${result.stderr}`);
  return result.stdout.toString();
}

/** Starts the cluster API server inside the namespace; resolves with its URL once it serves. */
async function startApiInNetns(certFile: string, keyFile: string): Promise<string> {
  const script = join(REPO_ROOT, "test/helpers/offline/cluster-api.mjs");
  const child = spawn("ip", ["netns", "exec", NETNS, process.execPath, script, certFile, keyFile, TOKEN], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  apiServer = child;
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const lines = createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the API server did not start: ${stderr}`)), 30_000);
    lines.once("line", (line) => {
      clearTimeout(timer);
      resolve((JSON.parse(line) as { url: string }).url);
    });
    child.once("exit", (code) => reject(new Error(`the API server exited (${code}): ${stderr}`)));
  });
}

/** The built CLI inside the namespace, every Node process of it recording its sockets. */
function cliInNetns(args: string[]): ReturnType<typeof runTool> {
  return runTool("ip", ["netns", "exec", NETNS, process.execPath, CLI, ...args], {
    cwd: REPO_ROOT,
    env: {
      ...systemctl.env,
      NO_COLOR: "1",
      NODE_OPTIONS: `--import=${RECORDER}`,
      AIRLOCK_CONNECT_LOG: connectLog,
    },
  });
}

async function recorded(): Promise<Recorded[]> {
  return (await readFile(connectLog, "utf8").catch(() => ""))
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Recorded);
}

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * 1024 * 1024 });
  const keys = await fx.dir("keys");
  ({ publicKey } = await generateKeyPair(join(keys, "vendor.key"), join(keys, "vendor.pub")));
  bundle = join(await fx.dir("work"), "mgmt.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: bundle, signKey: join(keys, "vendor.key") });

  await ip("netns", "add", NETNS);
  netnsMade = true;
  await ip("-n", NETNS, "link", "set", "lo", "up");
  const tls = await selfSignedCertificate(await fx.dir("apiserver"));
  const url = await startApiInNetns(tls.certFile, tls.keyFile);
  apiAddress = new URL(url).host;
  kubeconfig = join(fx.root, "kubeconfig");
  await writeFile(kubeconfig, clusterApiKubeconfig(url, await readFile(tls.certFile, "utf8"), TOKEN));
  hostRoot = await fx.dir("host");
  dataDir = join(await fx.dir("data"), "airlock");
  systemctl = await fakeSystemctl(await fx.dir("systemctl"), hostRoot);
  connectLog = join(fx.root, "connects.jsonl");
}, 120_000);

afterAll(async () => {
  await systemctl?.stopAll();
  if (apiServer?.exitCode === null) {
    const exited = new Promise((resolve) => apiServer!.once("exit", resolve));
    apiServer.kill("SIGTERM");
    await exited;
  }
  if (netnsMade) await ip("netns", "del", NETNS);
  await fx?.cleanup();
}, 60_000);

describe("airlock install with no network but loopback", () => {
  it("completes every step inside a namespace that has only lo", async () => {
    const links = (await ip("-n", NETNS, "-o", "link", "show"))
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => line.split(":")[1]!.trim());
    expect(links).toEqual(["lo"]);

    const result = await cliInNetns([
      ...["--data-dir", dataDir, "--json", "install", "--bundle", bundle, "--key", publicKey],
      ...["--kubeconfig", kubeconfig, "--host-root", hostRoot, "--registry-listen", REGISTRY],
      ...["--timeout", "60s"],
    ]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout.toString()) as InstallResult;
    expect(report.outcome).toBe("installed");
    expect(report.steps.map((step) => [step.name, step.outcome])).toEqual(
      ["preflight", "import", "pki", "registry", "cluster", "render", "apply", "wait", "record"].map(
        (name) => [name, "done"],
      ),
    );

    const status = await cliInNetns(["--data-dir", dataDir, "--json", "status"]);
    expect(status.code, status.stderr).toBe(0);
    expect((JSON.parse(status.stdout.toString()) as SiteStatus).healthy).toBe(true);
  }, 180_000);

  it("opened sockets only to the configured registry and cluster, looked up no name, sent no UDP", async () => {
    const events = await recorded();
    const connects = events.filter((event) => event.event === "connect");
    const targets = new Set(connects.map((event) => event.path ?? `${event.host}:${event.port}`));
    // Both were used, so the recorder saw the install's sockets; nothing else was dialled.
    expect([...targets].sort()).toEqual([REGISTRY, apiAddress].sort());
    // Lookups of address literals answer without a resolver; a name would need one.
    expect(
      events.filter(
        (event) => (event.event === "lookup" && isIP(event.hostname!) === 0) || event.event === "udp",
      ),
    ).toEqual([]);
    // The registry unit refuses while it starts; no other socket failed, swallowed or not.
    const errors = events.filter((event) => event.event === "error");
    expect(
      errors.filter(
        (event) => !(`${event.host}:${event.port}` === REGISTRY && event.code === "ECONNREFUSED"),
      ),
    ).toEqual([]);
    // The registry unit's process carried the recorder too: the preload reached the service.
    const starts = events.filter((event) => event.event === "start");
    expect(starts.some((event) => event.argv!.includes("install"))).toBe(true);
    expect(starts.some((event) => event.argv!.includes("serve"))).toBe(true);
  });
});
