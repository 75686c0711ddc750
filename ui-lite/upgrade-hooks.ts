/**
 * What the console asks of the process that hosts it to act on upgrades. `airlock serve` supplies
 * it (its scheduler runs upgrades, holding the writer lock); a console hosted without it still shows
 * plans, schedules and runs, and says that running and rolling back need the site daemon.
 */
export interface ConsoleUpgradeHooks {
  /** A schedule changed (`--now` among them): look for a due upgrade at once, not at the next tick. */
  wake(): void;
  /** Starts rolling the plane back to the previous release; resolves with the run's id once recorded. */
  rollback(actor: string): Promise<{ runId: number }>;
}
