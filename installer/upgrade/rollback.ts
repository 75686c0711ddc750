import { AirlockError } from "../../registry/oci/index.js";
import { applyRelease, refOf, type ClusterClient, type ClusterObject } from "../cluster/index.js";
import { planeGates } from "./gates.js";
import { restoreKeptK3s, type K3sRestoreOptions } from "./k3s-step.js";
import { clearForRecreate, deleteForRecreate, refusedInPlace } from "./recreate.js";
import { gateContext, runStep } from "./run-context.js";
import {
  applyLabelled,
  observedRevision,
  podsOf,
  releaseOf,
  statefulSetOf,
  withPartition,
} from "./run-statefulset.js";
import {
  DATA_NOT_ROLLED_BACK,
  GateFailure,
  type DeclaredHttpGate,
  type Clock,
  type GateConfig,
  type GateContext,
  type HttpProber,
  type RunRecorder,
} from "./run-types.js";

const REVISION_LABEL = "controller-revision-hash";

export interface RollbackOptions {
  recorder: RunRecorder;
  /** Why: recorded, and said in the result. */
  reason: string;
  gates?: Partial<GateConfig> | undefined;
  declaredGates?: DeclaredHttpGate[] | undefined;
  probe?: HttpProber | undefined;
  clock?: Clock | undefined;
  signal?: AbortSignal | undefined;
  /**
   * When the release rolled back from came with a k3s upgrade (its run recorded the step `k3s`):
   * after the plane, the k3s binary that upgrade kept is put back and the node gated on it.
   */
  k3s?: K3sRestoreOptions | undefined;
}

export interface RollbackResult {
  /** The StatefulSet revision every pod is back on. */
  revision: string;
  reason: string;
  notice: string;
}

/**
 * Puts the release's recorded objects back: the config first, then the StatefulSet with partition 0
 * so every pod returns. An object the API server refuses to change back in place (the run recreated
 * it) is recreated the same way: asked by a dry-run apply, since a rollback starts from wherever the
 * run stopped; the StatefulSet orphaning its pods, which the restored one adopts and rolls back.
 * Pods stuck unready on another revision are deleted, since the controller
 * never replaces a pod that is not Ready. Waits until every pod is on the previous revision, Ready
 * and clustered, then prunes what the failed release added. Never deletes the plane.
 */
export async function rollbackRelease(
  client: ClusterClient,
  previous: ClusterObject[],
  options: RollbackOptions,
): Promise<RollbackResult> {
  const ctx = gateContext(options);
  const result = await rollbackWith(client, previous, ctx, options.reason);
  if (options.k3s !== undefined) await restoreKeptK3s(client, ctx, options.k3s);
  return result;
}

export async function rollbackWith(
  client: ClusterClient,
  previous: ClusterObject[],
  ctx: GateContext,
  reason: string,
): Promise<RollbackResult> {
  const statefulSet = statefulSetOf(previous, "previous");
  const release = releaseOf(statefulSet);
  let revision = "";
  const restore = runStep(ctx, "rollback", async () => {
    const config = previous.filter((object) => object.kind !== "StatefulSet");
    await clearForRecreate(client, ctx, config, { probe: true });
    await applyRelease(client, config, { release, prune: false, signal: ctx.signal });
    const target = withPartition(statefulSet, 0);
    if (await refusedInPlace(client, target)) await deleteForRecreate(client, ctx, refOf(target), true);
    const applied = await applyLabelled(client, target, release);
    await ctx.recorder.partitionMoved(statefulSet.metadata.name, 0, ctx.clock.now());
    revision = await observedRevision(client, applied, ctx.clock, ctx.config.podReadyTimeoutMs, ctx.signal);
    for (const pod of await podsOf(client, applied)) {
      const ready = ((pod.status?.conditions ?? []) as { type: string; status: string }[]).some(
        (condition) => condition.type === "Ready" && condition.status === "True",
      );
      if (pod.metadata.labels?.[REVISION_LABEL] !== revision && !ready) {
        await client.delete({
          apiVersion: "v1",
          kind: "Pod",
          name: pod.metadata.name,
          namespace: pod.metadata.namespace,
        });
      }
    }
    await planeGates(client, ctx, statefulSet, revision, "rollback:");
    await applyRelease(client, previous, {
      release,
      prune: true,
      timeoutMs: ctx.config.podReadyTimeoutMs,
      signal: ctx.signal,
    });
  });
  await restore.catch((error: unknown) => {
    if (!(error instanceof GateFailure)) throw error;
    throw new AirlockError(
      "ROLLBACK_FAILED",
      `the rollback to the previous release did not finish: ${error.message} (it began because ${reason})`,
      {
        where: `StatefulSet ${statefulSet.metadata.namespace ?? ""}/${statefulSet.metadata.name}`,
        hint: `the plane is left as it is, never deleted: look at its pods (kubectl -n ${statefulSet.metadata.namespace ?? "default"} describe pods), then run airlock upgrade rollback again`,
      },
    );
  });
  await ctx.recorder.rolledBack(reason, ctx.clock.now());
  return { revision, reason, notice: DATA_NOT_ROLLED_BACK };
}
