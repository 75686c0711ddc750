import { open } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { giveBack, takeBuffer } from "../store/index.js";

/** 1 MiB: large enough that reads stay cheap, small enough that 32 pulls hold 64 MiB of buffers. */
const SEND_CHUNK_BYTES = 1024 * 1024;

function writeChunk(res: ServerResponse, chunk: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    res.write(chunk, (error) => (error === null || error === undefined ? resolve() : reject(error)));
  });
}

/**
 * Sends `length` bytes of a file from `start`, through two pooled buffers per response: the next chunk
 * is read while the previous one is being written, and a buffer is refilled only after its write
 * completed. Memory per pull stays at 2 MiB whatever the blob, and no buffer is left to the GC.
 */
export async function sendFileRange(
  res: ServerResponse,
  path: string,
  start: number,
  length: number,
): Promise<void> {
  const handle = await open(path, "r");
  const buffers = [takeBuffer(SEND_CHUNK_BYTES), takeBuffer(SEND_CHUNK_BYTES)];
  let writing: Promise<void> | undefined;
  try {
    let position = start;
    const end = start + length;
    for (let turn = 0; position < end && !res.destroyed; turn++) {
      const buffer = buffers[turn % 2]!;
      const { bytesRead } = await handle.read(
        buffer,
        0,
        Math.min(buffer.byteLength, end - position),
        position,
      );
      if (bytesRead === 0) throw new Error(`${path} ended ${end - position} bytes early`);
      position += bytesRead;
      await writing;
      writing = writeChunk(res, buffer.subarray(0, bytesRead));
    }
    await writing;
    res.end();
  } finally {
    await writing?.catch(() => undefined);
    await handle.close();
    for (const buffer of buffers) giveBack(buffer);
  }
}
