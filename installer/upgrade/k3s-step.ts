import { AirlockError, isAirlockError } from "../../registry/oci/index.js";
import type { ClusterClient } from "../cluster/index.js";
import { runCommand, type CommandRunner, type HostRoot, type Systemd } from "../host/index.js";
import {
  installedK3s,
  k3sSkewProblem,
  k3sVersionAt,
  restoreK3s,
  stageK3s,
  swapK3s,
  K3S_BINARY,
  K3S_PREVIOUS,
  K3S_STAGED,
  type K3sVersion,
} from "../k3s/index.js";
import { runGate } from "./gate-run.js";
import type { K3sBinaryChange } from "./plan-k3s.js";
import { runStep } from "./run-context.js";
import { GateFailure, type GateContext } from "./run-types.js";

/**
 * k3s from the new bundle, upgraded before the plane (a run never upgrades the plane alone when
 * the bundle carries another k3s): checked in the pre-gate (the skew rules, on the versions the two
 * binaries print), swapped and restarted in its own step, gated on the node Ready on the new
 * version, and restored by a rollback.
 */

export interface K3sUpgradeOptions {
  host: HostRoot;
  systemd: Systemd;
  /** The new bundle's bin/k3s: a file anywhere (the store's blob of it). */
  binary: string;
  /** Runs `k3s --version`; the real runner by default. */
  run?: CommandRunner | undefined;
  /** How long the restarted node may take to be Ready on its new version. Default 5 minutes. */
  readyTimeoutMs?: number | undefined;
  /** A resumed run whose step `k3s` had finished: not carried out again, only undone by a rollback. */
  stepDone?: boolean | undefined;
}

/** What restoring the kept k3s needs: the host, not a new binary. */
export type K3sRestoreOptions = Omit<K3sUpgradeOptions, "binary" | "stepDone">;

/**
 * The k3s step of a plan whose bundle carries another bin/k3s (plan.k3s), for runUpgrade's `k3s`
 * option: its binary is the store's blob of it. Undefined when the plan does not change k3s.
 */
export function k3sStepFor(
  plan: { k3s?: K3sBinaryChange | undefined },
  blobPath: (digest: `sha256:${string}`) => string,
  host: { host: HostRoot; systemd: Systemd; run?: CommandRunner | undefined },
): K3sUpgradeOptions | undefined {
  return plan.k3s === undefined ? undefined : { ...host, binary: blobPath(`sha256:${plan.k3s.to}`) };
}

/** What the pre-gate found to do: this node's k3s from one version to another. */
export interface K3sChange {
  from: K3sVersion;
  to: K3sVersion;
  nodeName: string;
  unit: string;
  /** A resumed run found the new binary in place already: the service is restarted, not swapped. */
  swapped?: boolean | undefined;
}

const DEFAULT_READY_TIMEOUT_MS = 5 * 60_000;

/**
 * The pre-gate `pre:k3s`: stages the new binary and asks both their versions; undefined when the
 * bundle's k3s is the running one. A skew the rules forbid fails the gate, with nothing staged.
 */
export async function checkK3s(ctx: GateContext, options: K3sUpgradeOptions): Promise<K3sChange | undefined> {
  let change: K3sChange | undefined;
  await runGate(ctx, "pre:k3s", undefined, async () => {
    const { nodeName, unit } = await installedK3s(options.host);
    if (!(await stageK3s(options.host, options.binary))) return "the bundle's k3s is the running one";
    const run = options.run ?? runCommand;
    const [from, to] = [
      await k3sVersionAt(options.host, K3S_BINARY, run),
      await k3sVersionAt(options.host, K3S_STAGED, run),
    ];
    const problem = k3sSkewProblem(from, to);
    if (problem !== undefined) {
      await options.host.remove(K3S_STAGED);
      throw new GateFailure("pre:k3s", undefined, problem);
    }
    change = { from, to, nodeName, unit };
    return `k3s ${from.text} → ${to.text} on ${nodeName}`;
  });
  return change;
}

/**
 * A resumed run's k3s step, read from the host rather than trusted to the record (the process may
 * have died between the swap and the restart): the bundle's binary staged again and not yet swapped
 * in, or in place already with the one it replaced kept. The pre-gate checked the skew before.
 */
export async function k3sOnResume(options: K3sUpgradeOptions): Promise<K3sChange> {
  const { nodeName, unit } = await installedK3s(options.host);
  const run = options.run ?? runCommand;
  const version = (path: string): Promise<K3sVersion> => k3sVersionAt(options.host, path, run);
  if (await stageK3s(options.host, options.binary)) {
    return { from: await version(K3S_BINARY), to: await version(K3S_STAGED), nodeName, unit };
  }
  return { from: await version(K3S_PREVIOUS), to: await version(K3S_BINARY), nodeName, unit, swapped: true };
}

/**
 * Whether a rollback must put the kept k3s back: the upgrade's step `k3s` began and the binary in
 * place is the plan's (or a `rollback k3s` began, which may have stopped before the restart). Reads
 * the host; any binary staged and never swapped in is removed.
 */
