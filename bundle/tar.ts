import { open } from "node:fs/promises";
import { AirlockError } from "../registry/oci/index.js";
import {
  BLOCK,
  applyExtended,
  decodeHeader,
  encodeHeader,
  isZeroBlock,
  metadataBodySize,
  paddingFor,
  parsePax,
  readString,
  type TarHeaderFields,
  type TarHeaderInput,
} from "./tar-header.js";

export { BLOCK, MAX_METADATA_ENTRY_BYTES, encodeHeader, paddingFor, sealHeader } from "./tar-header.js";
export type { TarEntryType, TarHeaderInput } from "./tar-header.js";

/**
 * A minimal, strict tar codec over whole archives (tar-header.ts has one header's bytes). Reading: a
 * pull parser over a chunk stream that reports each entry's byte offset (so a bad entry can be traced
 * to a split part), its raw type (so links and devices are refused, not followed), its owner, mode and
 * mtime, and its raw header bytes (so a bundle's headers can be held to the ones build writes).
 */
const END_OF_ARCHIVE = new Uint8Array(BLOCK * 2);

export function endOfArchive(): Uint8Array {
  return END_OF_ARCHIVE;
}

/** Total bytes an entry takes in the archive: header(s), body and padding. */
export function entryLength(input: TarHeaderInput): number {
  return encodeHeader(input).byteLength + input.size + paddingFor(input.size);
}

export interface TarEntry extends TarHeaderFields {
  /** Byte offset of the entry's first header block in the whole archive. */
  offset: number;
  /** Byte offset of the entry's body. */
  dataOffset: number;
}

function truncated(offset: number): AirlockError {
  return new AirlockError("BUNDLE_TRUNCATED", `the archive ends early, at byte ${offset}`, {
    where: `byte ${offset}`,
    hint: "the file was cut short (an interrupted copy, or a missing part): copy it again",
  });
}

/**
 * Pulls bytes from a chunk stream: exact reads for headers, and zero-copy sub-chunks for bodies.
 * Keeps the absolute offset so callers can name positions in the whole archive.
 */
class ByteReader {
  private pending: Uint8Array = new Uint8Array(0);
  offset = 0;

  constructor(private readonly source: AsyncIterator<Uint8Array>) {}

  /** Takes the next chunk as the pending bytes; only called when nothing is pending. */
  private async fill(): Promise<boolean> {
    const next = await this.source.next();
    if (next.done === true) return false;
    this.pending = next.value;
    return true;
  }

  /**
   * Exactly n bytes, or undefined at a clean end of stream; throws when the stream ends mid-read.
   * Bytes straddling two chunks are copied (at most n of them), never a whole chunk.
   */
  async readExact(n: number): Promise<Uint8Array | undefined> {
    if (this.pending.byteLength === 0 && !(await this.fill())) return undefined;
    if (this.pending.byteLength >= n) {
      const out = this.pending.subarray(0, n);
      this.pending = this.pending.subarray(n);
      this.offset += n;
      return out;
    }
    const out = new Uint8Array(n);
    let filled = 0;
    while (filled < n) {
      if (this.pending.byteLength === 0 && !(await this.fill())) throw truncated(this.offset + filled);
      const take = Math.min(n - filled, this.pending.byteLength);
      out.set(this.pending.subarray(0, take), filled);
      this.pending = this.pending.subarray(take);
      filled += take;
    }
    this.offset += n;
    return out;
  }

  async *stream(n: number): AsyncGenerator<Uint8Array> {
    let left = n;
    while (left > 0) {
      if (this.pending.byteLength === 0 && !(await this.fill())) throw truncated(this.offset);
      const take = Math.min(left, this.pending.byteLength);
      const out = this.pending.subarray(0, take);
      this.pending = this.pending.subarray(take);
      this.offset += take;
      left -= take;
      yield out;
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) {
      /* draining */
    }
  }

  /** Ends the source early, so a file it reads is closed now rather than by the collector. */
  async close(): Promise<void> {
    await this.source.return?.(undefined);
  }
}

/** Where an entry's header records are read from: the archive's bytes in order, from `offset` on. */
interface HeaderSource {
  /** Absolute offset of the next byte `read` returns. */
  readonly offset: number;
  /** Exactly the next `length` bytes, or undefined where the archive ends cleanly. */
  read(length: number): Promise<Uint8Array | undefined>;
}

/** One entry's header with its PAX and long-name records applied, or where an end-of-archive block is. */
type HeaderChain =
  | { header: TarHeaderFields; offset: number; blocks: Uint8Array[] }
  | { header: undefined; zeroBlockAt: number };

/**
 * Reads the next entry's header: PAX `x` and GNU `L` records apply to the entry they precede. The
 * entry starts at its first record; `blocks` are copies of every header byte read, records included.
 */
