/**
 * The site daemon's scheduler picks up what the CLI schedules: after a real `airlock install
 * --kubeconfig` of the signed 4.4.0 sample into a MemoryCluster behind serveClusterApi (the unit
 * the stand-in systemctl runs is `airlock serve`), `upgrade plan --bundle 4.5.0` and `upgrade
 * schedule PLAN --now` in other processes. The CLI itself wakes the daemon once the schedule is
 * stored (SIGHUP to the daemon lock's PID): a window schedule, its cancel and the `--now` start are
 * each seen within seconds, well inside the daemon's 60 s poll; it starts the plan under the writer
 * lock and records the run. Whether its gates pass
 * on simulated pods (without pod addresses they wait out their timeouts) does not matter here: the
 * run the daemon recorded, under the lock it holds, is the proof that it picked the schedule up.
 */
import { readFile, writeFile } from "node:fs/promises";
import { get } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, generateKeyPair } from "../../bundle/index.js";
import {
  MemoryCluster,
  clusterApiKubeconfig,
  serveClusterApi,
  type RunningClusterApiServer,
} from "../../installer/cluster/index.js";
import { openState } from "../../installer/state/index.js";
import { freePort, freePorts } from "../helpers/daemons.js";
import { runCli, selfSignedCertificate, useFixtures, waitFor, type Fixtures } from "../helpers/fixtures.js";
import { fakeSystemctl, type FakeSystemctl } from "../helpers/systemctl.js";

const TOKEN = "serve-scheduler-token";
const UNIT = "airlock.service";
let fx: Fixtures;
let bundle450: string;
let cluster: MemoryCluster;
let api: RunningClusterApiServer;
let dataDir: string;
let hostRoot: string;
let healthPort: number;
let systemctl: FakeSystemctl;

function airlock(args: string[]): ReturnType<typeof runCli> {
  return runCli(["--data-dir", dataDir, ...args], { env: systemctl.env });
}

interface SchedulerHealth {
  state: string;
  last?: string;
  nextDueAt?: string;
}

/** How many SIGHUPs the daemon logged so far: the CLI's wake-ups. */
async function hangups(): Promise<number> {
  const log = await readFile(join(hostRoot, "run/systemd/standin", `${UNIT}.log`), "utf8");
  return log.split("serve: SIGHUP").length - 1;
}

/** A window opening three days from now (UTC), so it is upcoming but not due. */
function windowInThreeDays(): string {
  const day = new Date(Date.now() + 3 * 86_400_000).toLocaleDateString("en-US", {
    weekday: "short",
    timeZone: "UTC",
  });
  return `${day} 03:00-07:00 UTC`;
}

function healthz(): Promise<{ status: number; body: { scheduler: SchedulerHealth } }> {
  return new Promise((resolve, reject) => {
    get(`http://127.0.0.1:${healthPort}/healthz`, (res) => {
      let text = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
      res.on("end", () =>
        resolve({
          status: res.statusCode ?? 0,
          body: JSON.parse(text) as { scheduler: SchedulerHealth },
        }),
      );
    }).on("error", reject);
  });
}

beforeAll(async () => {
  fx = await useFixtures({ size: 1024 * 1024 });
  const keys = await fx.dir("keys");
  const { publicKey } = await generateKeyPair(join(keys, "vendor.key"), join(keys, "vendor.pub"));
  const work = await fx.dir("work");
  const bundle440 = join(work, "mgmt-4.4.0.airlock.tar");
  bundle450 = join(work, "mgmt-4.5.0.airlock.tar");
  const signKey = join(keys, "vendor.key");
  await buildBundle({ specFile: fx.spec440, output: bundle440, signKey });
  await buildBundle({ specFile: fx.spec, output: bundle450, signKey });

  const tls = await selfSignedCertificate(await fx.dir("apiserver"));
  const caPem = await readFile(tls.certFile, "utf8");
  cluster = new MemoryCluster();
  api = await serveClusterApi(cluster, {
    tls: { cert: caPem, key: await readFile(tls.keyFile, "utf8") },
    token: TOKEN,
  });
  const kubeconfig = join(fx.root, "kubeconfig");
  await writeFile(kubeconfig, clusterApiKubeconfig(api.url, caPem, TOKEN));
  hostRoot = await fx.dir("host");
  dataDir = join(await fx.dir("data"), "airlock");
  systemctl = await fakeSystemctl(await fx.dir("systemctl"), hostRoot);
  const [consolePort, health] = (await freePorts(2)) as [number, number];
  healthPort = health;
  const installed = await airlock([
    ...["install", "--bundle", bundle440, "--key", publicKey, "--kubeconfig", kubeconfig],
    ...["--host-root", hostRoot, "--registry-listen", `127.0.0.1:${await freePort()}`, "--timeout", "60s"],
    ...["--console-listen", `127.0.0.1:${consolePort}`, "--health-listen", `127.0.0.1:${healthPort}`],
  ]);
  expect(installed.stderr).toBe("");
  expect(installed.code).toBe(0);
}, 180_000);

