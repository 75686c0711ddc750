import { AirlockError } from "../../registry/oci/index.js";
import { applyRelease, describeRef, refOf, type ClusterClient } from "../cluster/index.js";
import { planeGates, podGates } from "./gates.js";
import { preGates } from "./gates-pre.js";
import { clearForRecreate, deleteForRecreate, plannedRecreates, refusedInPlace } from "./recreate.js";
import { rollbackWith } from "./rollback.js";
import { gateContext, runStep } from "./run-context.js";
import {
  applyLabelled,
  observedRevision,
  podNameOf,
  releaseOf,
  replicasOf,
  statefulSetOf,
  withPartition,
} from "./run-statefulset.js";
import { checkK3s, k3sOnResume, rollbackK3s, unstageK3s, upgradeK3s, type K3sChange } from "./k3s-step.js";
import {
  DATA_NOT_ROLLED_BACK,
  GateFailure,
  type GateContext,
  type UpgradeOptions,
  type UpgradeResult,
} from "./run-types.js";

/**
 * Upgrades the plane from `previous` to `next` one broker at a time. Pre-gates first (nothing
 * changes if one fails: the result is "refused"); then, when the new bundle's k3s differs from the
 * running one (options.k3s), k3s (see k3s-step.ts); then the release's config objects; then the
 * StatefulSet with its partition at the replica count, so nothing rolls; then the partition lowered
 * one ordinal at a time from the highest, each pod gated (Ready on the new revision, /healthz,
 * /routez, declared probes, settle); then the whole release applied and pruned, and a final gate.
 * What the plan shows as "recreate" (a change the API server refuses in place) is deleted first:
 * a config object just before the config is applied, the StatefulSet with orphan propagation just
 * before it is applied, so its pods run on until the new one adopts them and rolls them as above.
 * A failed gate or timeout rolls back to `previous` (see rollbackRelease), and k3s to the binary it
 * replaced. Other failures (the API server, an abort) are thrown: the recorder holds how far the
 * run got.
 */
export async function runUpgrade(client: ClusterClient, options: UpgradeOptions): Promise<UpgradeResult> {
  const ctx = gateContext(options);
  const started = ctx.clock.now();
  const statefulSet = statefulSetOf(options.next, "next");
  statefulSetOf(options.previous, "previous");
  let k3s: K3sChange | undefined;
  try {
    // A resumed run finds the plane mid-way by design: the pre-gate judged it before it began. Its
    // k3s step (given when the record shows it began) is read from the host: finished or undone.
    if (options.resumeAt === undefined) {
      await runStep(ctx, "pre-gate", async () => {
        if (options.k3s !== undefined) k3s = await checkK3s(ctx, options.k3s);
        await preGates(client, ctx, options, statefulSet);
      });
    } else if (options.k3s !== undefined) {
      k3s = await k3sOnResume(options.k3s);
    }
  } catch (error) {
    await unstageK3s(options.k3s);
    if (!(error instanceof GateFailure)) throw error;
    return { outcome: "refused", reason: error.message, durationMs: ctx.clock.now() - started };
  }
  let planeTouched = false;
  try {
    if (k3s !== undefined && !(k3s.swapped === true && options.k3s?.stepDone === true)) {
      await upgradeK3s(client, ctx, options.k3s!, k3s);
    }
    planeTouched = true;
    await rollForward(client, ctx, options);
    const upgraded = k3s === undefined ? {} : { k3s: { from: k3s.from.text, to: k3s.to.text } };
    return { outcome: "upgraded", durationMs: ctx.clock.now() - started, ...upgraded };
  } catch (error) {
    const failure = asGateFailure(error);
    if (failure === undefined || ctx.signal?.aborted === true) throw error;
    // The probes the new bundle declares are not the previous release's to pass.
    const back = { ...ctx, declared: [] };
    // Undone in the reverse order: the plane (if it was reached), then k3s.
    if (planeTouched) await rollbackWith(client, options.previous, back, failure.message);
    if (k3s !== undefined) await rollbackK3s(client, back, options.k3s!, k3s);
    if (!planeTouched) await ctx.recorder.rolledBack(failure.message, ctx.clock.now());
    return {
      outcome: "rolled-back",
      reason: failure.message,
      notice: DATA_NOT_ROLLED_BACK,
      durationMs: ctx.clock.now() - started,
    };
  }
}

async function rollForward(client: ClusterClient, ctx: GateContext, options: UpgradeOptions): Promise<void> {
  const statefulSet = statefulSetOf(options.next, "next");
  const release = releaseOf(statefulSet);
  const replicas = replicasOf(statefulSet);
  const name = statefulSet.metadata.name;
  const recreate = plannedRecreates(options.previous, options.next);
  // A resumed run may have recreated them already: the server says which it still refuses.
  const resumed = options.resumeAt !== undefined;
  await runStep(ctx, "config", async () => {
    const config = options.next.filter((object) => object.kind !== "StatefulSet");
    await clearForRecreate(client, ctx, config, resumed ? { probe: true } : { planned: recreate });
    await applyRelease(client, config, { release, prune: false, signal: ctx.signal });
  });
  let revision = "";
  await runStep(ctx, "statefulset", async () => {
    const first = Math.min(options.resumeAt ?? replicas, replicas);
    const target = withPartition(statefulSet, first);
    if (resumed ? await refusedInPlace(client, target) : recreate.has(describeRef(refOf(statefulSet)))) {
      await deleteForRecreate(client, ctx, refOf(statefulSet), true);
    }
    const applied = await applyLabelled(client, target, release);
    await ctx.recorder.partitionMoved(name, first, ctx.clock.now());
    revision = await observedRevision(client, applied, ctx.clock, ctx.config.podReadyTimeoutMs, ctx.signal);
  });
  for (let ordinal = Math.min(options.resumeAt ?? replicas, replicas - 1); ordinal >= 0; ordinal--) {
    const pod = podNameOf(statefulSet, ordinal);
    await runStep(ctx, `roll ${pod}`, async () => {
      await applyLabelled(client, withPartition(statefulSet, ordinal), release);
      await ctx.recorder.partitionMoved(name, ordinal, ctx.clock.now());
      await podGates(client, ctx, statefulSet, pod, revision);
    });
  }
  await runStep(ctx, "finish", async () => {
    await applyRelease(client, options.next, {
      release,
      prune: true,
      timeoutMs: ctx.config.podReadyTimeoutMs,
      signal: ctx.signal,
    });
  });
  await runStep(ctx, "final-gate", () => planeGates(client, ctx, statefulSet, revision, "final:"));
}

/** A gate's failure, or a rollout that timed out: both mean the new release does not run. */
function asGateFailure(error: unknown): GateFailure | undefined {
  if (error instanceof GateFailure) return error;
  if (error instanceof AirlockError && error.code === "ROLLOUT_TIMEOUT") {
    return new GateFailure("rollout", undefined, error.message);
  }
  return undefined;
}