async function readHeaderChain(source: HeaderSource): Promise<HeaderChain> {
  const start = source.offset;
  const blocks: Uint8Array[] = [];
  let pax = new Map<string, string>();
  let longName: string | undefined;
  for (;;) {
    const offset = source.offset;
    const block = await source.read(BLOCK);
    if (block === undefined) throw truncated(offset);
    if (isZeroBlock(block)) return { header: undefined, zeroBlockAt: offset };
    const raw = decodeHeader(block, offset);
    // Copies: a stream's chunks are reused once the next one is read.
    blocks.push(Uint8Array.from(block));
    const metadataSize = metadataBodySize(raw, offset);
    if (metadataSize === undefined) {
      return { header: applyExtended(raw, pax, longName, offset), offset: start, blocks };
    }
    const body = await source.read(metadataSize + paddingFor(metadataSize));
    if (body === undefined) throw truncated(source.offset);
    blocks.push(Uint8Array.from(body));
    if (raw.typeflag === "x") pax = parsePax(body.subarray(0, metadataSize), offset);
    else longName = readString(body, 0, metadataSize);
  }
}

export interface TarReadEntry extends TarEntry {
  /** Every header byte of the entry, PAX and long-name records included: offset up to dataOffset. */
  header: Uint8Array;
  /** The body, to be consumed before asking for the next entry; unread bytes are skipped. */
  body: AsyncGenerator<Uint8Array>;
}

/**
 * Streams the entries of a tar. PAX `x` and GNU `L` records are applied to the entry they precede.
 * Returns the offset just past the end-of-archive marker (two zero blocks, or a lone one, after which
 * GNU tar stops too), so a caller can tell whether bytes follow it.
 */
export async function* readTar(
  source: AsyncIterable<Uint8Array>,
): AsyncGenerator<TarReadEntry, number | undefined> {
  const reader = new ByteReader(source[Symbol.asyncIterator]());
  const headers: HeaderSource = {
    get offset() {
      return reader.offset;
    },
    read: (length) => reader.readExact(length),
  };
  try {
    for (;;) {
      const chain = await readHeaderChain(headers);
      if (chain.header === undefined) {
        const offset = chain.zeroBlockAt;
        const second = await reader.readExact(BLOCK);
        if (second === undefined) throw truncated(offset);
        return isZeroBlock(second) ? reader.offset : offset + BLOCK;
      }
      const { header, blocks } = chain;
      const headerBytes = blocks.length === 1 ? blocks[0]! : Buffer.concat(blocks);
      const size = header.size;
      let unread = size;
      const body = (async function* () {
        for await (const chunk of reader.stream(size)) {
          unread -= chunk.byteLength;
          yield chunk;
        }
      })();
      yield { ...header, offset: chain.offset, dataOffset: reader.offset, header: headerBytes, body };
      // A consumer may stop reading a body early; what it left is skipped, then the padding.
      await body.return(undefined);
      await reader.skip(unread);
      await reader.skip(paddingFor(size));
    }
  } finally {
    await reader.close();
  }
}

/**
 * Lists a tar file's entries by seeking from header to header, never reading bodies: an archive
 * source is indexed in milliseconds whatever its size, then bodies are read as byte ranges.
 */
export async function indexTarFile(path: string): Promise<Map<string, TarEntry>> {
  const handle = await open(path, "r");
  try {
    const readAt = async (position: number, length: number): Promise<Uint8Array> => {
      const buffer = Buffer.alloc(length);
      const { bytesRead } = await handle.read(buffer, 0, length, position);
      if (bytesRead !== length) throw truncated(position + bytesRead);
      return buffer;
    };
    return await indexTar(readAt, (await handle.stat()).size);
  } finally {
    await handle.close();
  }
}

/** indexTarFile over any positioned reader: a file, or the parts of a split bundle. */
export async function indexTar(
  readAt: (position: number, length: number) => Promise<Uint8Array>,
  size: number,
): Promise<Map<string, TarEntry>> {
  const entries = new Map<string, TarEntry>();
  const headers = {
    offset: 0,
    async read(length: number): Promise<Uint8Array> {
      if (this.offset + length > size) throw truncated(size);
      const bytes = await readAt(this.offset, length);
      this.offset += length;
      return bytes;
    },
  };
  for (;;) {
    const chain = await readHeaderChain(headers);
    if (chain.header === undefined) return entries;
    const { header } = chain;
    const name = header.name.replace(/^\.\//, "");
    entries.set(name, { ...header, name, offset: chain.offset, dataOffset: headers.offset });
    // Bodies are never read: the next header is past this one's body and padding.
    headers.offset += header.size + paddingFor(header.size);
  }
}
