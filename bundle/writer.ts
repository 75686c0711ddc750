import { open, rename, rm, writeFile, type FileHandle } from "node:fs/promises";
import { basename } from "node:path";
import { createHash, type Hash } from "node:crypto";
import { AirlockError, errnoCode } from "../registry/oci/index.js";
import { readChunks, writeFully } from "../registry/store/index.js";
import { PARTS_SUFFIX, partName, type PartInfo, type PartsManifest } from "./parts.js";

/** One file of the output being written: the whole bundle, or one part of it. */
interface OpenPart {
  temp: string;
  final: string;
  handle: FileHandle;
  /** Where the part starts in the archive. */
  start: number;
  /** Hashed as written, while every byte came in order; undefined once a range was reserved in it. */
  hash: Hash | undefined;
  /** Bytes of ranges reserved in the part that are not written yet. */
  unfilled: number;
  /** Writes to the part under way. */
  writing: number;
}

/**
 * Writes the archive to one file, or to parts of at most `splitSize` bytes; nothing is visible until
 * finish. Bytes go in order (`write`), and a range can be reserved for a body written later at its
 * place (`reserve`, then `writeAt`), so blobs pulled at once land where the archive's order puts them.
 */
export class BundleWriter {
  /** Parts open for writing, by index; a part closes once the cursor passed it and it is filled. */
  private readonly open = new Map<number, Promise<OpenPart>>();
  /** Parts closing or closed: synced, hashed, waiting for their rename. */
  private readonly closed = new Map<number, Promise<{ temp: string; final: string; info: PartInfo }>>();
  /** Where the next in-order byte goes. */
  private cursor = 0;
  private written = 0;

  constructor(
    private readonly output: string,
    private readonly splitSize: number | undefined,
  ) {}

  /** Bytes written so far, in order or at their place. */
  get bytesWritten(): number {
    return this.written;
  }

  /** Writes `chunk` at the cursor and moves the cursor past it. */
  async write(chunk: Uint8Array): Promise<void> {
    const at = this.cursor;
    this.cursor += chunk.byteLength;
    await this.put(at, chunk, false);
  }

  /** Moves the cursor past `length` bytes that `writeAt` fills later; returns where they start. */
  async reserve(length: number): Promise<number> {
    const at = this.cursor;
    this.cursor += length;
    for (const span of this.spans(at, length)) {
      const part = await this.part(span.index);
      part.hash = undefined;
      part.unfilled += span.length;
    }
    return at;
  }

  /** Writes `chunk` into a range `reserve` gave, at `position` of the archive. */
  async writeAt(position: number, chunk: Uint8Array): Promise<void> {
    await this.put(position, chunk, true);
  }

  /** Closes every part, renames them into place, parts.json last, so a reader never finds a half-written set. */
  async finish(): Promise<PartInfo[] | undefined> {
    for (const index of [...this.open.keys()]) this.close(index);
    const finished = await Promise.all(
      [...this.closed.entries()].sort(([a], [b]) => a - b).map(([, closing]) => closing),
    );
    for (const part of finished) await rename(part.temp, part.final);
    if (this.splitSize === undefined) return undefined;
    const manifest: PartsManifest = {
      bundle: basename(this.output),
      size: this.cursor,
      parts: finished.map((part) => part.info),
    };
    const path = `${this.output}${PARTS_SUFFIX}`;
    await writeFile(`${path}.partial`, JSON.stringify(manifest, null, 2) + "\n");
    await rename(`${path}.partial`, path);
    return manifest.parts;
  }

  async abort(): Promise<void> {
    const parts = await Promise.allSettled([...this.open.values()]);
    await Promise.allSettled([...this.closed.values()]);
    for (const part of parts) {
      if (part.status === "fulfilled") await part.value.handle.close().catch(() => undefined);
    }
    const indexes = new Set([...this.open.keys(), ...this.closed.keys()]);
    for (const index of indexes) await rm(`${this.finalName(index)}.partial`, { force: true });
  }

  private async put(position: number, chunk: Uint8Array, reserved: boolean): Promise<void> {
    let offset = 0;
    for (const span of this.spans(position, chunk.byteLength)) {
      const part = await this.part(span.index);
      const piece = chunk.subarray(offset, offset + span.length);
      offset += span.length;
      part.writing++;
      const writing = writeFully(part.handle, piece, position + span.offset - part.start);
      if (!reserved) part.hash?.update(piece);
      try {
        await writing;
      } catch (error) {
        throw outputFailure(error, part.final);
      } finally {
        part.writing--;
      }
      // Counted and checked in one step: of the writes that finish together, only the last closes the part.
      this.written += piece.byteLength;
      if (reserved) part.unfilled -= piece.byteLength;
      if (this.isComplete(span.index, part)) this.close(span.index);
    }
  }

  /** The parts a range of the archive falls in: index, offset from the range's start, length. */
  private spans(position: number, length: number): { index: number; offset: number; length: number }[] {
    if (this.splitSize === undefined) return length === 0 ? [] : [{ index: 0, offset: 0, length }];
    const spans: { index: number; offset: number; length: number }[] = [];
    for (let at = position; at < position + length;) {
      const index = Math.floor(at / this.splitSize);
      const end = Math.min(position + length, (index + 1) * this.splitSize);
      spans.push({ index, offset: at - position, length: end - at });
      at = end;
    }
    return spans;
  }

  private isComplete(index: number, part: OpenPart): boolean {
    if (!this.open.has(index) || this.splitSize === undefined || part.unfilled > 0 || part.writing > 0)
      return false;
    return this.cursor >= (index + 1) * this.splitSize;
  }

  private finalName(index: number): string {
    return this.splitSize === undefined ? this.output : partName(this.output, index);
  }

  private part(index: number): Promise<OpenPart> {
    let part = this.open.get(index);
    if (part === undefined) {
      const final = this.finalName(index);
      part = open(`${final}.partial`, "w", 0o644).then(
        (handle) => ({
          temp: `${final}.partial`,
          final,
          handle,
          start: index * (this.splitSize ?? 0),
          // Part hashes go into parts.json; a single-file bundle needs none (its entries carry digests).
          hash: this.splitSize === undefined ? undefined : createHash("sha256"),
          unfilled: 0,
          writing: 0,
        }),
        (error: unknown) => {
          throw outputFailure(error, final);
        },
      );
      this.open.set(index, part);
    }
    return part;
  }

  /** Syncs and closes a part; a part written out of order is hashed by reading it back. */
  private close(index: number): void {
    const opening = this.open.get(index)!;
    this.open.delete(index);
    const closing = opening.then(async (part) => {
      await part.handle.sync();
      await part.handle.close();
      const size = Math.min(this.cursor - part.start, this.splitSize ?? Infinity);
      let hash = part.hash;
      if (hash === undefined && this.splitSize !== undefined) {
        hash = createHash("sha256");
        for await (const chunk of readChunks(part.temp)) hash.update(chunk);
      }
      return {
        temp: part.temp,
        final: part.final,
        info: { name: basename(part.final), size, sha256: hash?.digest("hex") ?? "" },
      };
    });
    closing.catch(() => undefined);
    this.closed.set(index, closing);
  }
}

/** A write into the output that failed, typed by whether the disk is full. */
function outputFailure(error: unknown, where: string): AirlockError {
  return new AirlockError(
    errnoCode(error) === "ENOSPC" ? "OUTPUT_DISK_FULL" : "OUTPUT_WRITE_FAILED",
    `writing the bundle failed: ${(error as Error).message}`,
    { where, hint: "free space on the output disk and build again", cause: error },
  );
}
