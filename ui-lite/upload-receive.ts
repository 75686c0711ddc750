import { open } from "node:fs/promises";
import type { Request } from "express";
import { AirlockError, errnoCode } from "../registry/oci/index.js";
import { writeFully } from "../registry/store/index.js";

/** Bytes gathered from the socket before one write: the socket hands over 16–64 KiB at a time. */
export const WRITE_SIZE = 4 * 1024 * 1024;

export interface ChunkRange {
  start: number;
  end: number;
}

/** `Content-Range: bytes START-END/TOTAL`, END inclusive, TOTAL the session's size. */
export function parseContentRange(header: string | undefined, size: number): ChunkRange {
  const match = /^bytes (\d{1,16})-(\d{1,16})\/(\d{1,16})$/.exec(header?.trim() ?? "");
  const [start, end, total] = match === null ? [] : match.slice(1).map(Number);
  if (start === undefined || end === undefined || total === undefined || end < start || total !== size) {
    throw new AirlockError(
      "UI_BAD_PARAMETER",
      `Content-Range ${JSON.stringify(header ?? "")} is not "bytes START-END/${size}"`,
      { hint: "send each chunk with Content-Range: bytes START-END/TOTAL, END inclusive" },
    );
  }
  if (end >= size) {
    throw new AirlockError("UI_BAD_PARAMETER", `the chunk ends at ${end}, past the upload's ${size} bytes`);
  }
  return { start, end };
}

function uploadWriteError(error: unknown): AirlockError {
  const full = ["ENOSPC", "EDQUOT"].includes(errnoCode(error) ?? "");
  return new AirlockError(
    full ? "UI_UPLOAD_DISK_FULL" : "UI_UPLOAD_WRITE_FAILED",
    full ? "the disk holding the data dir is full" : `writing the upload failed: ${(error as Error).message}`,
    {
      hint: "free space on the data dir's disk, then resume: the bytes received so far are kept",
      cause: error,
    },
  );
}

/**
 * Appends the request body to the file as it arrives (for-await holds the socket while a write is
 * pending: backpressure), in writes of WRITE_SIZE. A body cut short keeps what arrived, so the next
 * chunk resumes at the file's length; a body longer than its range is refused, its excess never written.
 *
 * No fsync per chunk: it made every chunk wait for the disk, and the partial file is only a copy of
 * bytes the client still holds. After a crash of the host the file's length is what reached the disk
 * (the offset a client resumes from, which it asks for after any failure), and the import verifies
 * every byte against airlock.json before anything is recorded; the store fsyncs what it keeps.
 */
export async function appendBody(
  request: Request,
  path: string,
  expected: number,
  onWritten: (received: number) => void,
): Promise<number> {
  const handle = await open(path, "a", 0o600);
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  let received = 0;
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    const buffer = pending.length === 1 ? pending[0]! : Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await writeFully(handle, buffer).catch((error: unknown) => {
      throw uploadWriteError(error);
    });
    onWritten(received);
  };
  let overlong = false;
  try {
    try {
      for await (const data of request as AsyncIterable<Buffer>) {
        const room = expected - received;
        const chunk = data.byteLength > room ? data.subarray(0, room) : data;
        pending.push(chunk);
        pendingBytes += chunk.byteLength;
        received += chunk.byteLength;
        if (data.byteLength > room) {
          overlong = true;
          break;
        }
        if (pendingBytes >= WRITE_SIZE) await flush();
      }
    } catch (error) {
      // A dropped connection: what arrived is kept and the offset tells the client where to go on.
      if (!request.readableAborted && !request.destroyed) throw error;
    }
    if (!overlong) await flush();
  } finally {
    await handle.close();
  }
  if (overlong) {
    throw new AirlockError("UI_BAD_PARAMETER", `the chunk's body is longer than its Content-Range`, {
      hint: "send exactly END-START+1 bytes",
    });
  }
  return received;
}