export async function keptK3sToRestore(
  steps: readonly { step: string }[],
  plan: { k3s?: K3sBinaryChange | undefined },
  k3s: K3sRestoreOptions | undefined,
): Promise<K3sRestoreOptions | undefined> {
  const began = new Set(steps.map((step) => step.step));
  if (k3s === undefined || plan.k3s === undefined || !began.has("k3s")) return undefined;
  await k3s.host.remove(K3S_STAGED);
  const inPlace = (await k3s.host.sha256(K3S_BINARY)) === plan.k3s.to;
  return inPlace || began.has("rollback k3s") ? k3s : undefined;
}

/** Forgets a staged binary a refused run will not use. */
export async function unstageK3s(options: K3sUpgradeOptions | undefined): Promise<void> {
  await options?.host.remove(K3S_STAGED);
}

/** The step `k3s`: the running binary kept, the new one renamed into place, the service restarted, the node gated. */
export async function upgradeK3s(
  client: ClusterClient,
  ctx: GateContext,
  options: K3sUpgradeOptions,
  change: K3sChange,
): Promise<void> {
  await runStep(ctx, "k3s", async () => {
    await runGate(ctx, "k3s:swap", change.nodeName, async () => {
      if (change.swapped === true) {
        // The process that swapped it may have died before the restart: restarting again is harmless.
        await options.systemd.enableAndStart(change.unit, true);
        return `${K3S_BINARY} was ${change.to.text} already; ${change.unit} restarted`;
      }
      await swapK3s(options.host, options.systemd, change.unit);
      return `${K3S_BINARY} is ${change.to.text}, the one it replaced kept; ${change.unit} restarted`;
    });
    await nodeGate(client, ctx, options, change.nodeName, change.to, "k3s:ready");
  });
}

/**
 * The step `rollback k3s`: the kept binary back, the service restarted, the node Ready on the old
 * version again. A node that does not come back is ROLLBACK_FAILED.
 */
export async function rollbackK3s(
  client: ClusterClient,
  ctx: GateContext,
  options: K3sRestoreOptions,
  change: Pick<K3sChange, "from" | "nodeName" | "unit">,
): Promise<void> {
  await runStep(ctx, "rollback k3s", async () => {
    if (!(await restoreK3s(options.host, options.systemd, change.unit))) {
      throw new AirlockError("ROLLBACK_FAILED", "no k3s binary was kept to roll back to", {
        where: K3S_PREVIOUS,
        hint: "put the previous bundle's bin/k3s back by hand (airlock install --bundle OLD re-installs it)",
      });
    }
    await nodeGate(client, ctx, options, change.nodeName, change.from, "rollback:k3s-ready").catch(
      (error: unknown) => {
        if (!(error instanceof GateFailure)) throw error;
        throw new AirlockError(
          "ROLLBACK_FAILED",
          `k3s did not come back on ${change.from.text}: ${error.message}`,
          {
            where: change.unit,
            hint: "read the service's log (journalctl -u k3s); the previous binary is in place",
          },
        );
      },
    );
  });
}

/**
 * A rollback by hand of a release that came with a k3s upgrade (its run recorded the step `k3s`):
 * the kept binary back, gated on the version it prints.
 */
export async function restoreKeptK3s(
  client: ClusterClient,
  ctx: GateContext,
  options: K3sRestoreOptions,
): Promise<void> {
  const { nodeName, unit } = await installedK3s(options.host);
  const from = await k3sVersionAt(options.host, K3S_PREVIOUS, options.run ?? runCommand);
  await rollbackK3s(client, ctx, options, { from, nodeName, unit });
}

/** The node Ready, its kubelet reporting `version`: the restarted k3s serves, not the one before it. */
async function nodeGate(
  client: ClusterClient,
  ctx: GateContext,
  options: K3sRestoreOptions,
  nodeName: string,
  version: K3sVersion,
  gate: string,
): Promise<void> {
  const timeoutMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
  await runGate(ctx, gate, nodeName, async () => {
    const deadline = ctx.clock.now() + timeoutMs;
    for (;;) {
      ctx.signal?.throwIfAborted();
      const node = await client
        .get({ apiVersion: "v1", kind: "Node", name: nodeName })
        .catch((error: unknown) => {
          // The API server restarts with k3s: not answering for a while is expected.
          if (isAirlockError(error) && error.code.startsWith("CLUSTER_")) return error;
          throw error;
        });
      const status = (node instanceof AirlockError ? undefined : node?.status) as
        | { conditions?: { type: string; status: string }[]; nodeInfo?: { kubeletVersion?: string } }
        | undefined;
      const ready = status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
      const running = status?.nodeInfo?.kubeletVersion;
      if (ready && running === version.text) return `Ready on ${version.text}`;
      const why =
        node instanceof AirlockError
          ? node.message
          : node === undefined
            ? "the node is not registered"
            : `${ready ? "Ready" : "not Ready"}, kubelet ${running ?? "unknown"}`;
      if (ctx.clock.now() >= deadline) {
        throw new Error(`not Ready on ${version.text} within ${Math.round(timeoutMs / 1000)} s: ${why}`);
      }
      await ctx.clock.sleep(ctx.config.pollIntervalMs, ctx.signal);
    }
  });
}
