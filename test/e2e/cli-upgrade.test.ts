/**
 * `airlock upgrade` through the built CLI after a real `airlock install --kubeconfig` of the sample
 * 4.4.0 bundle (signed) into an in-memory cluster behind the kube-apiserver facade: plan to 4.5.0,
 * schedule it in a window, `windows --json`, a bad window pointed at, cancel, a downgrade refused,
 * a stale plan refused, and history empty then listing a run written through the state's API.
 */
import { existsSync } from "node:fs";
import { writeFile, readFile } from "node:fs/promises";
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
import { loadPlanForRun } from "../../installer/upgrade/index.js";
import { freePort, siteDaemonListenArgs } from "../helpers/daemons.js";
import { runCli, selfSignedCertificate, useFixtures, type Fixtures } from "../helpers/fixtures.js";
import { fakeSystemctl, type FakeSystemctl } from "../helpers/systemctl.js";

const TOKEN = "upgrade-e2e-token";
let fx: Fixtures;
let bundle440: string;
let bundle450: string;
let otherVendor450: string;
let cluster: MemoryCluster;
let api: RunningClusterApiServer;
let dataDir: string;
let systemctl: FakeSystemctl;

function airlock(args: string[]): ReturnType<typeof runCli> {
  return runCli(["--data-dir", dataDir, ...args], { env: systemctl.env });
}

