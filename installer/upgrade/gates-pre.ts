import { X509Certificate } from "node:crypto";
import { refOf, rolledOut, type ClusterClient, type ClusterObject } from "../cluster/index.js";
import { runGate } from "./gate-run.js";
import { podsOf, replicasOf } from "./run-statefulset.js";
import type { GateContext, UpgradeOptions } from "./run-types.js";

const DAY_MS = 86_400_000;
const WORKLOAD_KINDS = new Set(["StatefulSet", "Deployment", "DaemonSet", "Job"]);

/** Every container image the objects' pod templates name. */
export function imagesOf(objects: ClusterObject[]): string[] {
  const images = objects
    .filter((object) => WORKLOAD_KINDS.has(object.kind))
    .flatMap((object) => {
      const pod = (object.spec as { template?: { spec?: Record<string, unknown> } }).template?.spec ?? {};
      return ["initContainers", "containers"].flatMap(
        (field) => (pod[field] as { image: string }[] | undefined)?.map((container) => container.image) ?? [],
      );
    });
  return [...new Set(images)];
}

/** The first certificate of each PEM in the objects' Secrets that ends before `minDays` from `now`. */
function certificateProblem(objects: ClusterObject[], minDays: number, now: number): string | undefined {
  for (const secret of objects.filter((object) => object.kind === "Secret")) {
    const data = (secret.data ?? {}) as Record<string, string>;
    for (const key of ["tls.crt", "ca.crt"]) {
      if (data[key] === undefined) continue;
      const certificate = new X509Certificate(Buffer.from(data[key], "base64"));
      const endsAt = Date.parse(certificate.validTo);
      if (endsAt - now < minDays * DAY_MS) {
        const days = Math.floor((endsAt - now) / DAY_MS);
        return `${secret.metadata.name}/${key} (${certificate.subject.replaceAll("\n", ", ")}) expires ${certificate.validTo}, in ${days} days: fewer than ${minDays}`;
      }
    }
  }
  return undefined;
}

/** The plane is healthy now: its StatefulSet rolled out, every pod Ready. */
async function planeHealthy(client: ClusterClient, statefulSet: ClusterObject): Promise<string> {
  const current = await client.get(refOf(statefulSet));
  if (current === undefined) throw new Error(`${statefulSet.metadata.name} is not deployed`);
  if (!rolledOut(current))
    throw new Error(
      `${statefulSet.metadata.name} has not rolled out: ${JSON.stringify(current.status ?? {})}`,
    );
  const pods = await podsOf(client, current);
  const ready = pods.filter((pod) =>
    ((pod.status?.conditions ?? []) as { type: string; status: string }[]).some(
      (condition) => condition.type === "Ready" && condition.status === "True",
    ),
  );
  if (ready.length !== replicasOf(current)) {
    throw new Error(`${ready.length} of ${replicasOf(current)} pods Ready`);
  }
  return `${ready.length} of ${ready.length} pods Ready, rolled out`;
}

/**
 * Before anything changes: the plane healthy, the new release's certificates valid long enough,
 * every new image in the registry, disk headroom. Throws GateFailure at the first that fails.
 */
export async function preGates(
  client: ClusterClient,
  ctx: GateContext,
  options: UpgradeOptions,
  statefulSet: ClusterObject,
): Promise<void> {
  await runGate(ctx, "pre:plane", undefined, () => planeHealthy(client, statefulSet));
  await runGate(ctx, "pre:certificates", undefined, async () => {
    const minDays = ctx.config.certificateMinDays;
    const problem =
      options.certificatesValid === undefined
        ? certificateProblem(options.next, minDays, ctx.clock.now())
        : await options.certificatesValid(minDays);
    if (problem !== undefined) throw new Error(problem);
    return `valid for at least ${minDays} days`;
  });
  await runGate(ctx, "pre:images", undefined, async () => {
    const images = imagesOf(options.next);
    for (const image of images) {
      if (!(await options.imageAvailable(image))) throw new Error(`the registry has no ${image}`);
    }
    return `${images.length} images in the registry`;
  });
  if (options.diskHeadroom !== undefined) {
    const check = options.diskHeadroom;
    await runGate(ctx, "pre:disk", undefined, async () => {
      const problem = await check();
      if (problem !== undefined) throw new Error(problem);
      return "disk headroom";
    });
  }
}
