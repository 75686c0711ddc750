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

/**
 * A file's bytes as chunks of up to 4 MiB, one read always in flight ahead of the consumer.
 * A chunk is valid until the consumer asks for the next one (its buffer is then reused): consumers
 * hash it or await its write before moving on, and copy anything they keep.
 */
export async function* readChunks(
  path: string,
  range: ChunkRange = { start: 0 },
  signal?: AbortSignal,
): AsyncGenerator<Buffer> {
  const handle = await open(path, "r");
  const buffers = [takeBuffer(), takeBuffer(), takeBuffer()];
  let inFlight: Promise<{ bytesRead: number; requested: number }> | undefined;
  try {
    const end = range.length === undefined ? (await handle.stat()).size : range.start + range.length;
    let position = range.start;
    let turn = 0;
    const readNext = (): Promise<{ bytesRead: number; requested: number }> | undefined => {
      if (position >= end) return undefined;
      const buffer = buffers[turn % buffers.length]!;
      const requested = Math.min(buffer.byteLength, end - position);
      const at = position;
      position += requested;
      const read = handle.read(buffer, 0, requested, at).then(({ bytesRead }) => ({ bytesRead, requested }));
      // Marked handled now: it may fail while the consumer is busy with the previous chunk, and it
      // rejects for the consumer at its next step; unhandled meanwhile, it would end the process.
      read.catch(() => undefined);
      return read;
    };
    inFlight = readNext();
    while (inFlight !== undefined) {
      signal?.throwIfAborted();
      const { bytesRead, requested } = await inFlight;
      const buffer = buffers[turn % buffers.length]!;
      turn++;
      // A short read means the file shrank under us: stop, and let the consumer's size check say so.
      inFlight = bytesRead === requested ? readNext() : undefined;
      if (bytesRead > 0) yield buffer.subarray(0, bytesRead);
    }
  } finally {
    await inFlight?.catch(() => undefined);
    await handle.close();
    for (const buffer of buffers) giveBack(buffer);
  }
}
