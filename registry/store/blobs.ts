import { mkdir, open, rename, rm, stat, readdir, readFile, type FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import {
  AirlockError,
  Digester,
  errnoCode,
  parseDigest,
  type Digest,
  type DigestAlgorithm,
} from "../oci/index.js";
import { processAlive } from "./lock.js";
import { readChunks } from "./chunks.js";
import { DIRECT_BLOCK_BYTES, DirectWrites } from "./direct-writes.js";

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export interface ByteRange {
  start: number;
  /** Inclusive, as in HTTP Range. */
  end: number;
}

/** Read side of a content store: what a registry server or an exporter needs. */
export interface BlobReader {
  stat(digest: Digest): Promise<BlobInfo | undefined>;
  /** The blob's bytes (or an inclusive range of them) in pooled chunks; see readChunks for their life. */
  chunks(digest: Digest, range?: ByteRange): AsyncGenerator<Buffer>;
  /** The blob's file: blobs are files, and a server sends them with its own buffers (sendFileRange). */
  path(digest: Digest): string;
  readSmall(digest: Digest, maxBytes: number): Promise<Buffer>;
  list(): AsyncIterable<Digest>;
}

export interface ExpectedBlob {
  digest?: Digest | undefined;
  size?: number | undefined;
}

export interface CommittedBlob extends BlobInfo {
  /** False when the blob was already present and the new bytes were discarded. */
  created: boolean;
}

/** Write side: every write goes through an ingest that is checked before it becomes visible. */
export interface BlobWriter {
  ingest(algorithm?: DigestAlgorithm): Promise<BlobIngest>;
  put(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    expected: ExpectedBlob,
  ): Promise<CommittedBlob>;
  delete(digest: Digest): Promise<boolean>;
}

/**
 * Low-level write used by ingests, of a whole chunk at `position` of the file (through the ingest's
 * buffered handle, or its direct one for blocks past the first); replaceable so tests can inject
 * ENOSPC and similar faults.
 */
export type WriteChunk = (handle: FileHandle, chunk: Uint8Array, position: number) => Promise<void>;

/**
 * Writes a whole chunk, at the file's position or at `position`: a file write may take fewer bytes
 * than it was given.
 */
export const writeFully = async (handle: FileHandle, chunk: Uint8Array, position?: number): Promise<void> => {
  let offset = 0;
  while (offset < chunk.byteLength) {
    const at = position === undefined ? null : position + offset;
    const { bytesWritten } = await handle.write(chunk, offset, chunk.byteLength - offset, at);
    offset += bytesWritten;
  }
};

/** Makes a written file's bytes durable before it is renamed into place; replaceable for EIO tests. */
export type SyncFile = (handle: FileHandle) => Promise<void>;

const datasync: SyncFile = (handle) => handle.datasync();

export interface BlobStoreOptions {
  writeChunk?: WriteChunk;
  syncFile?: SyncFile;
  /** Blocks past a blob's first written with O_DIRECT where the filesystem has it (default true). */
  directWrites?: boolean;
}

/**
 * Blobs as files `blobs/<alg>/<hex>` of an OCI image layout. A blob is written to `ingest/`, hashed on
 * the way, fsynced, and renamed into place only when its digest and size match: a reader never sees
 * a partial or wrong blob, and two writers of one blob both succeed (rename is atomic, bytes equal).
 */
export class FsBlobStore implements BlobReader, BlobWriter {
  readonly root: string;
  readonly ingestDir: string;
  private readonly io: IngestIo;

  constructor(root: string, options: BlobStoreOptions = {}) {
    this.root = root;
    this.ingestDir = join(root, "ingest");
    this.io = {
      writeChunk: options.writeChunk ?? writeFully,
      syncFile: options.syncFile ?? datasync,
      directWrites: options.directWrites ?? true,
    };
  }

  async init(): Promise<void> {
    await mkdir(join(this.root, "blobs", "sha256"), { recursive: true });
    await mkdir(join(this.root, "blobs", "sha512"), { recursive: true });
    await mkdir(this.ingestDir, { recursive: true });
  }

  path(digest: Digest): string {
    const { algorithm, hex } = parseDigest(digest);
    return join(this.root, "blobs", algorithm, hex);
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    try {
      const info = await stat(this.path(digest));
      return { digest, size: info.size };
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return undefined;
      throw error;
    }
  }

  /** A malformed digest throws here, before any file is touched; a missing blob rejects on first read. */
  chunks(digest: Digest, range?: ByteRange): AsyncGenerator<Buffer> {
    const path = this.path(digest);
    return readChunks(
      path,
      range === undefined ? { start: 0 } : { start: range.start, length: range.end - range.start + 1 },
    );
  }

  /** For manifests and configs, which are small by definition; refuses anything over `maxBytes`. */
  async readSmall(digest: Digest, maxBytes: number): Promise<Buffer> {
    const info = await this.stat(digest);
    if (info === undefined) {
      throw new AirlockError("BLOB_UNKNOWN", `blob ${digest} is not in the store`, {
        where: this.path(digest),
        hint: "run `airlock store fsck` to find what else is missing",
      });
    }
    if (info.size > maxBytes) {
      throw new AirlockError("BLOB_TOO_LARGE", `blob ${digest} is ${info.size} bytes, over ${maxBytes}`, {
        where: this.path(digest),
      });
    }
    return readFile(this.path(digest));
  }

  async *list(): AsyncIterable<Digest> {
    for (const algorithm of ["sha256", "sha512"] as const) {
      let names: string[];
      try {
        names = await readdir(join(this.root, "blobs", algorithm));
      } catch (error) {
        if (errnoCode(error) === "ENOENT") continue;
        throw error;
      }
      for (const name of names.sort()) yield `${algorithm}:${name}`;
    }
  }

  async ingest(algorithm: DigestAlgorithm = "sha256"): Promise<BlobIngest> {
    const tempPath = join(this.ingestDir, `${process.pid}-${randomBytes(8).toString("hex")}`);
    const handle = await open(tempPath, "wx", 0o644);
    return new BlobIngest(this, tempPath, handle, new Digester(algorithm), this.io, this.io.directWrites);
  }

  /**
   * An ingest at a file of the caller's naming that outlives this process (a registry upload session,
   * resumable after a restart). Reopening one hashes what it already holds, then appends.
   */
  async namedIngest(path: string, mode: "create" | "resume"): Promise<BlobIngest> {
    const digester = new Digester("sha256");
    if (mode === "resume") for await (const chunk of readChunks(path)) digester.update(chunk);
    const handle = await open(path, mode === "create" ? "wx" : "a", 0o644);
    // Buffered only: a session's file is appended to across requests and suspended between them.
    return new BlobIngest(this, path, handle, digester, this.io, false);
  }

  async put(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    expected: ExpectedBlob,
  ): Promise<CommittedBlob> {
    const ingest = await this.ingest(
      expected.digest === undefined ? "sha256" : parseDigest(expected.digest).algorithm,
    );
    try {
      for await (const chunk of source) await ingest.write(chunk);
      return await ingest.commit(expected);
    } catch (error) {
      await ingest.abort();
      throw error;
    }
  }

  async delete(digest: Digest): Promise<boolean> {
    try {
      await rm(this.path(digest));
      return true;
    } catch (error) {
      if (errnoCode(error) === "ENOENT") return false;
      throw error;
    }
  }

  /** Makes renames into the blob directories durable; called once per logical step, not per blob. */
  async syncDirectories(): Promise<void> {
    for (const algorithm of ["sha256", "sha512"]) {
      const handle = await open(join(this.root, "blobs", algorithm), "r");
      try {
        await handle.sync();
      } finally {
        await handle.close();
      }
    }
  }

  /**
   * Removes ingest files of writers that died (their pid is in the name), and any older than
   * `olderThanMs`; returns how many. A live writer's file younger than that is left alone.
   */
  async removeStaleIngests(olderThanMs = Number.POSITIVE_INFINITY): Promise<number> {
    let removed = 0;
    const names = await readdir(this.ingestDir).catch(() => [] as string[]);
    for (const name of names) {
      const path = join(this.ingestDir, name);
      const info = await stat(path).catch(() => undefined);
      if (info === undefined) continue;
      const pid = Number(name.split("-")[0]);
      if (
        !(Number.isInteger(pid) && pid > 0 && processAlive(pid)) ||
        Date.now() - info.mtimeMs >= olderThanMs
      ) {
        await rm(path, { force: true });
        removed++;
      }
    }
    return removed;
  }
}

export function wrapWriteError(error: unknown, where: string): AirlockError {
  if (error instanceof AirlockError) return error;
  const code = errnoCode(error);
  if (code === "ENOSPC" || code === "EDQUOT") {
    return new AirlockError("STORE_DISK_FULL", "the disk holding the store is full", {
      where,
      hint: "free space (or move --data-dir to a larger disk) and re-run; what was already stored is kept",
      cause: error,
    });
  }
  return new AirlockError("STORE_WRITE_FAILED", `writing to the store failed: ${(error as Error).message}`, {
    where,
    hint: "check the disk holding the store (its kernel log, `airlock store fsck`) and retry; what was already stored is kept",
    cause: error,
  });
}

/** The file operations of an ingest that tests replace to inject disk faults. */
interface IngestIo {
  writeChunk: WriteChunk;
  syncFile: SyncFile;
  directWrites: boolean;
}

/**
 * One blob being written. A chunk is hashed when it is given and written once the chunks before it
 * are, so a caller that keeps its chunks alive a step longer overlaps a chunk's hash with the write
 * of the one before (see write).
 */
export class BlobIngest {
  private closed = false;
  /** The write of the last chunk given; the next one starts when it ends, keeping the file in order. */
  private lastWrite: Promise<void> = Promise.resolve();
  /** Bytes handed over so far: where the next chunk goes in the file. */
  private queued: number;
  /** The direct writes past the first block, opened when a chunk first reaches there. */
  private direct: Promise<DirectWrites | undefined> | undefined;

  constructor(
    private readonly store: FsBlobStore,
    readonly tempPath: string,
    private readonly handle: FileHandle,
    private readonly digester: Digester,
    private readonly io: IngestIo,
    private readonly directAllowed: boolean,
  ) {
    this.queued = digester.size;
  }

  get size(): number {
    return this.digester.size;
  }

  /** The digest of everything written so far; no more may be written after asking. */
  digest(): Digest {
    return this.digester.digest();
  }

  /**
   * Hashes `chunk` now and resolves once it is written. It may be called again before that: the next
   * chunk is hashed while this one is written, and each must stay unchanged until its own write ends.
   */
  write(chunk: Uint8Array): Promise<void> {
    const position = this.queued;
    this.queued += chunk.byteLength;
    const buffered = this.directAllowed
      ? Math.max(0, Math.min(chunk.byteLength, DIRECT_BLOCK_BYTES - position))
      : chunk.byteLength;
    const head = chunk.subarray(0, buffered);
    const rest = chunk.subarray(buffered);
    const written = this.lastWrite.then(async () => {
      if (head.byteLength > 0) await this.io.writeChunk(this.handle, head, position);
      if (rest.byteLength > 0) await this.writeDirect(rest, position + buffered);
    });
    this.digester.update(chunk);
    // A failed write fails the ones queued behind it; whoever awaits any of them sees the error.
    this.lastWrite = written;
    written.catch(() => undefined);
    return written.catch((error: unknown) => {
      throw wrapWriteError(error, this.tempPath);
    });
  }

  /** Into the direct writes' blocks (copied: it returns as soon as there is room for the next). */
  private async writeDirect(chunk: Uint8Array, position: number): Promise<void> {
    this.direct ??= DirectWrites.open(
      this.tempPath,
      this.handle,
      this.store.ingestDir,
      this.io.writeChunk,
      DIRECT_BLOCK_BYTES,
    );
    const direct = await this.direct;
    if (direct === undefined) await this.io.writeChunk(this.handle, chunk, position);
    else await direct.write(chunk);
  }

  /** Every byte given is in the file (the direct writes' tail too), and their handle is closed. */
  private async flush(): Promise<void> {
    await this.lastWrite;
    const direct = await this.direct;
    if (direct === undefined) return;
    try {
      await direct.finish();
    } finally {
      await direct.close();
      this.direct = undefined;
    }
  }

  /** Waits out every write in flight, whatever it ends with, and closes the direct handle. */
  private async settle(): Promise<void> {
    await this.lastWrite.catch(() => undefined);
    const direct = await this.direct?.catch(() => undefined);
    this.direct = undefined;
    await direct?.close();
  }

  /**
   * Checks digest and size, then makes the blob visible. On mismatch nothing becomes visible. An
   * expected digest of another algorithm than the one hashed on the way (a sha512 registry upload,
   * whose algorithm is only known at its end) costs one more read of the file. Whatever fails, the
   * file is removed; a disk failure (sync, close, rename, re-read) is STORE_WRITE_FAILED or
   * STORE_DISK_FULL, never taken for bad content.
   */
  async commit(expected: ExpectedBlob = {}): Promise<CommittedBlob> {
    const size = this.digester.size;
    try {
      await this.flush();
      const digest = await this.digestFor(expected.digest);
      if (expected.size !== undefined && expected.size !== size) {
        throw new AirlockError("SIZE_INVALID", `blob is ${size} bytes, expected ${expected.size}`, {
          where: expected.digest ?? digest,
        });
      }
      if (expected.digest !== undefined && expected.digest !== digest) {
        throw new AirlockError(
          "DIGEST_MISMATCH",
          `content hashes to ${digest}, expected ${expected.digest}`,
          {
            where: expected.digest,
            hint: "the source is corrupt or was changed while being read",
          },
        );
      }
      const target = this.store.path(digest);
      if ((await this.store.stat(digest)) !== undefined) {
        await this.abort();
        return { digest, size, created: false };
      }
      await this.io.syncFile(this.handle);
      await this.handle.close();
      this.closed = true;
      await rename(this.tempPath, target);
      return { digest, size, created: true };
    } catch (error) {
      await this.abort();
      throw wrapWriteError(error, this.tempPath);
    }
  }

  private async digestFor(expected: Digest | undefined): Promise<Digest> {
    const algorithm = expected === undefined ? this.digester.algorithm : parseDigest(expected).algorithm;
    if (algorithm === this.digester.algorithm) return this.digester.digest();
    await this.io.syncFile(this.handle);
    const digester = new Digester(algorithm);
    for await (const chunk of readChunks(this.tempPath)) digester.update(chunk);
    return digester.digest();
  }

  /** Closes the file and keeps it, for an ingest that another process or a later request resumes. */
  async suspend(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.settle();
    await this.handle.close();
  }

  async abort(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      await this.settle();
      await this.handle.close().catch(() => undefined);
    }
    await rm(this.tempPath, { force: true });
  }
}