beforeAll(async () => {
  fx = await useFixtures({ size: 1024 * 1024 });
  const keys = await fx.dir("keys");
  const { publicKey } = await generateKeyPair(join(keys, "vendor.key"), join(keys, "vendor.pub"));
  const work = await fx.dir("work");
  bundle440 = join(work, "mgmt-4.4.0.airlock.tar");
  bundle450 = join(work, "mgmt-4.5.0.airlock.tar");
  const signKey = join(keys, "vendor.key");
  await buildBundle({ specFile: fx.spec440, output: bundle440, signKey });
  await buildBundle({ specFile: fx.spec, output: bundle450, signKey });
  await generateKeyPair(join(keys, "other.key"), join(keys, "other.pub"));
  otherVendor450 = join(work, "other-4.5.0.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: otherVendor450, signKey: join(keys, "other.key") });

  const tls = await selfSignedCertificate(await fx.dir("apiserver"));
  const caPem = await readFile(tls.certFile, "utf8");
  cluster = new MemoryCluster();
  api = await serveClusterApi(cluster, {
    tls: { cert: caPem, key: await readFile(tls.keyFile, "utf8") },
    token: TOKEN,
  });
  const kubeconfig = join(fx.root, "kubeconfig");
  await writeFile(kubeconfig, clusterApiKubeconfig(api.url, caPem, TOKEN));
  const hostRoot = await fx.dir("host");
  dataDir = join(await fx.dir("data"), "airlock");
  systemctl = await fakeSystemctl(await fx.dir("systemctl"), hostRoot);
  const installed = await airlock([
    ...["install", "--bundle", bundle440, "--key", publicKey, "--kubeconfig", kubeconfig],
    ...["--host-root", hostRoot, "--registry-listen", `127.0.0.1:${await freePort()}`, "--timeout", "60s"],
    ...(await siteDaemonListenArgs()),
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

interface PlanJson {
  id: number;
  path: { kind: string };
  objects: { ref: { kind: string }; change: string; disruption: { kind: string; pods?: number } }[];
  imagesAdded: string[];
}

describe("airlock upgrade", () => {
  let planId: number;

  it("history is empty before any run", async () => {
    const result = await airlock(["upgrade", "history", "--json"]);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([]);
  });

  it("refuses a bundle not signed by the site's vendor key, storing no plan and importing nothing", async () => {
    const result = await airlock(["upgrade", "plan", "--bundle", otherVendor450]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("BUNDLE_SIGNATURE_INVALID");
    const state = openState(dataDir);
    try {
      expect(state.plans.list()).toEqual([]);
    } finally {
      state.close();
    }
    const bundles = JSON.parse((await airlock(["bundle", "ls", "--json"])).stdout) as { version: string }[];
    expect(bundles.map((bundle) => bundle.version)).toEqual(["4.4.0"]);
  });

  it("plans 4.4.0 → 4.5.0 from the signed bundle: a rolling restart of both brokers", async () => {
    const result = await airlock(["upgrade", "plan", "--bundle", bundle450, "--json"]);
    expect(result.stderr).toContain("upgrade planned plan=");
    expect(result.code).toBe(0);
    const plan = JSON.parse(result.stdout) as PlanJson;
    planId = plan.id;
    expect(plan.path.kind).toBe("upgrade");
    expect(plan.objects.find((object) => object.ref.kind === "StatefulSet")?.disruption).toEqual({
      kind: "rolling-restart",
      pods: 2,
    });
    expect(plan.imagesAdded).toContain("hubble/msgbroker:4.5.0");
    expect(result.stdout).not.toContain("PRIVATE KEY");
    const text = await airlock(["upgrade", "plan", "--to-version", "4.5.0"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^plan \d+: mgmt 4\.4\.0 → 4\.5\.0 \(upgrade\)/);
    expect(text.stdout).toMatch(/changed\s+StatefulSet\/msgbroker\s+rolling restart of 2 pods/);
    // A cluster given with --kubeconfig: its Kubernetes is not Airlock's to upgrade.
    expect(text.stdout).toMatch(
      /^k3s {10}bin\/k3s \(none\) → [0-9a-f]{12} \(.+\) not used: the plane runs on a cluster Airlock did not install$/m,
    );
  });

  it("a bad window is exit 2 pointing at its token, and nothing is scheduled", async () => {
    const result = await airlock([
      "upgrade",
      "schedule",
      String(planId),
      "--window",
      "Sat 02:00-04:00 Mars/Olympus",
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("WINDOW_INVALID");
    expect(result.stderr).toContain("Sat 02:00-04:00 Mars/Olympus\n");
    expect(result.stderr).toMatch(/\n\s+\^{12}\n/);
    const windows = await airlock(["upgrade", "windows", "--json"]);
    expect(JSON.parse(windows.stdout)).toEqual([]);
  });

  it("schedules the plan in a window; windows --json shows its next openings; a second is refused", async () => {
    const window = "Sat 02:00-04:00 Europe/Berlin";
    const holder = openState(dataDir);
    const lock = holder.lock("test holding the writer lock");
    try {
      const locked = await airlock(["upgrade", "schedule", String(planId), "--window", window]);
      expect(locked.code).toBe(1);
      expect(locked.stderr).toContain("LOCK_HELD");
    } finally {
      lock.release();
      holder.close();
    }
    const result = await airlock(["upgrade", "schedule", String(planId), "--window", window, "--json"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const scheduled = JSON.parse(result.stdout) as { nextStart: string };
    expect(new Date(scheduled.nextStart).getTime()).toBeGreaterThan(Date.now());
    const windows = JSON.parse((await airlock(["upgrade", "windows", "--json"])).stdout) as {
      planId: number;
      next: { start: string; localStart: string; window: string }[];
    }[];
    expect(windows).toHaveLength(1);
    expect(windows[0]?.planId).toBe(planId);
    expect(windows[0]?.next).toHaveLength(3);
    expect(windows[0]?.next[0]?.localStart).toMatch(
      /^Sat \d{4}-\d{2}-\d{2} 02:00 \+0[12]:00 Europe\/Berlin$/,
    );
    const again = await airlock(["upgrade", "schedule", String(planId), "--now"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("SCHEDULE_OVERLAP");
  });

  it("cancels the only scheduled plan", async () => {
    const result = await airlock(["upgrade", "cancel"]);
    expect(result.code).toBe(0);
    // The install's unit runs `airlock serve` (the stand-in systemctl started it): cancel wakes it.
    const pid = await systemctl.pid("airlock.service");
    expect(result.stdout).toBe(
      `plan ${planId} cancelled\nairlock serve (process ${pid}) told to look at the schedules now\n`,
    );
    expect(JSON.parse((await airlock(["upgrade", "windows", "--json"])).stdout)).toEqual([]);
  });

  it("upgrade run and rollback refuse bad input with typed errors, changing nothing", async () => {
    expect((await airlock(["upgrade", "run"])).code).toBe(2);
    const badFlag = await airlock(["upgrade", "run", String(planId), "--pod-timeout", "soon"]);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain("--pod-timeout");
    const unknown = await airlock(["upgrade", "run", "999"]);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("PLAN_NOT_FOUND");
    const spent = await airlock(["upgrade", "run", String(planId)]);
    expect(spent.stderr).toContain(`PLAN_NOT_RUNNABLE: plan ${planId} is cancelled`);

    const fresh = JSON.parse(
      (await airlock(["upgrade", "plan", "--to-version", "4.5.0", "--json"])).stdout,
    ) as PlanJson;
    const holder = openState(dataDir);
    const lock = holder.lock("test holding the writer lock");
    try {
      const locked = await airlock(["upgrade", "run", String(fresh.id)]);
      expect(locked.code).toBe(1);
      expect(locked.stderr).toContain(
        `LOCK_HELD: another airlock is changing this site: process ${process.pid}`,
      );
      expect((await airlock(["upgrade", "rollback"])).stderr).toContain("LOCK_HELD");
    } finally {
      lock.release();
    }
    const installed = holder.releases.current()!;
    holder.releases.deploy(holder.releases.record({ ...installed, version: "4.4.1" }).id);
    holder.close();
    const stale = await airlock(["upgrade", "run", String(fresh.id), "--json"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain("PLAN_STALE");
    expect(stale.stderr).toContain("re-plan: airlock upgrade plan --to-version 4.5.0");
    const rollback = await airlock(["upgrade", "rollback"]);
    expect(rollback.code).toBe(1);
    expect(rollback.stderr).toContain("NOTHING_TO_ROLL_BACK");
    const resume = await airlock(["upgrade", "run", "--resume"]);
    expect(resume.code).toBe(0);
    expect(resume.stdout).toBe("no interrupted upgrade run to resume\n");
    const state = openState(dataDir);
    try {
      expect(state.runs.list()).toEqual([]);
      state.releases.deploy(installed.id, { rollback: true });
    } finally {
      state.close();
    }
    const empty = join(await fx.dir("empty"), "airlock");
    const nothing = await runCli(["--data-dir", empty, "upgrade", "run", "1"]);
    expect(nothing.code).toBe(1);
    expect(nothing.stderr).toContain("NOT_INSTALLED");
    expect(existsSync(empty)).toBe(false);
  });

  it("refuses a downgrade, and a plan made stale by a new installed release", async () => {
    const fresh = JSON.parse(
      (await airlock(["upgrade", "plan", "--to-version", "4.5.0", "--json"])).stdout,
    ) as PlanJson;
    const state = openState(dataDir);
    try {
      const current = state.releases.current()!;
      state.releases.deploy(state.releases.record({ ...current, version: "4.6.0" }).id);
      expect(() => loadPlanForRun(state, fresh.id)).toThrow(/installed release has changed/);
      expect(state.plans.get(fresh.id).status).toBe("stale");
    } finally {
      state.close();
    }
    const downgrade = await airlock(["upgrade", "plan", "--to-version", "4.5.0"]);
    expect(downgrade.code).toBe(1);
    expect(downgrade.stderr).toContain("UPGRADE_DOWNGRADE");
    const stale = await airlock(["upgrade", "schedule", String(fresh.id), "--now"]);
    expect(stale.code).toBe(1);
    expect(stale.stderr).toContain("PLAN_NOT_RUNNABLE");
  });

  it("history lists a run written through the state's runs API, with its gates and rollback reason", async () => {
    const state = openState(dataDir);
    try {
      const run = state.runs.create({ planId });
      state.runs.updateStep(run.id, "partition 1", [
        {
          gate: "healthz",
          pod: "msgbroker-1",
          passed: false,
          detail: "503",
          startedAt: 1000,
          finishedAt: 1250,
        },
      ]);
      state.runs.finish(run.id, {
        state: "rolled-back",
        rollbackReason: "healthz failed on msgbroker-1: 503",
      });
    } finally {
      state.close();
    }
    const json = await airlock(["upgrade", "history", "--json"]);
    const entries = JSON.parse(json.stdout) as {
      run: { state: string; rollbackReason: string };
      to: string;
    }[];
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({
      to: "4.5.0",
      run: { state: "rolled-back", rollbackReason: "healthz failed on msgbroker-1: 503" },
    });
    const text = await airlock(["upgrade", "history"]);
    expect(text.stdout).toContain("FAIL healthz msgbroker-1 250 ms: 503");
    expect(text.stdout).toContain("rolled back: healthz failed on msgbroker-1: 503");
  });
});
