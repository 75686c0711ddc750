import type { OperationOptions } from "../registry/oci/index.js";
import { Limiter } from "./limiter.js";
import type { BundleWriter } from "./writer.js";
import { copyBody, type PlannedEntry } from "./build-entries.js";

/**
 * Registry blobs a build pulls at once unless told otherwise (`--concurrency`), as mirror pushes: one
 * blob at a time leaves the client waiting on each answer and each write in turn.
 */
export const DEFAULT_PULL_CONCURRENCY = 4;

/**
 * Registry blobs pulled at once into the places the archive's order reserved for them: the tar stays
 * byte for byte the one written one blob after another, and every blob streams from its registry
 * straight into the output (the client's 1 MiB batches, no copy elsewhere). Pulls start in the
 * archive's order, at most `concurrency` at a time; the first failure stops the others.
 */
export class ConcurrentPulls {
  private readonly limiter: Limiter;
  private readonly pulls: Promise<void>[] = [];
  private failure: { error: unknown } | undefined;

  constructor(
    concurrency: number,
    private readonly writer: BundleWriter,
    private readonly options: OperationOptions & { onWritten: (item: string) => void },
  ) {
    this.limiter = new Limiter(concurrency);
  }

  /** Pulls `entry`'s body into the range at `position`, once a slot is free. */
  add(entry: PlannedEntry, position: number): void {
    const pulling = this.limiter.run(() =>
      copyBody(
        entry,
        entry.open!(),
        async (chunk, at) => {
          this.throwIfStopped();
          await this.writer.writeAt(position + at, chunk);
          this.options.onWritten(entry.name);
        },
        () => this.throwIfStopped(),
      ),
    );
    this.pulls.push(pulling.catch((error: unknown) => this.stop(error)));
  }

  /** Throws the failure that stopped the pulls, if one did. */
  throwIfStopped(): void {
    this.options.signal?.throwIfAborted();
    if (this.failure !== undefined) throw this.failure.error;
  }

  /** Waits for every pull; throws the first failure, once the others have stopped. */
  async finish(): Promise<void> {
    await Promise.all(this.pulls);
    if (this.failure !== undefined) throw this.failure.error;
  }

  /** Stops the pulls (the build failed elsewhere) and waits until none writes any more. */
  async cancel(error: unknown): Promise<void> {
    this.stop(error);
    await Promise.all(this.pulls);
  }

  private stop(error: unknown): void {
    this.failure ??= { error };
  }
}
