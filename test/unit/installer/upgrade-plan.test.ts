/**
 * planUpgrade over a site whose state holds a deployed 4.4.0 release (rendered and recorded through
 * installer/state as install does): the sample 4.5.0 bundle imported, diffed and stored, then a
 * stale plan refused once another release is deployed, and a downgrade refused.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openState } from "../../../installer/state/index.js";
import { loadPlanForRun, planUpgrade, readPlan } from "../../../installer/upgrade/index.js";
import { rejection, useFixtures, type Fixtures } from "../../helpers/fixtures.js";
import { deploy440 } from "../../helpers/upgrade-site.js";

let fx: Fixtures;
let dataDir: string;
let bundle450: string;

beforeAll(async () => {
  fx = await useFixtures({ size: 1024 * 1024 });
  dataDir = await fx.dir("data");
  ({ bundle450 } = await deploy440(fx, dataDir, { msgbroker: { replicas: 2 } }));
}, 120_000);

afterAll(async () => {
  await fx?.cleanup();
});

describe("planUpgrade", () => {
  it("imports 4.5.0, diffs it against the installed 4.4.0 with the operator's values carried over, and stores it", async () => {
    const valuesFile = join(await fx.dir("values"), "values.yaml");
    await writeFile(valuesFile, "msgbroker:\n  resources:\n    limits:\n      memory: 1Gi\n");
    const plan = await planUpgrade({ dataDir, bundle: [bundle450], values: valuesFile });
    expect(plan.path).toEqual({ kind: "upgrade", from: "4.4.0", to: "4.5.0" });
    const broker = plan.objects.find((object) => object.ref.kind === "StatefulSet");
    expect(broker?.change).toBe("changed");
    expect(broker?.disruption).toMatchObject({ kind: "rolling-restart", pods: 2 });
    expect(broker?.fields.some((field) => field.path.endsWith(".image"))).toBe(true);
    expect(plan.imagesAdded).toContain("hubble/msgbroker:4.5.0");
    expect(plan.bytesToImport).toBeGreaterThan(0);
    expect(plan.values).toEqual([
      {
        path: "msgbroker.resources.limits.memory",
        installed: "512Mi",
        incomingDefault: "512Mi",
        rendered: "1Gi",
        overridden: true,
      },
    ]);

    const state = openState(dataDir);
    try {
      expect(readPlan(state, plan.id)).toEqual(plan);
      // The installed override (2 replicas) carried over, the new one added.
      expect(state.plans.get(plan.id).valuesGiven).toEqual({
        msgbroker: { replicas: 2, resources: { limits: { memory: "1Gi" } } },
      });
      const forRun = loadPlanForRun(state, plan.id);
      const next = forRun.next.objects.find((object) => (object as { kind: string }).kind === "StatefulSet");
      expect((next as { spec: { replicas: number } }).spec.replicas).toBe(2);
      expect(forRun.next.objects.length).toBe(
        plan.objects.filter((object) => object.change !== "removed").length,
      );
    } finally {
      state.close();
    }
  });

  it("plans by --version once imported: nothing to import", async () => {
    const plan = await planUpgrade({ dataDir, version: "4.5.0" });
    expect(plan.bytesToImport).toBe(0);
    expect(plan.to.version).toBe("4.5.0");
  });

  it("refuses a downgrade without --allow-downgrade, and allows it with", async () => {
    const state = openState(dataDir);
    const current = state.releases.current()!;
    const newer = state.releases.record({ ...current, version: "4.6.0" });
    state.releases.deploy(newer.id);
    state.close();
    try {
      expect((await rejection(planUpgrade({ dataDir, version: "4.5.0" }))).code).toBe("UPGRADE_DOWNGRADE");
      const plan = await planUpgrade({ dataDir, version: "4.5.0", allowDowngrade: true });
      expect(plan.path.kind).toBe("downgrade");
    } finally {
      const back = openState(dataDir);
      back.releases.deploy(current.id, { rollback: true });
      back.close();
    }
  });

  it("refuses to run a plan whose installed release changed since: PLAN_STALE, marked stale", async () => {
    const plan = await planUpgrade({ dataDir, version: "4.5.0" });
    const state = openState(dataDir);
    try {
      const current = state.releases.current()!;
      state.releases.deploy(state.releases.record({ ...current }).id);
      let code: string | undefined;
      let hint: string | undefined;
      try {
        loadPlanForRun(state, plan.id);
      } catch (error) {
        ({ code, hint } = error as { code: string; hint: string });
      }
      expect(code).toBe("PLAN_STALE");
      expect(hint).toContain("re-plan");
      expect(state.plans.get(plan.id).status).toBe("stale");
    } finally {
      state.close();
    }
  });
});
