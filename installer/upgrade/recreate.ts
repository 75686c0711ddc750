import { AirlockError, isAirlockError } from "../../registry/oci/index.js";
import {
  describeRef,
  FIELD_MANAGER,
  refOf,
  type ClusterClient,
  type ClusterObject,
  type ObjectRef,
} from "../cluster/index.js";
import { diffReleases } from "./diff.js";
import { runStep } from "./run-context.js";
import type { GateContext } from "./run-types.js";

/**
 * Changes the API server refuses in place (a StatefulSet's claim templates, a selector, a Service's
 * cluster IP, an immutable Secret's data): the object is deleted and created again. A workload is
 * deleted with orphan propagation, so its pods keep running and serving; the one applied next adopts
 * them and rolls them behind the same gates as any other change. Anything else is deleted with its
 * dependents and made again at once, at the point of the release where it is applied.
 */

/** How long a deleted object may take to be gone (the garbage collector clears an orphaning delete first). */
const GONE_POLL_MS = 50;

/** `describeRef` of each object of `next` the plan (previous → next) says must be recreated. */
export function plannedRecreates(previous: ClusterObject[], next: ClusterObject[]): Set<string> {
  return new Set(
    diffReleases(previous, next)
      .filter((diff) => diff.disruption.kind === "recreate")
      .map((diff) => describeRef(diff.ref)),
  );
}

/**
 * Whether the API server would refuse to apply `object` over the one it has: a dry-run apply says
 * so, as only the server knows what it holds (a rollback starts from wherever a run stopped).
 */
export async function refusedInPlace(client: ClusterClient, object: ClusterObject): Promise<boolean> {
  if ((await client.get(refOf(object))) === undefined) return false;
  try {
    await client.apply(object, { fieldManager: FIELD_MANAGER, force: true, dryRun: true });
    return false;
  } catch (error) {
    if (isAirlockError(error, "CLUSTER_FIELD_IMMUTABLE")) return true;
    throw error;
  }
}

/**
 * Deletes the object (orphaning what it controls when `orphan`), recorded as a step, and waits until
 * the API server no longer has it, so that the apply after it creates a new one.
 */
export async function deleteForRecreate(
  client: ClusterClient,
  ctx: GateContext,
  ref: ObjectRef,
  orphan: boolean,
): Promise<void> {
  await runStep(ctx, `recreate ${describeRef(ref)}`, async () => {
    await client.delete(ref, { propagationPolicy: orphan ? "Orphan" : "Background" });
    const deadline = ctx.clock.now() + ctx.config.podReadyTimeoutMs;
    while ((await client.get(ref)) !== undefined) {
      if (ctx.clock.now() >= deadline) {
        throw new AirlockError(
          "UPGRADE_RECREATE_STUCK",
          `${describeRef(ref)} was deleted to be created again, but is still there after ${Math.round(ctx.config.podReadyTimeoutMs / 1000)} s`,
          {
            where: describeRef(ref),
            hint: "a finalizer holds it: look at it (kubectl get -o yaml), then run the upgrade again",
          },
        );
      }
      await ctx.clock.sleep(GONE_POLL_MS, ctx.signal);
    }
  });
}

/**
 * Deletes the config objects (everything but the StatefulSet) that must be created again, before the
 * release's config is applied: those `planned` names, or, with `probe`, those the server refuses.
 */
export async function clearForRecreate(
  client: ClusterClient,
  ctx: GateContext,
  config: ClusterObject[],
  select: { planned: Set<string> } | { probe: true },
): Promise<void> {
  for (const object of config) {
    const ref = refOf(object);
    const recreate =
      "planned" in select ? select.planned.has(describeRef(ref)) : await refusedInPlace(client, object);
    if (recreate && (await client.get(ref)) !== undefined) await deleteForRecreate(client, ctx, ref, false);
  }
}