afterAll(async () => {
  await systemctl?.stopAll();
  await api?.close();
  cluster?.close();
  await fx?.cleanup();
});

describe("airlock serve's scheduler", () => {
  it("is woken by `upgrade schedule` and `upgrade cancel`, and starts a plan scheduled --now at once, under the writer lock", async () => {
    await waitFor(
      () =>
        healthz().then(
          ({ body }) => body.scheduler.state === "waiting",
          () => false,
        ),
      30_000,
      "the daemon's scheduler to wait",
    );
    const pid = await systemctl.pid(UNIT);
    expect(pid).toEqual(expect.any(Number));
    const planOf = async (): Promise<number> =>
      (
        JSON.parse((await airlock(["upgrade", "plan", "--bundle", bundle450, "--json"])).stdout) as {
          id: number;
        }
      ).id;

    // A window schedule: the daemon, woken, shows its next start at once rather than after its poll.
    const later = await planOf();
    const before = await hangups();
    const windowed = await airlock([
      "upgrade",
      "schedule",
      String(later),
      "--window",
      windowInThreeDays(),
      "--json",
    ]);
    expect(windowed.stderr).toBe("");
    const told = JSON.parse(windowed.stdout) as {
      nextStart: string;
      daemon: { pid: number; woken: boolean };
    };
    expect(told.daemon).toEqual({ pid, woken: true });
    await waitFor(() => hangups().then((count) => count > before), 10_000, "the daemon to log the SIGHUP");
    await waitFor(
      () => healthz().then(({ body }) => body.scheduler.nextDueAt === told.nextStart),
      10_000,
      "/healthz to show the window's start as the next one due",
    );
    const cancelled = await airlock(["upgrade", "cancel", String(later)]);
    expect(cancelled.stdout).toContain(`airlock serve (process ${pid}) told to look at the schedules now`);
    await waitFor(
      () => healthz().then(({ body }) => body.scheduler.nextDueAt === undefined),
      10_000,
      "/healthz to show nothing due once cancelled",
    );

    const plan = { id: await planOf() };
    const scheduled = await airlock(["upgrade", "schedule", String(plan.id), "--now"]);
    expect(scheduled.stderr).toBe("");
    expect(scheduled.code).toBe(0);
    expect(scheduled.stdout).toContain(`airlock serve (process ${pid}) told to look at the schedules now`);

    const state = openState(dataDir);
    try {
      // Picked up: the daemon's run of this plan is recorded, under the writer lock it holds.
      await waitFor(
        () => state.runs.list().some((run) => run.planId === plan.id),
        15_000,
        "the daemon to start the plan",
      );
      const run = state.runs.list().find((candidate) => candidate.planId === plan.id)!;
      expect(run.kind).toBe("upgrade");
      const holder = state.lockHolder();
      if (run.endedAt === undefined) expect(holder).toMatchObject({ pid, command: "airlock serve" });
      await waitFor(
        () =>
          healthz().then(
            ({ body }) => body.scheduler.state === "running" || body.scheduler.last !== undefined,
          ),
        10_000,
        "/healthz to show the scheduler acting",
      );
    } finally {
      state.close();
    }
  }, 200_000);
});
