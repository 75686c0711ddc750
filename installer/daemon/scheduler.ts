import { AirlockError, type Logger } from "../../registry/oci/index.js";
import type { WriterLock } from "../state/index.js";

/**
 * What the scheduler does, as the upgrade library offers it. Each action runs while the scheduler
 * holds the site's writer lock and stops at its next recorded safe point when its signal aborts.
 */
export interface UpgradeActions {
  /** Finishes or undoes a run a stop or a crash interrupted; what it did, for the log. */
  resumeInterrupted(signal: AbortSignal): Promise<string | undefined>;
  /** When the next scheduled upgrade may start (at or before `now` when one is due), if any. */
  nextDueAt(now: Date): Date | undefined;
  /** Starts the upgrade due at `now`, if any, and runs it to its end; what it did, for the log. */
  startDue(now: Date, signal: AbortSignal): Promise<string | undefined>;
}

export type SchedulerState = "starting" | "waiting" | "running" | "stopped" | "failed";

export interface SchedulerStatus {
  state: SchedulerState;
  /** The next start the scheduler waits for, ISO; absent when nothing is scheduled. */
  nextDueAt?: string;
  /** What the last action did or why it failed. */
  last?: string;
}

export interface SchedulerOptions {
  actions: UpgradeActions;
  /** Takes the site's writer lock (`LOCK_HELD` when another process has it). */
  lock: () => WriterLock;
  clock: () => Date;
  logger: Logger;
  /** The longest wait between looks, so a schedule another process writes is seen. Default 60 s. */
  maxWaitMs?: number;
  /** The wait before trying again when another process holds the writer lock. Default 5 s. */
  lockRetryMs?: number;
}

const DEFAULT_MAX_WAIT_MS = 60_000;
const DEFAULT_LOCK_RETRY_MS = 5_000;
/** An action that leaves the same upgrade due (refused, or it cannot fit) is not retried in a spin. */
const MIN_WAIT_MS = 1_000;
/** After a failed action, the wait before the next try. */
const FAILURE_RETRY_MS = 30_000;

type ActionOutcome = "done" | "failed" | "lock-held" | "aborted";

/**
 * The daemon's scheduler: on start it resumes a run a stop or crash interrupted, then loops — waits
 * until the next upgrade is due (capped, and cut short by `wake()`), starts it under the writer lock,
 * and looks again. `stop()` aborts a run in flight at its next safe point, for the next start to resume.
 */
export class Scheduler {
  private current: SchedulerStatus = { state: "starting" };
  private readonly stopping = new AbortController();
  private running: AbortController | undefined;
  /** Actions started by runAside, until each ends. */
  private readonly aside = new Map<AbortController, Promise<void>>();
  private woken: (() => void) | undefined;
  private wakeRequested = false;
  private loop: Promise<void> | undefined;
  /** The due time last logged: each is logged once, not at every look. */
  private loggedDue: string | undefined;

  constructor(private readonly options: SchedulerOptions) {}

  start(): void {
    this.loop ??= this.run().catch((error: unknown) => {
      this.current = { state: "failed", last: String(error) };
      this.options.logger.error({ err: error }, "scheduler: stopped by a failure; restart airlock serve");
    });
  }

  status(): SchedulerStatus {
    return { ...this.current };
  }

  /** Looks for a due upgrade now rather than at the end of the current wait. */
  wake(): void {
    this.wakeRequested = true;
    this.woken?.();
  }

  /**
   * Starts an action asked for from outside the loop (the console's rollback) under the writer lock,
   * failing at once with LOCK_HELD while the scheduler or another process acts. `start` begins it
   * and says what to answer (a run's id) as soon as that is recorded; the action goes on after
   * that, and stop() aborts it as it does a run.
   */
  async runAside<T>(
    what: string,
    start: (signal: AbortSignal) => { value: T | undefined; done: Promise<string | undefined> },
  ): Promise<T> {
    const { logger } = this.options;
    const lock = this.options.lock();
    const controller = new AbortController();
    let started: ReturnType<typeof start>;
    try {
      started = start(controller.signal);
    } catch (error) {
      lock.release();
      throw error;
    }
    const finished = started.done
      .then(
        (result) => logger.info({}, `scheduler: ${what}: ${result ?? "done"}`),
        (error: unknown) => logger.error({ err: error }, `scheduler: ${what} failed: ${String(error)}`),
      )
      .finally(() => {
        lock.release();
        this.aside.delete(controller);
        this.wake();
      });
    this.aside.set(controller, finished);
    if (started.value !== undefined) return started.value;
    await started.done;
    throw new AirlockError("INTERNAL", `${what} ended without recording a run`);
  }

