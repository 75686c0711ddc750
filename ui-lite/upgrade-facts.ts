import {
  openState,
  type Release,
  type State,
  type UpgradePlanRecord,
  type UpgradePlanSummary,
} from "../installer/state/index.js";
import { planInputsDigest, releasesToSwap } from "../installer/upgrade/index.js";
import { AirlockError } from "../registry/oci/index.js";
import type { ConsoleContext } from "./context.js";
import { badParameter } from "./params.js";

/** A plan id or run id from the path: digits only, so no other text (`..`, `/`) reaches a lookup. */
export function pathId(value: unknown, what: string): number {
  if (typeof value !== "string" || !/^[1-9][0-9]{0,11}$/.test(value)) {
    throw badParameter(what, value, "a whole number of 1 or more");
  }
  return Number(value);
}

/**
 * Whether a plan can no longer run as computed: marked stale, or (while it waits to run) the installed
 * release or the values differ from what it was computed from — the check `loadPlanForRun` makes,
 * made here without marking anything.
 */
export function planIsStale(record: UpgradePlanRecord, release: Release | undefined): boolean {
  if (record.status === "stale") return true;
  if (record.status !== "planned" && record.status !== "scheduled") return false;
  return (
    release === undefined ||
    planInputsDigest(release, record.toBundleDigest, record.valuesGiven) !== record.inputsDigest
  );
}

/** Verdicts of planIsStale per state, by plan and release: both are immutable once written, so is it. */
const verdicts = new WeakMap<State, Map<string, boolean>>();
const VERDICTS_KEPT = 1_000;

/** planIsStale for the pages, each verdict computed once (it digests the release's objects). */
export function planShownStale(
  state: State,
  plan: UpgradePlanSummary,
  release: Release | undefined,
): boolean {
  if (plan.status !== "planned" && plan.status !== "scheduled") return plan.status === "stale";
  if (release === undefined) return true;
  const known = verdicts.get(state) ?? new Map<string, boolean>();
  verdicts.set(state, known);
  const key = `${plan.id}/${release.id}`;
  let verdict = known.get(key);
  if (verdict === undefined) {
    verdict = planIsStale(state.plans.get(plan.id), release);
    if (known.size >= VERDICTS_KEPT) known.clear();
    known.set(key, verdict);
  }
  return verdict;
}

export function staleError(record: UpgradePlanRecord): AirlockError {
  return new AirlockError(
    "PLAN_STALE",
    `plan ${record.id} was computed for release ${record.fromReleaseId} (${record.fromVersion}), and the installed release has changed since`,
    { where: `plan/${record.id}`, hint: `re-plan: make a new plan for ${record.toVersion}` },
  );
}

/** What a rollback swaps (releasesToSwap, as `airlock upgrade rollback`), or why there is nothing to. */
export function rollbackChoice(state: State): { current: Release; previous: Release } | AirlockError {
  try {
    return releasesToSwap(state);
  } catch (error) {
    if (error instanceof AirlockError) return error;
    throw error;
  }
}

/** The versions a new plan may go to: the installed bundle's other imported versions, newest import first. */
export function plannableVersions(context: ConsoleContext, release: Release | undefined): string[] {
  if (release === undefined) return [];
  const versions = context.store
    .listBundleSummaries()
    .filter((bundle) => bundle.name === release.bundleName && bundle.version !== release.version)
    .map((bundle) => bundle.version)
    .reverse();
  return [...new Set(versions)];
}

/**
 * Runs `fn` on a state opened as the console user (so the events name them) and holding the site's
 * writer lock, as the CLI's schedule and cancel do.
 */
export function asActor<T>(
  context: ConsoleContext,
  actor: string,
  command: string,
  fn: (state: State) => T,
): T {
  const state = openState(context.dataDir, { actor, clock: context.clock });
  try {
    state.lock(command);
    return fn(state);
  } finally {
    state.close();
  }
}

/** Refuses what only the site daemon does (run now, roll back) when the console runs without it. */
export function requireDaemon(context: ConsoleContext): NonNullable<ConsoleContext["upgrades"]> {
  if (context.upgrades === undefined) {
    throw new AirlockError(
      "UI_DAEMON_REQUIRED",
      "this console runs without the site daemon, which runs upgrades",
      {
        hint: "run `airlock serve`: its console runs upgrades now and rolls them back",
      },
    );
  }
  return context.upgrades;
}
