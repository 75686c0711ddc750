import type { Command } from "commander";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { AirlockError } from "../../registry/oci/index.js";
import { openState, STATE_FILE, type State } from "../state/index.js";
import {
  DEFAULT_GATES,
  executePlan,
  resumeInterruptedRun,
  rollbackLastRelease,
  type ResumeReport,
  type RunReport,
  type GateConfig,
  type UpgradeDeps,
} from "../upgrade/index.js";
import { withStore, type CommandContext, type Runner } from "./context.js";
import { emit, parseDuration } from "./output.js";
import { progressLine, reportText } from "./upgrade-text.js";

export function planId(text: string): number {
  if (!/^[1-9]\d*$/.test(text)) {
    throw new AirlockError("USAGE", `${JSON.stringify(text)} is not a plan id`, {
      hint: "a plan id is the number `airlock upgrade plan` printed",
    });
  }
  return Number(text);
}

/**
 * The state as the site's one writer (LOCK_HELD naming the holder's PID otherwise), with the run's
 * deps: the install's cluster and registry, a line per step and gate on stderr. A data dir with no
 * state is NOT_INSTALLED, and is left as it was.
 */
async function asWriter<T>(
  context: CommandContext,
  command: string,
  gates: Partial<GateConfig>,
  fn: (deps: UpgradeDeps) => Promise<T>,
): Promise<T> {
  const dataDir = resolve(context.dataDir);
  if (!existsSync(join(dataDir, STATE_FILE))) {
    throw new AirlockError("NOT_INSTALLED", `nothing is installed in ${dataDir}`, {
      where: dataDir,
      hint: "install with `airlock install --bundle FILE`, or pass the --data-dir of an installed site",
    });
  }
  const state: State = openState(dataDir, { actor: "cli" });
  try {
    state.lock(command);
    const quiet = context.output.json || !context.output.progress;
    return await withStore(context, (store) =>
      fn({
        state,
        gates,
        signal: context.signal,
        blobPath: (digest) => store.blobs.path(digest),
        onProgress: quiet ? undefined : (progress) => process.stderr.write(`${progressLine(progress)}\n`),
      }),
    );
  } finally {
    state.close();
  }
}

interface RunResult extends RunReport {
  /** The interrupted run this command took up first, when there was one. */
  resumed: ResumeReport | null;
}

/**
 * Prints the result; then, for `upgrade run`, exit 1 (the one JSON document already out) when the
 * plane went back or the pre-gate refused.
 */
function finish(
  context: CommandContext,
  result: RunResult | { resumed: null; status: string },
  failUnlessUpgraded: boolean,
): void {
  emit(context.output, result, () => ("run" in result ? reportText(result, result.resumed) : result.status));
  if (
    failUnlessUpgraded &&
    "run" in result &&
    (result.outcome === "rolled-back" || result.outcome === "refused")
  ) {
    context.output.json = false;
    throw new AirlockError(
      result.outcome === "rolled-back" ? "UPGRADE_ROLLED_BACK" : "UPGRADE_REFUSED",
      `upgrade run ${result.run.id}: ${result.status}`,
      {
        where: `run/${result.run.id}`,
        hint:
          result.outcome === "rolled-back"
            ? "the plane is back on the previous release; `airlock upgrade history` shows every gate"
            : "nothing was changed: fix what the pre-gate names, then run the plan again",
      },
    );
  }
}

/** The gate timings a command that runs upgrades takes: `upgrade run`, `upgrade rollback`, `serve`. */
export interface GateFlags {
  podTimeout: string;
  settle: string;
}

interface RunFlags extends GateFlags {
  resume?: boolean;
}

export function gatesOf(flags: GateFlags): Partial<GateConfig> {
  return {
    podReadyTimeoutMs: parseDuration(flags.podTimeout, "--pod-timeout", "5m"),
    settleMs: parseDuration(flags.settle, "--settle", "10s", true),
  };
}

const asFlag = (ms: number): string => `${ms / 1000}s`;

/** `--pod-timeout` and `--settle`, defaulting to the upgrade library's gates. */
export function addGateOptions(command: Command): Command {
  return command
    .option(
      "--pod-timeout <duration>",
      "how long each pod may take to be Ready on its revision",
      asFlag(DEFAULT_GATES.podReadyTimeoutMs),
    )
    .option(
      "--settle <duration>",
      "the wait after a pod's gates pass, before the next pod",
      asFlag(DEFAULT_GATES.settleMs),
    );
}

export function registerRun(upgrade: Command, run: Runner): void {
  addGateOptions(
    upgrade
      .command("run [plan]")
      .description("run a plan now, in the foreground: one pod at a time, gated, rolled back if a gate fails")
      .option("--resume", "finish or roll back a run an airlock that died left behind"),
  ).action(async (plan: string | undefined, flags: RunFlags, command: Command) =>
    run(command, async (context) => {
      const id = plan === undefined ? undefined : planId(plan);
      if (id === undefined && flags.resume !== true) {
        throw new AirlockError("USAGE", "name the plan to run, or --resume", {
          hint: "airlock upgrade run PLAN (the id `airlock upgrade plan` printed), or airlock upgrade run --resume",
        });
      }
      const result = await asWriter(context, "upgrade run", gatesOf(flags), async (deps) => {
        const resumed = (await resumeInterruptedRun(deps)) ?? null;
        // The same plan re-run after a crash: the resume finished (or undid) it.
        if (
          resumed !== null &&
          (id === undefined || (resumed.run.planId === id && resumed.outcome !== "abandoned"))
        ) {
          return { ...resumed, resumed };
        }
        if (id === undefined) return { resumed: null, status: "no interrupted upgrade run to resume" };
        return { ...(await executePlan(deps, id)), resumed };
      });
      finish(context, result, true);
    }),
  );
  addGateOptions(
    upgrade
      .command("rollback")
      .description("put back the release the deployed one replaced (objects only: data is not rolled back)"),
  ).action(async (flags: RunFlags, command: Command) =>
    run(command, async (context) => {
      const result = await asWriter(context, "upgrade rollback", gatesOf(flags), async (deps) => {
        const resumed = (await resumeInterruptedRun(deps)) ?? null;
        // An interrupted run that went back already did what was asked.
        if (resumed?.outcome === "rolled-back") return { ...resumed, resumed };
        return { ...(await rollbackLastRelease(deps)), resumed };
      });
      finish(context, result, false);
    }),
  );
}
