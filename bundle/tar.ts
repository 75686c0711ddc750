import { open } from "node:fs/promises";
import { AirlockError } from "../registry/oci/index.js";

/**
 * A minimal, strict tar codec. Writing: ustar headers with fixed owner, mode and mtime so the same
 * inputs give the same bytes, PAX records only for names over 100 bytes or sizes over 8 GiB.
 * Reading: a pull parser over a chunk stream that reports each entry's byte offset (so a bad entry
 * can be traced to a split part) and its raw type (so links and devices are refused, not followed).
 */
export const BLOCK = 512;
const END_OF_ARCHIVE = new Uint8Array(BLOCK * 2);
const MAX_OCTAL_SIZE = 8 ** 11 - 1;

export type TarEntryType = "file" | "directory";

export interface TarHeaderInput {
  name: string;
  size: number;
  mode: number;
  type: TarEntryType;
  mtime: number;
}

function writeString(block: Uint8Array, text: string, offset: number, length: number): void {
  const bytes = new TextEncoder().encode(text);
  block.set(bytes.subarray(0, length), offset);
}

function writeOctal(block: Uint8Array, value: number, offset: number, length: number): void {
  writeString(block, value.toString(8).padStart(length - 1, "0") + "\0", offset, length);
}

function checksum(block: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : block[i]!;
  return sum;
}

function ustarBlock(name: string, size: number, mode: number, typeflag: string, mtime: number): Uint8Array {
  const block = new Uint8Array(BLOCK);
  writeString(block, name, 0, 100);
  writeOctal(block, mode, 100, 8);
  writeOctal(block, 0, 108, 8);
  writeOctal(block, 0, 116, 8);
  writeOctal(block, size, 124, 12);
  writeOctal(block, mtime, 136, 12);
  writeString(block, typeflag, 156, 1);
  writeString(block, "ustar\0", 257, 6);
  writeString(block, "00", 263, 2);
  writeString(block, checksum(block).toString(8).padStart(6, "0") + "\0 ", 148, 8);
  return block;
}

/** A PAX record `<length> key=value\n`; the length counts bytes (UTF-8), its own digits included. */
function paxRecord(key: string, value: string): string {
  const body = ` ${key}=${value}\n`;
  const bodyBytes = new TextEncoder().encode(body).byteLength;
  let length = bodyBytes + 1;
  while (String(length).length + bodyBytes !== length) length = String(length).length + bodyBytes;
  return `${length}${body}`;
}

