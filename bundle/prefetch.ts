import { mkdtemp, open, rm } from "node:fs/promises";
import { basename, dirname, join, resolve as resolvePath } from "node:path";
import { AirlockError, errnoCode } from "../registry/oci/index.js";
import { readChunks, writeFully } from "../registry/store/index.js";
import type { ByteStream } from "./sources.js";

/**
 * Blobs a build pulls from a registry at once unless told otherwise (`--concurrency`). One: on a
 * loopback registry the pull is bound by CPU, and copying blobs through scratch files only adds to it
 * (bench/mirror's 1 GiB set on a busy 2-core host, 2026-12-03: 4.3–5.6 s one at a time, 6.5–7.9 s with
 * 2, 10–14.6 s with 4). More pays where each blob waits on a slow or distant registry.
 */
export const DEFAULT_PULL_CONCURRENCY = 1;

/** What the prefetcher needs of an archive entry: its body, readable on demand. */
export interface FetchableEntry {
  name: string;
  size: number;
  open?: () => ByteStream;
}

/**
 * Registry blobs fetched ahead of the tar writer, which must write them one after another in the
 * archive's order. While the writer streams one blob (straight from the registry, or from where it
 * was fetched ahead), the next `concurrency - 1` download into files of a scratch directory beside
 * the output; each is read into the archive when its turn comes and deleted. So at most `concurrency`
 * blobs are in flight or waiting on disk, memory stays the client's 1 MiB batches per blob, and with
 * a concurrency of 1 nothing is fetched ahead: every blob streams from the registry into the output.
 */
export class BlobPrefetcher {
  /** Each remote entry's place in the archive's order of remote entries. */
  private readonly places = new Map<FetchableEntry, number>();
  /** Files being (or done) fetched ahead, by place; handled, so a failure waits for its turn. */
  private readonly fetches = new Map<number, Promise<string>>();
  /** Places below this have been started (or streamed directly). */
  private started = 0;
  private closed = false;

  private constructor(
    private readonly remote: FetchableEntry[],
    private readonly concurrency: number,
    private readonly scratch: string | undefined,
    private readonly signal: AbortSignal | undefined,
  ) {
    remote.forEach((entry, place) => this.places.set(entry, place));
  }

  /** A prefetcher for `remote`, the entries read from a registry, in archive order. */
  static async create(
    remote: FetchableEntry[],
    options: { concurrency: number; output: string; signal?: AbortSignal | undefined },
  ): Promise<BlobPrefetcher> {
    let scratch: string | undefined;
    if (options.concurrency > 1 && remote.length > 1) {
      const output = resolvePath(options.output);
      try {
        scratch = await mkdtemp(join(dirname(output), `.${basename(output)}.pull-`));
      } catch (error) {
        throw new AirlockError(
          "OUTPUT_NOT_WRITABLE",
          `cannot make a scratch directory: ${(error as Error).message}`,
          {
            where: options.output,
            hint: "the output's directory must exist and be writable",
            cause: error,
          },
        );
      }
    }
    return new BlobPrefetcher(remote, options.concurrency, scratch, options.signal);
  }

  /** The most scratch space the fetched-ahead files can take at once. */
  static scratchBytes(remote: FetchableEntry[], concurrency: number): number {
    if (concurrency <= 1) return 0;
    const largest = remote.map((entry) => entry.size).sort((a, b) => b - a);
    return largest.slice(0, concurrency).reduce((sum, size) => sum + size, 0);
  }

  /** The entry's body: from its fetched-ahead file once complete, else straight from its source. */
  async *open(entry: FetchableEntry): AsyncGenerator<Uint8Array> {
    const place = this.places.get(entry);
    if (place === undefined) {
      yield* entry.open!();
      return;
    }
    this.started = Math.max(this.started, place + 1);
    this.fetchAhead(place);
    const fetched = this.fetches.get(place);
    if (fetched === undefined) {
      yield* entry.open!();
      return;
    }
    try {
      yield* readChunks(await fetched);
    } finally {
      this.fetches.delete(place);
      await rm(this.fileFor(place), { force: true });
    }
  }

  /** Stops fetching ahead and removes the scratch directory with whatever it holds. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.allSettled(this.fetches.values());
    if (this.scratch !== undefined) await rm(this.scratch, { recursive: true, force: true });
  }

  /** Starts the fetches of the places after `head` that fit in the window it leaves. */
  private fetchAhead(head: number): void {
    if (this.scratch === undefined) return;
    const end = Math.min(this.remote.length, head + this.concurrency);
    for (; this.started < end; this.started++) {
      const place = this.started;
      const fetching = this.fetch(this.remote[place]!, this.fileFor(place));
      fetching.catch(() => undefined);
      this.fetches.set(place, fetching);
    }
  }

  private fileFor(place: number): string {
    return join(this.scratch!, String(place));
  }

  private async fetch(entry: FetchableEntry, path: string): Promise<string> {
    const handle = await open(path, "wx", 0o600);
    try {
      for await (const chunk of entry.open!()) {
        // A stopped build fails with the stop, never with a blob cut short.
        this.signal?.throwIfAborted();
        // The build ended: what was fetched goes with the scratch directory.
        if (this.closed) break;
        await writeFully(handle, chunk).catch((error: unknown) => {
          throw new AirlockError(
            errnoCode(error) === "ENOSPC" ? "OUTPUT_DISK_FULL" : "OUTPUT_WRITE_FAILED",
            `fetching ${entry.name} ahead failed: ${(error as Error).message}`,
            {
              where: path,
              hint: "free space on the output disk and build again, or build with --concurrency 1",
              cause: error,
            },
          );
        });
      }
    } finally {
      await handle.close();
    }
    return path;
  }
}
