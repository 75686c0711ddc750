import { AirlockError } from "../registry/oci/index.js";

/**
 * An import following an upload gives up when no byte arrived for this long, releasing the store's
 * writer lock: an upload left behind holds it no longer. Chunks follow each other within milliseconds;
 * after a dropped connection the next follower finds the blobs this one stored (hashed, not rewritten).
 */
export const FOLLOW_STALL_MS = 3_000;

/** A follower waiting this long for a byte gives way to another upload whose bytes are arriving. */
export const GIVE_WAY_IDLE_MS = 500;

function stalled(message: string): AirlockError {
  return new AirlockError("UI_UPLOAD_STALLED", message, {
    hint: "the upload resumes from the console's offset and is imported once complete",
  });
}

interface Waiter {
  end: number;
  resolve: () => void;
  reject: (error: Error) => void;
}

/**
 * How far an upload's partial file is written, for the import that reads it as it arrives: `ready(end)`
 * resolves once the first `end` bytes are written. A wait that sees no byte for FOLLOW_STALL_MS, or
 * `stop()`, rejects, which ends that import; the upload itself goes on, and is imported once complete.
 */
export class ArrivalGate {
  private waiters: Waiter[] = [];
  private timer: NodeJS.Timeout | undefined;
  private stopped: Error | undefined;
  private advancedAt = Date.now();

  constructor(
    private written: number,
    private readonly stallMs: number = FOLLOW_STALL_MS,
  ) {}

  /** The partial file now holds `length` bytes. */
  advance(length: number): void {
    if (length <= this.written) return;
    this.written = length;
    this.advancedAt = Date.now();
    const due = this.waiters.filter((waiter) => waiter.end <= length);
    this.waiters = this.waiters.filter((waiter) => waiter.end > length);
    for (const waiter of due) waiter.resolve();
    this.rearm();
  }

  ready(end: number): Promise<void> {
    if (this.stopped !== undefined) return Promise.reject(this.stopped);
    if (end <= this.written) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.waiters.push({ end, resolve, reject });
      this.rearm();
    });
  }

  /** Waiting for bytes that have not come for GIVE_WAY_IDLE_MS. */
  idle(): boolean {
    return this.waiters.length > 0 && Date.now() - this.advancedAt >= GIVE_WAY_IDLE_MS;
  }

  /** Stops the import reading through this gate for another upload's, as a stall would. */
  giveWay(): void {
    this.stop(stalled("another upload's bytes are arriving: this one is imported when its bytes come again"));
  }

  /** Ends every wait, now and later, with `error`. */
  stop(error: Error): void {
    this.stopped ??= error;
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const waiter of this.waiters) waiter.reject(this.stopped);
    this.waiters = [];
  }

  /** The stall clock runs only while someone waits; each byte written restarts it. */
  private rearm(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    if (this.waiters.length === 0 || this.stopped !== undefined) return;
    this.timer = setTimeout(() => {
      this.stop(stalled(`no byte arrived for ${this.stallMs / 1000} s`));
    }, this.stallMs);
    this.timer.unref();
  }
}
