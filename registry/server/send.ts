import { open } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { giveBack, takeBuffer } from "../store/index.js";

/** 1 MiB: large enough that reads stay cheap, small enough that 32 pulls hold 64 MiB of buffers. */
const SEND_CHUNK_BYTES = 1024 * 1024;

/**
 * Writes a chunk and settles once the socket is done with it: with the error when the client went
 * away. It never rejects: the write stays in flight while the next chunk is read, and a rejection
 * with nobody awaiting it yet would be an unhandled one, which ends the process (issue 10).
 */
function writeChunk(res: ServerResponse, chunk: Buffer): Promise<Error | undefined> {
  return new Promise((resolve) => {
    res.write(chunk, (error) => resolve(error ?? undefined));
  });
}

/**
 * Sends `length` bytes of a file from `start`, through two pooled buffers per response: the next chunk
 * is read while the previous one is being written, and a buffer is refilled only after its write
 * completed. Memory per pull stays at 2 MiB whatever the blob, and no buffer is left to the GC.
 * A client that goes away mid-body ends the send quietly: that is its choice, not a server failure.
 */
export async function sendFileRange(
  res: ServerResponse,
  path: string,
  start: number,
  length: number,
): Promise<void> {
  const handle = await open(path, "r");
  const buffers = [takeBuffer(SEND_CHUNK_BYTES), takeBuffer(SEND_CHUNK_BYTES)];
  let writing: Promise<Error | undefined> = Promise.resolve(undefined);
  try {
    let position = start;
    const end = start + length;
    for (let turn = 0; position < end; turn++) {
      const buffer = buffers[turn % 2]!;
      const { bytesRead } = await handle.read(
        buffer,
        0,
        Math.min(buffer.byteLength, end - position),
        position,
      );
      if (bytesRead === 0) throw new Error(`${path} ended ${end - position} bytes early`);
      position += bytesRead;
      if ((await writing) !== undefined || res.destroyed) {
        res.destroy();
        return;
      }
      writing = writeChunk(res, buffer.subarray(0, bytesRead));
    }
    if ((await writing) === undefined && !res.destroyed) res.end();
  } finally {
    // A buffer goes back to the pool only once the socket no longer reads from it.
    await writing;
    await handle.close();
    for (const buffer of buffers) giveBack(buffer);
  }
}
