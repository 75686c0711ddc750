import type { Command } from "commander";
import { AirlockError, formatBytes } from "../../registry/oci/index.js";
import { readSiteStatus, type PodHealth, type SiteStatus } from "../install/index.js";
import { emit } from "./output.js";
import type { Runner } from "./context.js";

function routesText(routes: PodHealth["routes"]): string {
  if (!routes.reachable) return `routes unknown (${routes.detail})`;
  return routes.peers.length === 0 ? "routes to none" : `routes to ${routes.peers.join(", ")}`;
}

function renderStatus(status: SiteStatus): string {
  const lines = [`${status.healthy ? "healthy" : "NOT HEALTHY"}: ${status.dataDir}`];
  const { release, plane, registry } = status;
  lines.push(
    release === null
      ? "release      none deployed"
      : `release      ${release.id}: ${release.bundle} ${release.version} (bundle ${release.digest.slice(0, 19)}…), since ${release.deployedAt}`,
  );
  if (plane !== null) {
    const broker = plane.msgbroker;
    lines.push(
      !plane.reachable
        ? `cluster      not answering (${plane.kubeconfig})`
        : broker === null
          ? "msgbroker    not in the cluster"
          : `msgbroker    ${broker.ready}/${broker.desired} ready, revision ${broker.currentRevision}${broker.currentRevision === broker.updateRevision ? "" : ` → ${broker.updateRevision}`}`,
    );
    for (const pod of plane.pods) {
      lines.push(
        `  ${pod.name.padEnd(14)} ${pod.ready ? "ready" : (pod.waiting ?? pod.phase)}, ${pod.restarts} restarts, ${routesText(pod.routes)}`,
      );
    }
  }
  if (registry !== null) {
    const repositories =
      registry.repositories === null ? "" : `, ${registry.repositories.length} repositories`;
    lines.push(
      `registry     ${registry.url}: ${registry.answering ? "answers" : "DOWN"} (${registry.detail})${repositories}`,
    );
  }
  lines.push(
    `disk         ${formatBytes(status.disk.freeBytes)} free of ${formatBytes(status.disk.totalBytes)} (data dir)`,
  );
  for (const certificate of status.certificates) {
    lines.push(
      `certificate  ${certificate.name.padEnd(16)} ${certificate.status}, ${certificate.daysLeft} days left`,
    );
  }
  if (status.upgrade !== null) {
    const { upgrade } = status;
    lines.push(
      `upgrade      run ${upgrade.run} (${upgrade.kind}, plan ${upgrade.plan}) ${upgrade.runningIn === null ? "INTERRUPTED" : `running in process ${upgrade.runningIn}`} at ${upgrade.step ?? "its start"}${upgrade.partition === null ? "" : `, partition ${upgrade.partition}`}`,
    );
    if (upgrade.runningIn === null) lines.push(`  next: ${upgrade.next.action}: ${upgrade.next.why}`);
  }
  if (status.events.length > 0) lines.push("last events:");
  for (const event of status.events) {
    lines.push(`  ${event.time}  ${event.action.padEnd(14)} ${event.object} ${event.outcome}`);
  }
  for (const problem of status.problems) lines.push(`problem: ${problem}`);
  return lines.join("\n");
}

export function registerStatus(program: Command, run: Runner): void {
  program
    .command("status")
    .description("the installed release and whether the site is healthy; exit 0 only when it is")
    .action(async (_flags: unknown, command: Command) =>
      run(command, async (context) => {
        const status = await readSiteStatus({ dataDir: context.dataDir });
        emit(context.output, status, () => renderStatus(status));
        if (!status.healthy) {
          // The status is the one JSON document on stdout: the verdict goes to stderr only.
          context.output.json = false;
          throw new AirlockError("SITE_UNHEALTHY", `the site is not healthy: ${status.problems.join("; ")}`, {
            where: context.dataDir,
            hint: "see each problem above; `airlock install` again finishes an install that stopped",
          });
        }
      }),
    );
}
