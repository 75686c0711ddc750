import type { ClusterClient, ClusterObject } from "../cluster/index.js";
import { monitorUrl, podNameOf, podsOf, replicasOf } from "./run-statefulset.js";
import { pollUntil, runGate } from "./gate-run.js";
import { declaredGates } from "./gates-declared.js";
import type { GateContext } from "./run-types.js";

/** The label the StatefulSet controller puts on each pod: the revision it was made from. */
const REVISION_LABEL = "controller-revision-hash";

interface PodShape {
  status?: {
    conditions?: { type: string; status: string; message?: string }[];
    containerStatuses?: { state?: { waiting?: { reason?: string; message?: string } } }[];
  };
}

function isReady(pod: ClusterObject): boolean {
  const conditions = (pod as ClusterObject & PodShape).status?.conditions ?? [];
  return conditions.some((condition) => condition.type === "Ready" && condition.status === "True");
}

/** Why a pod is not Ready: a waiting container's reason, else the Ready condition's message. */
function notReadyReason(pod: ClusterObject): string {
  const { status } = pod as ClusterObject & PodShape;
  const waiting = (status?.containerStatuses ?? []).flatMap((container) => container.state?.waiting ?? []);
  if (waiting[0]?.reason !== undefined) {
    return `${waiting[0].reason}${waiting[0].message === undefined ? "" : ` (${waiting[0].message})`}`;
  }
  const ready = (status?.conditions ?? []).find((condition) => condition.type === "Ready");
  return ready?.message ?? "not Ready";
}

/** The pod once it is Ready on `revision` and not terminating. */
async function readyOnRevision(
  client: ClusterClient,
  ctx: GateContext,
  statefulSet: ClusterObject,
  name: string,
  revision: string,
): Promise<ClusterObject> {
  return pollUntil(ctx, ctx.config.podReadyTimeoutMs, async () => {
    const pod = await client.get({
      apiVersion: "v1",
      kind: "Pod",
      name,
      namespace: statefulSet.metadata.namespace,
    });
    if (pod === undefined) return { done: false, why: "the pod does not exist" };
    const on = pod.metadata.labels?.[REVISION_LABEL];
    if (on !== revision || pod.metadata.deletionTimestamp !== undefined) {
      return { done: false, why: `the pod is on revision ${on ?? "none"}, not ${revision}` };
    }
    return isReady(pod) ? { done: true, value: pod } : { done: false, why: notReadyReason(pod) };
  });
}

async function getJson(ctx: GateContext, url: string): Promise<{ status: number; json?: unknown }> {
  const answer = await ctx.probe(url, ctx.signal ?? new AbortController().signal);
  try {
    return { status: answer.status, json: JSON.parse(answer.body) as unknown };
  } catch {
    return { status: answer.status };
  }
}

/** `/healthz` answers 200 on K polls in a row. */
async function healthy(ctx: GateContext, statefulSet: ClusterObject, pod: ClusterObject): Promise<string> {
  const url = monitorUrl(statefulSet, pod, "/healthz");
  let inARow = 0;
  await pollUntil(ctx, ctx.config.brokerTimeoutMs, async () => {
    const answer = await ctx
      .probe(url, ctx.signal ?? new AbortController().signal)
      .catch((error: Error) => error);
    if (answer instanceof Error || answer.status !== 200) {
      inARow = 0;
      return {
        done: false,
        why: answer instanceof Error ? answer.message : `/healthz answered ${answer.status}`,
      };
    }
    inARow += 1;
    return inARow >= ctx.config.healthyPolls
      ? { done: true, value: undefined }
      : { done: false, why: `/healthz 200 ${inARow} of ${ctx.config.healthyPolls} times in a row` };
  });
  return `/healthz 200 on ${ctx.config.healthyPolls} polls in a row`;
}

interface Varz {
  server_id?: string;
  server_name?: string;
}
interface Routez {
  routes?: { remote_id?: string; remote_name?: string }[] | null;
}

/** The pod's `/routez` has a route to every other replica, each known by its `/varz` server_name (= pod name). */
async function clustered(
  client: ClusterClient,
  ctx: GateContext,
  statefulSet: ClusterObject,
  pod: ClusterObject,
): Promise<string> {
  const others = Array.from({ length: replicasOf(statefulSet) }, (_, ordinal) =>
    podNameOf(statefulSet, ordinal),
  ).filter((name) => name !== pod.metadata.name);
  await pollUntil(ctx, ctx.config.brokerTimeoutMs, async () => {
    const pods = new Map((await podsOf(client, statefulSet)).map((found) => [found.metadata.name, found]));
    const routez = await getJson(ctx, monitorUrl(statefulSet, pod, "/routez")).catch(() => undefined);
    const routes = (routez?.json as Routez | undefined)?.routes ?? [];
    for (const name of others) {
      const other = pods.get(name);
      if (other === undefined) return { done: false, why: `${name} does not exist` };
      const varz = (await getJson(ctx, monitorUrl(statefulSet, other, "/varz")).catch(() => undefined))
        ?.json as Varz | undefined;
      if (varz?.server_name !== name) {
        return { done: false, why: `${name}'s broker answers as ${varz?.server_name ?? "nothing"}` };
      }
      if (!routes.some((route) => route.remote_name === name || route.remote_id === varz.server_id)) {
        return { done: false, why: `/routez lists no route to ${name}` };
      }
    }
    return { done: true, value: undefined };
  });
  return others.length === 0 ? "no other replica" : `routes to ${others.join(", ")}`;
}

/** After a pod moved to `revision`: Ready on it, healthy, clustered, the declared probes, then the settle delay. */
export async function podGates(
  client: ClusterClient,
  ctx: GateContext,
  statefulSet: ClusterObject,
  name: string,
  revision: string,
): Promise<void> {
  let pod: ClusterObject | undefined;
  await runGate(ctx, "ready", name, async () => {
    pod = await readyOnRevision(client, ctx, statefulSet, name, revision);
    return `Ready on ${revision}`;
  });
  await runGate(ctx, "healthz", name, () => healthy(ctx, statefulSet, pod!));
  await runGate(ctx, "routez", name, () => clustered(client, ctx, statefulSet, pod!));
  await declaredGates(client, ctx, statefulSet, name);
  await runGate(ctx, "settle", name, async () => {
    await ctx.clock.sleep(ctx.config.settleMs, ctx.signal);
    return `settled ${ctx.config.settleMs} ms`;
  });
}

/** Every replica on `revision`, Ready, healthy and clustered; then the declared probes. */
export async function planeGates(
  client: ClusterClient,
  ctx: GateContext,
  statefulSet: ClusterObject,
  revision: string,
  prefix: string,
): Promise<void> {
  for (let ordinal = 0; ordinal < replicasOf(statefulSet); ordinal++) {
    const name = podNameOf(statefulSet, ordinal);
    let pod: ClusterObject | undefined;
    await runGate(ctx, `${prefix}ready`, name, async () => {
      pod = await readyOnRevision(client, ctx, statefulSet, name, revision);
      return `Ready on ${revision}`;
    });
    await runGate(ctx, `${prefix}healthz`, name, () => healthy(ctx, statefulSet, pod!));
    await runGate(ctx, `${prefix}routez`, name, () => clustered(client, ctx, statefulSet, pod!));
  }
  await declaredGates(client, ctx, statefulSet, undefined);
}