export function paddingFor(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

/** The header bytes (PAX record included when needed) for one entry. */
export function encodeHeader(input: TarHeaderInput): Uint8Array {
  const name = input.type === "directory" && !input.name.endsWith("/") ? `${input.name}/` : input.name;
  const typeflag = input.type === "directory" ? "5" : "0";
  const nameBytes = new TextEncoder().encode(name).byteLength;
  const pax: string[] = [];
  if (nameBytes > 100) pax.push(paxRecord("path", name));
  if (input.size > MAX_OCTAL_SIZE) pax.push(paxRecord("size", String(input.size)));
  const main = ustarBlock(
    nameBytes > 100 ? name.slice(0, 99) : name,
    input.size > MAX_OCTAL_SIZE ? 0 : input.size,
    input.mode,
    typeflag,
    input.mtime,
  );
  if (pax.length === 0) return main;
  const paxBody = new TextEncoder().encode(pax.join(""));
  const paxHeader = ustarBlock("PaxHeader", paxBody.byteLength, 0o644, "x", input.mtime);
  const out = new Uint8Array(BLOCK + paxBody.byteLength + paddingFor(paxBody.byteLength) + BLOCK);
  out.set(paxHeader, 0);
  out.set(paxBody, BLOCK);
  out.set(main, out.byteLength - BLOCK);
  return out;
}

export function endOfArchive(): Uint8Array {
  return END_OF_ARCHIVE;
}

/** Total bytes an entry takes in the archive: header(s), body and padding. */
export function entryLength(input: TarHeaderInput): number {
  return encodeHeader(input).byteLength + input.size + paddingFor(input.size);
}

export interface TarEntry {
  name: string;
  size: number;
  mode: number;
  /** The raw typeflag character: "0" file, "5" directory, "2" symlink, … */
  typeflag: string;
  linkname: string;
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

function corruptHeader(offset: number, why: string): AirlockError {
  return new AirlockError("BUNDLE_CORRUPT", `the tar header at byte ${offset} is not valid: ${why}`, {
    where: `byte ${offset}`,
    hint: "the file is damaged or is not an Airlock bundle: copy it again from the source",
  });
}

function readString(block: Uint8Array, offset: number, length: number): string {
  const slice = block.subarray(offset, offset + length);
  const end = slice.indexOf(0);
  return new TextDecoder().decode(end === -1 ? slice : slice.subarray(0, end));
}

function readOctal(block: Uint8Array, offset: number, length: number, at: number): number {
  const text = readString(block, offset, length).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw corruptHeader(at, `field at ${offset} is not octal`);
  return parseInt(text, 8);
}

function parsePax(body: Uint8Array, at: number): Map<string, string> {
  const records = new Map<string, string>();
  const decoder = new TextDecoder();
  let position = 0;
  // Record lengths count bytes, so records are split on the bytes before any UTF-8 decoding.
  while (position < body.byteLength) {
    const space = body.indexOf(0x20, position);
    const length = Number(decoder.decode(body.subarray(position, space)));
    if (
      space < 0 ||
      !Number.isInteger(length) ||
      length <= space - position ||
      position + length > body.byteLength ||
      body[position + length - 1] !== 0x0a
    ) {
      throw corruptHeader(at, "bad PAX record");
    }
    const record = decoder.decode(body.subarray(space + 1, position + length - 1));
    const equals = record.indexOf("=");
    if (equals < 0) throw corruptHeader(at, "bad PAX record");
    records.set(record.slice(0, equals), record.slice(equals + 1));
    position += length;
  }
  return records;
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

export interface TarReadEntry extends TarEntry {
  /** The body, to be consumed before asking for the next entry; unread bytes are skipped. */
  body: AsyncGenerator<Uint8Array>;
}

function isZeroBlock(block: Uint8Array): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

interface DecodedHeader {
  typeflag: string;
  size: number;
  mode: number;
  linkname: string;
  /** The ustar name, prefix applied; PAX and GNU long names override it. */
  name: string;
}

function decodeHeader(block: Uint8Array, offset: number): DecodedHeader {
  const expectedSum = readOctal(block, 148, 8, offset);
  if (expectedSum !== checksum(block)) throw corruptHeader(offset, "checksum mismatch");
  const flag = String.fromCharCode(block[156]!);
  // Only POSIX ustar ("ustar\0") has a name prefix; GNU headers ("ustar  \0") keep atime and ctime there.
  const prefix = readString(block, 257, 6) === "ustar" ? readString(block, 345, 155) : "";
  const baseName = readString(block, 0, 100);
  return {
    typeflag: flag === "\0" ? "0" : flag,
    size: readOctal(block, 124, 12, offset),
    mode: readOctal(block, 100, 8, offset),
    linkname: readString(block, 157, 100),
    name: prefix === "" ? baseName : `${prefix}/${baseName}`,
  };
}

/** Applies a preceding PAX or GNU long-name record to a header. */
function applyExtended(
  header: DecodedHeader,
  pax: Map<string, string>,
  longName: string | undefined,
): DecodedHeader {
  const size = pax.get("size");
  return {
    ...header,
    name: pax.get("path") ?? longName ?? header.name,
    size: size === undefined ? header.size : Number(size),
  };
}

/** Streams the entries of a tar. PAX `x` and GNU `L` records are applied to the entry they precede. */
export async function* readTar(source: AsyncIterable<Uint8Array>): AsyncGenerator<TarReadEntry> {
  const reader = new ByteReader(source[Symbol.asyncIterator]());
  try {
    let pax = new Map<string, string>();
    let longName: string | undefined;
    let entryStart: number | undefined;
    for (;;) {
      const offset = reader.offset;
      entryStart ??= offset;
      const block = await reader.readExact(BLOCK);
      if (block === undefined) throw truncated(offset);
      if (isZeroBlock(block)) {
        const second = await reader.readExact(BLOCK);
        if (second === undefined || !isZeroBlock(second)) throw truncated(offset);
        return;
      }
      const raw = decodeHeader(block, offset);
      if (raw.typeflag === "x" || raw.typeflag === "L") {
        const body = await reader.readExact(raw.size + paddingFor(raw.size));
        if (body === undefined) throw truncated(reader.offset);
        if (raw.typeflag === "x") pax = parsePax(body.subarray(0, raw.size), offset);
        else longName = readString(body, 0, raw.size);
        continue;
      }
      const header = applyExtended(raw, pax, longName);
      pax = new Map();
      longName = undefined;
      const size = header.size;
      let unread = size;
      const body = (async function* () {
        for await (const chunk of reader.stream(size)) {
          unread -= chunk.byteLength;
          yield chunk;
        }
      })();
      yield { ...header, offset: entryStart, dataOffset: reader.offset, body };
      entryStart = undefined;
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
  let offset = 0;
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let entryStart = 0;
  while (offset + BLOCK <= size) {
    const block = await readAt(offset, BLOCK);
    if (isZeroBlock(block)) return entries;
    const raw = decodeHeader(block, offset);
    const dataOffset = offset + BLOCK;
    const next = dataOffset + raw.size + paddingFor(raw.size);
    if (raw.typeflag === "x" || raw.typeflag === "L") {
      const body = await readAt(dataOffset, raw.size);
      if (raw.typeflag === "x") pax = parsePax(body, offset);
      else longName = readString(body, 0, raw.size);
      offset = next;
      continue;
    }
    const header = applyExtended(raw, pax, longName);
    pax = new Map();
    longName = undefined;
    const name = header.name.replace(/^\.\//, "");
    entries.set(name, { ...header, name, offset: entryStart, dataOffset });
    offset = dataOffset + header.size + paddingFor(header.size);
    entryStart = offset;
  }
  throw truncated(size);
}
