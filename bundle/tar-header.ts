import { AirlockError } from "../registry/oci/index.js";

/**
 * One tar header, both ways. Writing: ustar blocks with fixed owner (0/0, no names), mode and mtime
 * so the same inputs give the same bytes, and a PAX record only for names over 100 bytes or sizes
 * over 8 GiB. Reading: ustar, GNU and PAX headers with the hardening node-tar has (metadata entries
 * capped, GNU base-256 numbers read).
 */
export const BLOCK = 512;
const MAX_OCTAL_SIZE = 8 ** 11 - 1;
/** A PAX or GNU long-name body above this is refused before it is read (node-tar's cap). */
export const MAX_METADATA_ENTRY_BYTES = 1024 * 1024;

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

/** Writes a header's checksum field for its current bytes. */
export function sealHeader(block: Uint8Array): void {
  writeString(block, checksum(block).toString(8).padStart(6, "0") + "\0 ", 148, 8);
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
  sealHeader(block);
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

export function corruptHeader(offset: number, why: string): AirlockError {
  return new AirlockError("BUNDLE_CORRUPT", `the tar header at byte ${offset} is not valid: ${why}`, {
    where: `byte ${offset}`,
    hint: "the file is damaged or is not an Airlock bundle: copy it again from the source",
  });
}

export function readString(block: Uint8Array, offset: number, length: number): string {
  const slice = block.subarray(offset, offset + length);
  const end = slice.indexOf(0);
  return new TextDecoder().decode(end === -1 ? slice : slice.subarray(0, end));
}

/**
 * A numeric field: octal text, or GNU base-256 (first byte 0x80, then a big-endian number), which
 * GNU tar writes for sizes over 8 GiB and ids over 2097151. Negative numbers (0xff) are refused.
 */
function readNumber(block: Uint8Array, offset: number, length: number, at: number): number {
  const first = block[offset]!;
  if ((first & 0x80) !== 0) {
    if (first !== 0x80)
      throw corruptHeader(at, `field at ${offset} is a negative or malformed base-256 number`);
    let value = 0n;
    for (let i = offset + 1; i < offset + length; i++) value = (value << 8n) | BigInt(block[i]!);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw corruptHeader(at, `field at ${offset} is too large`);
    return Number(value);
  }
  const text = readString(block, offset, length).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw corruptHeader(at, `field at ${offset} is not octal`);
  return parseInt(text, 8);
}

export function parsePax(body: Uint8Array, at: number): Map<string, string> {
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

export function isZeroBlock(block: Uint8Array): boolean {
  for (const byte of block) if (byte !== 0) return false;
  return true;
}

/** What a header says of its entry, as tar would apply it on extraction. */
export interface TarHeaderFields {
  /** The raw typeflag character: "0" file, "5" directory, "2" symlink, … */
  typeflag: string;
  /** The ustar name, prefix applied; PAX and GNU long names override it. */
  name: string;
  size: number;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  gname: string;
  /** Seconds since the epoch; a PAX record may give a fraction. */
  mtime: number;
  linkname: string;
}

export function decodeHeader(block: Uint8Array, offset: number): TarHeaderFields {
  const expectedSum = readNumber(block, 148, 8, offset);
  if (expectedSum !== checksum(block)) throw corruptHeader(offset, "checksum mismatch");
  const flag = String.fromCharCode(block[156]!);
  const magic = readString(block, 257, 6);
  // Only POSIX ustar ("ustar\0") has a name prefix; GNU headers ("ustar  \0") keep atime and ctime there.
  const prefix = magic === "ustar" ? readString(block, 345, 155) : "";
  const baseName = readString(block, 0, 100);
  const hasOwnerNames = magic.startsWith("ustar");
  return {
    typeflag: flag === "\0" ? "0" : flag,
    name: prefix === "" ? baseName : `${prefix}/${baseName}`,
    size: readNumber(block, 124, 12, offset),
    mode: readNumber(block, 100, 8, offset),
    uid: readNumber(block, 108, 8, offset),
    gid: readNumber(block, 116, 8, offset),
    uname: hasOwnerNames ? readString(block, 265, 32) : "",
    gname: hasOwnerNames ? readString(block, 297, 32) : "",
    mtime: readNumber(block, 136, 12, offset),
    linkname: readString(block, 157, 100),
  };
}

/** A metadata entry (PAX `x`, GNU long name `L`) whose body must be read before the entry it describes. */
export function metadataBodySize(header: TarHeaderFields, offset: number): number | undefined {
  if (header.typeflag !== "x" && header.typeflag !== "L") return undefined;
  if (header.size > MAX_METADATA_ENTRY_BYTES) {
    const kind = header.typeflag === "x" ? "PAX header" : "GNU long name";
    throw corruptHeader(
      offset,
      `a ${kind} of ${header.size} bytes is over the ${MAX_METADATA_ENTRY_BYTES}-byte limit`,
    );
  }
  return header.size;
}

function paxNumber(
  pax: Map<string, string>,
  key: string,
  fallback: number,
  at: number,
  fraction = false,
): number {
  const text = pax.get(key);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!(fraction ? /^\d+(\.\d+)?$/ : /^\d+$/).test(text) || value > Number.MAX_SAFE_INTEGER) {
    throw corruptHeader(at, `PAX ${key} ${JSON.stringify(text)} is not a number tar accepts`);
  }
  return value;
}

/** Applies a preceding PAX or GNU long-name record to a header. */
export function applyExtended(
  header: TarHeaderFields,
  pax: Map<string, string>,
  longName: string | undefined,
  at: number,
): TarHeaderFields {
  return {
    ...header,
    name: pax.get("path") ?? longName ?? header.name,
    size: paxNumber(pax, "size", header.size, at),
    uid: paxNumber(pax, "uid", header.uid, at),
    gid: paxNumber(pax, "gid", header.gid, at),
    uname: pax.get("uname") ?? header.uname,
    gname: pax.get("gname") ?? header.gname,
    mtime: paxNumber(pax, "mtime", header.mtime, at, true),
    linkname: pax.get("linkpath") ?? header.linkname,
  };
}