  /** Aborts a run in flight (it stops at a recorded safe point) and waits for the loop to end. */
  async stop(): Promise<void> {
    this.stopping.abort();
    const reason = new AirlockError("INTERRUPTED", "airlock serve is stopping");
    this.running?.abort(reason);
    for (const controller of this.aside.keys()) controller.abort(reason);
    this.woken?.();
    await Promise.all([this.loop, ...this.aside.values()]);
    this.current = { ...this.current, state: "stopped" };
  }

  private async run(): Promise<void> {
    const { actions } = this.options;
    let resumed = false;
    while (!this.stopping.signal.aborted) {
      let outcome: ActionOutcome | undefined;
      let started = false;
      if (!resumed) {
        outcome = await this.act("resume", (signal) => actions.resumeInterrupted(signal));
        resumed = outcome !== "lock-held";
      } else {
        const now = this.options.clock();
        const due = actions.nextDueAt(now);
        if (due !== undefined && due.getTime() <= now.getTime()) {
          outcome = await this.act("start", (signal) => actions.startDue(now, signal));
          started = outcome !== "lock-held";
        }
      }
      if (this.stopping.signal.aborted) return;
      await this.waitForNext(outcome, started);
    }
  }

  /** Runs one action under the writer lock; another holder means "try again soon", not a failure. */
  private async act(
    what: "resume" | "start",
    action: (signal: AbortSignal) => Promise<string | undefined>,
  ): Promise<ActionOutcome> {
    const { logger } = this.options;
    let lock: WriterLock;
    try {
      lock = this.options.lock();
    } catch (error) {
      if (!(error instanceof AirlockError) || error.code !== "LOCK_HELD") throw error;
      this.current = { state: "waiting", last: error.message };
      logger.info({}, `scheduler: cannot ${what} yet: ${error.message}`);
      return "lock-held";
    }
    const controller = new AbortController();
    this.running = controller;
    this.current = { state: "running" };
    try {
      const result = await action(controller.signal);
      this.current = { state: "waiting", last: result ?? `${what}: nothing to do` };
      if (result === undefined) logger.debug({}, `scheduler: ${what}: nothing to do`);
      else logger.info({}, `scheduler: ${result}`);
      return "done";
    } catch (error) {
      if (controller.signal.aborted) {
        this.current = { state: "waiting", last: "run left at a safe point; the next start resumes it" };
        logger.info({}, "scheduler: run stopped at a recorded safe point; the next start resumes it");
        return "aborted";
      }
      const reason = error instanceof AirlockError ? `${error.code}: ${error.message}` : String(error);
      this.current = { state: "waiting", last: `${what} failed: ${reason}` };
      logger.error({ err: error }, `scheduler: ${what} failed: ${reason}`);
      return "failed";
    } finally {
      this.running = undefined;
      lock.release();
    }
  }

  private waitMs(outcome: ActionOutcome | undefined, started: boolean): number {
    const maxWait = this.options.maxWaitMs ?? DEFAULT_MAX_WAIT_MS;
    if (outcome === "lock-held") return Math.min(maxWait, this.options.lockRetryMs ?? DEFAULT_LOCK_RETRY_MS);
    const now = this.options.clock();
    const due = this.options.actions.nextDueAt(now);
    this.current = { ...this.current, nextDueAt: due?.toISOString() };
    if (due === undefined) {
      if (this.loggedDue !== "none") this.options.logger.info({}, "scheduler: no upgrade scheduled");
      this.loggedDue = "none";
      return maxWait;
    }
    const until = due.getTime() - now.getTime();
    if (this.loggedDue !== due.toISOString()) {
      this.loggedDue = due.toISOString();
      this.options.logger.info({ dueAt: this.loggedDue }, `scheduler: next upgrade due at ${this.loggedDue}`);
    }
    // Just acted and a start is still due: it failed (the cluster away?), was refused or did not
    // fit; look again in a while, not in a spin.
    const floor = outcome === "failed" ? FAILURE_RETRY_MS : started ? MIN_WAIT_MS : 0;
    return Math.min(maxWait, Math.max(floor, until));
  }

  /** Waits for the next look: a timer, cut short by wake() or stop(). */
  private async waitForNext(outcome: ActionOutcome | undefined, started: boolean): Promise<void> {
    const ms = this.waitMs(outcome, started);
    if (this.current.state !== "failed") this.current = { ...this.current, state: "waiting" };
    if (this.wakeRequested) {
      this.wakeRequested = false;
      return;
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.woken = done;
    });
    this.woken = undefined;
    this.wakeRequested = false;
  }
}
