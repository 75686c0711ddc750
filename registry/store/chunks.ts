import { open } from "node:fs/promises";
/** Reads of at least 1 MiB: the streaming rule, and what keeps per-chunk overhead out of throughput. */
export const STREAM_CHUNK_BYTES = 4 * 1024 * 1024;

/**
 * Reused read buffers. Reading a multi-GiB file through fresh 4 MiB buffers leaves the collector a
 * buffer per read to find; reusing a few keeps memory flat whatever the size (DESIGN.md: a 20 GiB
 * bundle needs no more RAM than a 20 MiB one) and keeps GC off the hashing path.
 */
const freeBuffers = new Map<number, Buffer[]>();
const MAX_FREE_BUFFERS = 64;

/**
 * A new read buffer of `size` bytes that starts 64 bytes into its allocation: Node's large
 * allocations start 16 bytes into a page, where the kernel's copy out of the page cache runs several
 * times slower on some x86 machines (measured on this one's AMD EPYC).
 */
export function allocateReadBuffer(size: number): Buffer {
  return Buffer.allocUnsafeSlow(size + 4096).subarray(64, 64 + size);
}

/** A read buffer of `size` bytes, from the pool when one is free. */
export function takeBuffer(size: number = STREAM_CHUNK_BYTES): Buffer {
  return freeBuffers.get(size)?.pop() ?? allocateReadBuffer(size);
}

export function giveBack(buffer: Buffer): void {
  const free = freeBuffers.get(buffer.byteLength) ?? [];
  if (free.length < MAX_FREE_BUFFERS) free.push(buffer);
  freeBuffers.set(buffer.byteLength, free);
}

export interface ChunkRange {
  start: number;
  /** Bytes to read from start; to the end of the file when omitted. */
  length?: number;
}

/** A byte range of one file, for reading several files as one stream. */
export interface FileRange extends ChunkRange {
  path: string;
  /**
   * For a file still being written (a console upload imported as it arrives): resolves once the
   * file's first `end` bytes are there, and rejects to stop the read. Each read waits for it.
   */
  ready?: (end: number) => Promise<void>;
}

/**
 * A file's bytes as chunks of up to 4 MiB, one read always in flight ahead of the consumer.
 * A chunk is valid until the consumer asks for the one after next (its buffer is then reused by a
 * read): consumers hash it or finish its write by then, and copy anything they keep. That step of
 * slack lets a writer write one chunk while the next is hashed (bundle import).
 */
export function readChunks(
  path: string,
  range: ChunkRange = { start: 0 },
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  return readFileRanges([{ path, ...range }], signal);
}

/**
 * Several files' ranges as one stream of chunks, valid as readChunks's are: one ring of buffers
 * serves every file, so the slack holds across a file boundary too (a split bundle's parts).
 */
export async function* readFileRanges(ranges: FileRange[], signal?: AbortSignal): AsyncGenerator<Buffer> {
  // Three: the chunk the consumer holds, the one before it (its write may still run), the read ahead.
  const buffers = [takeBuffer(), takeBuffer(), takeBuffer()];
  const ring = { turn: 0 };
  try {
    for (const range of ranges) yield* readRange(range, buffers, ring, signal);
  } finally {
    for (const buffer of buffers) giveBack(buffer);
  }
}

async function* readRange(
  range: FileRange,
  buffers: Buffer[],
  ring: { turn: number },
  signal: AbortSignal | undefined,
): AsyncGenerator<Buffer> {
  const handle = await open(range.path, "r");
  let inFlight: Promise<{ bytesRead: number; requested: number }> | undefined;
  try {
    const end = range.length === undefined ? (await handle.stat()).size : range.start + range.length;
    let position = range.start;
    const readNext = (): Promise<{ bytesRead: number; requested: number }> | undefined => {
      if (position >= end) return undefined;
      const buffer = buffers[ring.turn % buffers.length]!;
      const requested = Math.min(buffer.byteLength, end - position);
      const at = position;
      position += requested;
      const waited = range.ready?.(at + requested);
      const read = (
        waited === undefined
          ? handle.read(buffer, 0, requested, at)
          : waited.then(() => handle.read(buffer, 0, requested, at))
      ).then(({ bytesRead }) => ({ bytesRead, requested }));
      // Marked handled now: it may fail while the consumer is busy with the previous chunk, and it
      // rejects for the consumer at its next step; unhandled meanwhile, it would end the process.
      read.catch(() => undefined);
      return read;
    };
    inFlight = readNext();
    while (inFlight !== undefined) {
      signal?.throwIfAborted();
      const { bytesRead, requested } = await inFlight;
      const buffer = buffers[ring.turn % buffers.length]!;
      ring.turn++;
      // A short read means the file shrank under us: stop, and let the consumer's size check say so.
      inFlight = bytesRead === requested ? readNext() : undefined;
      if (bytesRead > 0) yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await inFlight?.catch(() => undefined);
    await handle.close();
  }
}
