import {
  AirlockError,
  Digester,
  digestOf,
  parseDigest,
  type Digest,
  type DigestAlgorithm,
} from "../../registry/oci/index.js";
import type {
  BlobInfo,
  ByteRange,
  CommittedBlob,
  ContentIngest,
  ContentStore,
  ExpectedBlob,
} from "../../registry/store/index.js";

/** Pieces a read is handed out in, as the file store's (1 MiB). */
const CHUNK_BYTES = 1024 * 1024;

function absent(digest: Digest): Error {
  return Object.assign(new Error(`blob ${digest} is absent`), { code: "ENOENT" });
}

/** A blob being written into memory: copies of the chunks, checked on commit like the file store's. */
class MemoryIngest implements ContentIngest {
  private readonly parts: Buffer[] = [];
  private readonly digester: Digester;

  constructor(
    private readonly store: MemoryBlobStore,
    algorithm: DigestAlgorithm,
  ) {
    this.digester = new Digester(algorithm);
  }

  get size(): number {
    return this.digester.size;
  }

  write(chunk: Uint8Array): Promise<void> {
    // Copied: a writer may reuse its buffer once the write resolved.
    this.parts.push(Buffer.from(chunk));
    this.digester.update(chunk);
    return Promise.resolve();
  }

  async commit(expected: ExpectedBlob = {}): Promise<CommittedBlob> {
    await Promise.resolve();
    const bytes = Buffer.concat(this.parts);
    this.parts.length = 0;
    const algorithm =
      expected.digest === undefined ? this.digester.algorithm : parseDigest(expected.digest).algorithm;
    const digest =
      algorithm === this.digester.algorithm ? this.digester.digest() : digestOf(bytes, algorithm);
    if (expected.size !== undefined && expected.size !== bytes.byteLength) {
      throw new AirlockError("SIZE_INVALID", `blob is ${bytes.byteLength} bytes, expected ${expected.size}`);
    }
    if (expected.digest !== undefined && expected.digest !== digest) {
      throw new AirlockError("DIGEST_MISMATCH", `content hashes to ${digest}, expected ${expected.digest}`);
    }
    return this.store.keep(digest, bytes);
  }

  abort(): Promise<void> {
    this.parts.length = 0;
    return Promise.resolve();
  }
}

/**
 * Blobs in a Map: the contract's second implementation, with no files, renames or temp names, so the
 * suite pins what a blob store does rather than how the file store happens to do it.
 */
export class MemoryBlobStore implements ContentStore {
  private readonly blobs = new Map<Digest, Buffer>();

  /** Makes a checked blob visible; the first copy of a digest stays. */
  keep(digest: Digest, bytes: Buffer): CommittedBlob {
    const created = !this.blobs.has(digest);
    if (created) this.blobs.set(digest, bytes);
    return { digest, size: bytes.byteLength, created };
  }

  async stat(digest: Digest): Promise<BlobInfo | undefined> {
    await Promise.resolve();
    parseDigest(digest);
    const bytes = this.blobs.get(digest);
    return bytes === undefined ? undefined : { digest, size: bytes.byteLength };
  }

  chunks(digest: Digest, range?: ByteRange): AsyncGenerator<Buffer> {
    parseDigest(digest);
    const blobs = this.blobs;
    return (async function* pieces(): AsyncGenerator<Buffer> {
      const bytes = blobs.get(digest);
      if (bytes === undefined) throw absent(digest);
      const end = range === undefined ? bytes.byteLength : range.end + 1;
      for (let offset = range?.start ?? 0; offset < end; offset += CHUNK_BYTES) {
        await Promise.resolve();
        yield bytes.subarray(offset, Math.min(offset + CHUNK_BYTES, end));
      }
    })();
  }

  async readSmall(digest: Digest, maxBytes: number): Promise<Buffer> {
    const info = await this.stat(digest);
    if (info === undefined) throw new AirlockError("BLOB_UNKNOWN", `blob ${digest} is not in the store`);
    if (info.size > maxBytes) {
      throw new AirlockError("BLOB_TOO_LARGE", `blob ${digest} is ${info.size} bytes, over ${maxBytes}`);
    }
    return Buffer.from(this.blobs.get(digest)!);
  }

  async *list(): AsyncIterable<Digest> {
    await Promise.resolve();
    yield* [...this.blobs.keys()].sort();
  }

  ingest(algorithm: DigestAlgorithm = "sha256"): Promise<ContentIngest> {
    return Promise.resolve(new MemoryIngest(this, algorithm));
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
    await Promise.resolve();
    parseDigest(digest);
    return this.blobs.delete(digest);
  }
}
