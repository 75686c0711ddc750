import { AirlockError } from "../../registry/oci/index.js";
import type { ClusterObject } from "../cluster/index.js";
import type { Release, State, UpgradeRun } from "../state/index.js";
import { refuseUnfinished } from "./execute.js";
import { keptK3sToRestore, type K3sRestoreOptions } from "./k3s-step.js";
import { readPlan } from "./plan.js";
import { siteOf, type RunSite, type UpgradeDeps } from "./run-deps.js";
import { returnTo, type RunReport } from "./run-settle.js";

export const MANUAL_ROLLBACK_REASON = "asked for by hand (airlock upgrade rollback)";

/**
 * The deployed release, and the one a rollback returns to: the newest superseded release (the console
 * names it in its confirmation). NOTHING_TO_ROLL_BACK when the deployed release replaced none.
 */
export function releasesToSwap(state: State): { current: Release; previous: Release; planId: number } {
  const current = state.releases.current();
  if (current === undefined) {
    throw new AirlockError("NOT_INSTALLED", "nothing is deployed on this site to roll back", {
      hint: "install the plane first with `airlock install`",
    });
  }
  const previous = state.releases.list().find((release) => release.status === "superseded");
  const planId = current.upgradeId === undefined ? undefined : state.runs.get(current.upgradeId).planId;
  if (previous === undefined || planId === undefined) {
    throw new AirlockError(
      "NOTHING_TO_ROLL_BACK",
      `release ${current.id} (${current.version}) replaced no earlier release: there is none to return to`,
      {
        where: `release/${current.id}`,
        hint: "`airlock upgrade history` lists the runs; `airlock status` the release",
      },
    );
  }
  return { current, previous, planId };
}

/**
 * The kept k3s a rollback under `run` puts back after the plane: when the upgrade it undoes (the run
 * itself, or for a rollback by hand the run that deployed the release it leaves) swapped k3s in and
 * that binary is still in place; undefined otherwise, and always on a cluster Airlock did not install.
 */
export async function k3sToRestore(
  state: State,
  site: RunSite,
  run: UpgradeRun,
): Promise<K3sRestoreOptions | undefined> {
  if (site.k3sHost === undefined) return undefined;
  const upgradeId = run.kind === "rollback" ? state.releases.get(run.fromReleaseId!).upgradeId : run.id;
  if (upgradeId === undefined) return undefined;
  const upgrade = state.runs.get(upgradeId);
  const steps = upgrade.id === run.id ? run.steps : [...upgrade.steps, ...run.steps];
  return keptK3sToRestore(steps, readPlan(state, upgrade.planId), site.k3sHost);
}

/**
 * `airlock upgrade rollback`: re-applies the release the deployed one replaced, through
 * rollbackRelease (config, partition 0, every pod back on its revision, Ready and clustered, then the
 * later release's additions pruned, then the k3s binary its upgrade replaced), recorded as a run of kind rollback with its events. It never
 * deletes the plane, and the report says that data written since is not rolled back. The caller
 * holds the writer lock.
 */
export async function rollbackLastRelease(deps: UpgradeDeps): Promise<RunReport> {
  const { state } = deps;
  refuseUnfinished(state);
  const { current, previous, planId } = releasesToSwap(state);
  const site = siteOf(deps);
  const run = state.runs.create({
    planId,
    kind: "rollback",
    fromReleaseId: current.id,
    toReleaseId: previous.id,
  });
  const target = { id: previous.id, version: previous.version, objects: previous.objects as ClusterObject[] };
  const k3s = await k3sToRestore(state, site, run);
  return returnTo(deps, site, run, target, MANUAL_ROLLBACK_REASON, k3s);
}
