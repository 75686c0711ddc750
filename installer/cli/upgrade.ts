import type { Command } from "commander";
import { AirlockError } from "../../registry/oci/index.js";
import { openState, type State } from "../state/index.js";
import {
  cancelUpgrade,
  planUpgrade,
  scheduleUpgrade,
  upcomingWindows,
  type ScheduleRequest,
} from "../upgrade/index.js";
import type { DaemonWake } from "../daemon/index.js";
import type { CommandContext, Runner } from "./context.js";
import { emit } from "./output.js";
import { loadDaemon } from "./registry-flags.js";
import { planId, registerRun } from "./upgrade-run.js";
import { historyText, planText, scheduledText, windowsText, type HistoryEntry } from "./upgrade-text.js";

interface PlanFlags {
  bundle?: string[];
  toVersion?: string;
  values?: string;
  allowDowngrade?: boolean;
}

interface ScheduleFlags {
  window: string[];
  freeze: string[];
  at?: string;
  now?: boolean;
  hardDeadline?: boolean;
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

/** Opens the state for a command; with `lock`, as the site's one writer for its duration. */
async function withState<T>(
  context: CommandContext,
  lock: string | undefined,
  fn: (state: State) => T | Promise<T>,
): Promise<T> {
  const state = openState(context.dataDir, { actor: "cli" });
  try {
    if (lock !== undefined) state.lock(lock);
    return await fn(state);
  } finally {
    state.close();
  }
}

/**
 * Wakes the running `airlock serve` (if any) after a schedule change is committed and the writer
 * lock released, so a start due now is not left waiting for its next poll; what to say of it
 * (`absent` when no daemon runs).
 */
async function wakeDaemon(
  context: CommandContext,
  absent: string | undefined,
): Promise<{ daemon: DaemonWake | null; lines: string[] }> {
  const { wakeSiteDaemon } = await loadDaemon();
  const daemon = (await withState(context, undefined, (state) => wakeSiteDaemon(state))) ?? null;
  const line =
    daemon === null
      ? absent
      : daemon.woken
        ? `airlock serve (process ${daemon.pid}) told to look at the schedules now`
        : `airlock serve (process ${daemon.pid}) could not be signalled by this user: it sees the change at its next look (within a minute)`;
  return { daemon, lines: line === undefined ? [] : [line] };
}

function onlyScheduledPlan(state: State): number {
  const active = state.schedules.active();
  if (active.length !== 1) {
    throw new AirlockError(
      "USAGE",
      active.length === 0 ? "no upgrade is scheduled" : `${active.length} plans are scheduled: name one`,
      { hint: "airlock upgrade cancel PLAN (airlock upgrade windows lists them)" },
    );
  }
  return active[0]!.planId;
}

function registerPlan(upgrade: Command, run: Runner): void {
  upgrade
    .command("plan")
    .description("what upgrading to the next bundle changes, object by object; stored as a plan")
    .option("--bundle <file...>", "the next bundle (imported, held to the site's vendor key)")
    // Not --version: the program's own --version (print airlock's) takes that flag everywhere.
    .option("--to-version <version>", "the next version, already imported")
    .option("--values <file>", "operator values for this upgrade, over the installed ones")
    .option("--allow-downgrade", "allow going to an earlier version")
    .action(async (flags: PlanFlags, command: Command) =>
      run(command, async (context) => {
        if ((flags.bundle === undefined) === (flags.toVersion === undefined)) {
          throw new AirlockError(
            "USAGE",
            "name the next release: --bundle FILE or --to-version V, one of them",
          );
        }
        const plan = await planUpgrade({
          dataDir: context.dataDir,
          bundle: flags.bundle,
          version: flags.toVersion,
          values: flags.values,
          allowDowngrade: flags.allowDowngrade,
          signal: context.signal,
          logger: context.logger,
          actor: "cli",
        });
        emit(context.output, plan, () => planText(plan));
      }),
    );
}

function registerSchedule(upgrade: Command, run: Runner): void {
  upgrade
    .command("schedule <plan>")
    .description("when a plan may run: in maintenance windows, at a time, or now")
    .option(
      "--window <spec>",
      'DAYS HH:MM-HH:MM ZONE, e.g. "Sat 02:00-04:00 Europe/Berlin" (repeatable)',
      collect,
      [],
    )
    .option("--freeze <period>", "FROM..TO [ZONE]: no start that would run into it (repeatable)", collect, [])
    .option("--at <time>", "an ISO date-time with an offset or a zone")
    .option("--now", "as soon as possible")
    .option("--hard-deadline", "roll back rather than overrun the window's end")
    .action(async (plan: string, flags: ScheduleFlags, command: Command) =>
      run(command, async (context) => {
        const request: ScheduleRequest = {
          windows: flags.window,
          freezes: flags.freeze,
          at: flags.at,
          now: flags.now === true,
          hardDeadline: flags.hardDeadline === true,
        };
        const id = planId(plan);
        const scheduled = await withState(context, "upgrade schedule", (state) =>
          scheduleUpgrade(state, id, request, new Date()),
        );
        const { daemon, lines } = await wakeDaemon(
          context,
          "airlock serve is not running: nothing starts it until it runs",
        );
        emit(context.output, { ...scheduled, daemon }, () => [scheduledText(scheduled), ...lines].join("\n"));
      }),
    );
}

function registerReaders(upgrade: Command, run: Runner): void {
  upgrade
    .command("windows")
    .description("the next openings of each scheduled upgrade's windows, in UTC and the window's zone")
    .action(async (_flags: unknown, command: Command) =>
      run(command, async (context) => {
        const views = await withState(context, undefined, (state) => upcomingWindows(state, new Date()));
        emit(context.output, views, () => windowsText(views));
      }),
    );
  upgrade
    .command("history")
    .description("each upgrade run: its plan, window, start and end, gates, rollback reason")
    .action(async (_flags: unknown, command: Command) =>
      run(command, async (context) => {
        const entries = await withState(context, undefined, (state) =>
          state.runs.list().map((run): HistoryEntry => {
            const plan = state.plans.get(run.planId);
            const to =
              run.toReleaseId === undefined ? plan.toVersion : state.releases.get(run.toReleaseId).version;
            const from =
              run.fromReleaseId === undefined
                ? plan.fromVersion
                : state.releases.get(run.fromReleaseId).version;
            return { run, from, to };
          }),
        );
        emit(context.output, entries, () => historyText(entries));
      }),
    );
}

export function registerUpgrade(program: Command, run: Runner): void {
  const upgrade = program
    .command("upgrade")
    .description("plan, schedule, run, roll back and review upgrades of the plane");
  registerPlan(upgrade, run);
  registerSchedule(upgrade, run);
  registerRun(upgrade, run);
  registerReaders(upgrade, run);
  upgrade
    .command("cancel [plan]")
    .description("cancel a scheduled upgrade (the only one, when no plan is named)")
    .action(async (plan: string | undefined, _flags: unknown, command: Command) =>
      run(command, async (context) => {
        const result = await withState(context, "upgrade cancel", (state) => {
          const id = plan === undefined ? onlyScheduledPlan(state) : planId(plan);
          return { planId: id, schedule: cancelUpgrade(state, id) ?? null };
        });
        const { daemon, lines } = await wakeDaemon(context, undefined);
        emit(context.output, { ...result, daemon }, () =>
          [`plan ${result.planId} cancelled`, ...lines].join("\n"),
        );
      }),
    );
}
