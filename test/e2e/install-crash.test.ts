/**
 * Crash safety of `airlock install` (issue 13, point 7, at step boundaries): the built CLI is
 * SIGKILLed as soon as it reports a step done, then run again. Each re-run must end installed with
 * exactly one release, the store's fsck clean, and the accounts not duplicated.
 */
import { spawn } from "node:child_process";
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
import { openState } from "../../installer/state/index.js";
import { freePort } from "../helpers/daemons.js";
import {
  CLI,
  REPO_ROOT,
  runCli,
  selfSignedCertificate,
  snapshotStore,
  useFixtures,
  type Fixtures,
} from "../helpers/fixtures.js";
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
  close(): Promise<void>;
}

/** A fresh site: its own data dir, host root, registry port and in-memory cluster behind an API server. */
async function site(): Promise<Site> {
  const cluster = new MemoryCluster();
  const api: RunningClusterApiServer = await serveClusterApi(cluster, { tls, token: TOKEN });
  const kubeconfig = join(await fx.dir("kube"), "kubeconfig");
  await writeFile(kubeconfig, clusterApiKubeconfig(api.url, tls.cert, TOKEN));
  const hostRoot = await fx.dir("host");
  const dataDir = join(await fx.dir("data"), "airlock");
  const systemctl = await fakeSystemctl(await fx.dir("systemctl"), hostRoot);
  const args = [
    ...["--data-dir", dataDir, "install", "--bundle", bundle, "--kubeconfig", kubeconfig],
    ...["--host-root", hostRoot, "--registry-listen", `127.0.0.1:${await freePort()}`, "--timeout", "60s"],
  ];
  return {
    args,
    dataDir,
    systemctl,
    close: async () => {
      await systemctl.stopAll();
      await api.close();
      cluster.close();
    },
  };
}

/** Runs the CLI until it reports `title` done, then SIGKILLs it; resolves with what it printed. */
function killAfterStep(args: string[], env: NodeJS.ProcessEnv, title: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    const boundary = new RegExp(`^ok +${title} `, "m");
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      stdout += chunk;
      if (boundary.test(stdout)) child.kill("SIGKILL");
    });
    child.stderr.resume();
    child.on("error", reject);
    child.on("close", (code, signal) => {
      if (signal === "SIGKILL") resolve(stdout);
      else reject(new Error(`install ended (${code}) before "${title}" was reported: ${stdout}`));
    });
  });
}

describe("airlock install SIGKILLed at a step boundary", () => {
  for (const title of ["Verify and import", "Site PKI", "Registry service", "Render the plane", "Apply"]) {
    it(`after "${title}": the re-run ends installed, one release, store clean, two accounts`, async () => {
      const target = await site();
      try {
        const killed = await killAfterStep(target.args, target.systemctl.env, title);
        expect(killed).toMatch(new RegExp(`^ok +${title} `, "m"));
        const rerun = await runCli(target.args, { env: target.systemctl.env });
        expect(rerun.stderr).toBe("");
        expect(rerun.code).toBe(0);
        expect(rerun.stdout).toMatch(new RegExp(`^ok +${title} +\\d+\\.\\d s {2}already done$`, "m"));
        expect(rerun.stdout).toMatch(/^installed mgmt 4\.5\.0 in /m);

        const state = openState(target.dataDir);
        try {
          expect(state.releases.list().map((release) => release.status)).toEqual(["deployed"]);
          expect(state.installs.list().map((install) => install.state)).toEqual(["done"]);
        } finally {
          state.close();
        }
        await snapshotStore(target.dataDir);
        const htpasswd = await readFile(join(target.dataDir, "registry/htpasswd"), "utf8");
        expect(
          htpasswd
            .trim()
            .split("\n")
            .map((line) => line.split(":")[0]),
        ).toEqual(["cluster-pull", "admin"]);
      } finally {
        await target.close();
      }
    }, 120_000);
  }
});
