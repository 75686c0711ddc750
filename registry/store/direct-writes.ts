import { constants } from "node:fs";
import { open, rm, type FileHandle } from "node:fs/promises";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { errnoCode } from "../oci/index.js";
import { STREAM_CHUNK_BYTES } from "./chunks.js";

/**
 * A blob's bytes past its first block are written with O_DIRECT, in whole blocks at multiples of
 * the block size. On a VM whose balloon reports free pages to the host, a buffered write's first
 * touch of each page-cache page costs ~2.2 ms per MiB to take the page back — most of a bundle
 * import's time (docs/performance.md); a direct write sends the block from a reused buffer and
 * fills no page cache. The first block (and so every small blob) and the tail are written buffered.
 */
export const DIRECT_BLOCK_BYTES = STREAM_CHUNK_BYTES;

/** One block write in flight leaves the disk idle between writes (0.8 GB/s here); three keep it busy. */
const WRITES_IN_FLIGHT = 3;

/** The largest logical block size a disk asks direct I/O to be aligned to. */
const ALIGNMENT = 4096;

/** Node's buffers start 16-byte aligned: 256 offsets cover every address modulo 4096. */
const OFFSET_STEP = 16;

const MAX_FREE_BLOCKS = 16;
const freeBlocks: Buffer[] = [];
/** The blocks found aligned: only they go back to the pool. */
const alignedBlocks = new WeakSet<Buffer>();

/** Writes `chunk` whole at `position` of the file (tests replace it to inject faults). */
export type PositionedWrite = (handle: FileHandle, chunk: Uint8Array, position: number) => Promise<void>;

/**
 * An aligned block buffer. JavaScript cannot see a buffer's address, so the aligned offset into a
 * larger allocation is found by trial: the first offset a direct write of one page accepts.
 */
async function takeBlock(probeDir: string): Promise<Buffer | undefined> {
  const pooled = freeBlocks.pop();
  if (pooled !== undefined) return pooled;
  const raw = Buffer.allocUnsafeSlow(DIRECT_BLOCK_BYTES + ALIGNMENT);
  const probePath = join(probeDir, `${process.pid}-probe-${randomBytes(4).toString("hex")}`);
  const probe = await openDirect(probePath, "wx");
  if (probe === undefined) return undefined;
  try {
    for (let offset = 0; offset < ALIGNMENT; offset += OFFSET_STEP) {
      try {
        await probe.write(raw, offset, ALIGNMENT, 0);
        const block = raw.subarray(offset, offset + DIRECT_BLOCK_BYTES);
        alignedBlocks.add(block);
        return block;
      } catch (error) {
        if (errnoCode(error) !== "EINVAL") throw error;
      }
    }
    return undefined;
  } finally {
    await probe.close();
    await rm(probePath, { force: true });
  }
}

function giveBackBlock(block: Buffer): void {
  if (alignedBlocks.has(block) && freeBlocks.length < MAX_FREE_BLOCKS) freeBlocks.push(block);
}

/** The file opened for direct writes; undefined where the filesystem has none (tmpfs, some FUSE). */
async function openDirect(path: string, flags: "wx" | "w"): Promise<FileHandle | undefined> {
  const direct = (constants as { O_DIRECT?: number }).O_DIRECT;
  if (direct === undefined) return undefined;
  const create = flags === "wx" ? constants.O_CREAT | constants.O_EXCL : 0;
  try {
    return await open(path, constants.O_WRONLY | direct | create, 0o600);
  } catch (error) {
    if (errnoCode(error) === "EINVAL") return undefined;
    throw error;
  }
}

/**
 * The direct-written part of one ingest's file, from `start` (a block boundary) on. Each chunk is
 * copied into a block (the caller may reuse it at once); a full block is written while the next
 * fills, up to three at once. A block the disk refuses to take direct (EINVAL: an alignment this
 * buffer does not meet) and every block after it are written through the buffered handle instead.
 */
export class DirectWrites {
  private block: Buffer | undefined;
  private filled = 0;
  private position: number;
  private readonly inFlight = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  /** Off once the disk refused a direct write (or no aligned block could be found): buffered from then on. */
  private useDirect = true;

  private constructor(
    private readonly direct: FileHandle,
    private readonly buffered: FileHandle,
    private readonly probeDir: string,
    private readonly writeChunk: PositionedWrite,
    start: number,
  ) {
    this.position = start;
  }

  /** Undefined when the file's filesystem takes no direct writes: the ingest stays buffered. */
  static async open(
    path: string,
    buffered: FileHandle,
    probeDir: string,
    writeChunk: PositionedWrite,
    start: number,
  ): Promise<DirectWrites | undefined> {
    const direct = await openDirect(path, "w");
    return direct === undefined ? undefined : new DirectWrites(direct, buffered, probeDir, writeChunk, start);
  }

  /** Copies `chunk` in; resolves once there is room for the next one. */
  async write(chunk: Uint8Array): Promise<void> {
    let offset = 0;
    while (offset < chunk.byteLength) {
      this.throwIfFailed();
      if (this.block === undefined) {
        const block = await takeBlock(this.probeDir);
        this.block = block ?? Buffer.allocUnsafeSlow(DIRECT_BLOCK_BYTES);
        if (block === undefined) this.useDirect = false;
        this.filled = 0;
      }
      const copied = Math.min(chunk.byteLength - offset, DIRECT_BLOCK_BYTES - this.filled);
      this.block.set(chunk.subarray(offset, offset + copied), this.filled);
      this.filled += copied;
      offset += copied;
      if (this.filled === DIRECT_BLOCK_BYTES) await this.submit();
    }
  }

  /** Writes what is left (the tail, buffered) once every block is written; rejects with the first failure. */
  async finish(): Promise<void> {
    await this.settle();
    this.throwIfFailed();
    const block = this.block;
    if (block !== undefined && this.filled > 0) {
      this.block = undefined;
      await this.writeChunk(this.buffered, block.subarray(0, this.filled), this.position);
      this.position += this.filled;
      giveBackBlock(block);
    }
  }

  /** Waits out the writes in flight, whatever they end with, and closes the direct handle. */
  async close(): Promise<void> {
    await this.settle();
    if (this.block !== undefined) giveBackBlock(this.block);
    this.block = undefined;
    await this.direct.close().catch(() => undefined);
  }

  private async settle(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.allSettled([...this.inFlight]);
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure.error;
  }

  private async submit(): Promise<void> {
    while (this.inFlight.size >= WRITES_IN_FLIGHT) await Promise.race(this.inFlight);
    const block = this.block!;
    const position = this.position;
    this.block = undefined;
    this.position += DIRECT_BLOCK_BYTES;
    const written = this.writeBlock(block, position).then(
      () => giveBackBlock(block),
      (error: unknown) => {
        this.failure ??= { error };
      },
    );
    const tracked = written.finally(() => this.inFlight.delete(tracked));
    this.inFlight.add(tracked);
  }

  private async writeBlock(block: Buffer, position: number): Promise<void> {
    if (this.useDirect) {
      try {
        return await this.writeChunk(this.direct, block, position);
      } catch (error) {
        if (errnoCode(error) !== "EINVAL") throw error;
        this.useDirect = false;
      }
    }
    await this.writeChunk(this.buffered, block, position);
  }
}
