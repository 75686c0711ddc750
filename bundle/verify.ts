import { basename } from "node:path";
import { AirlockError, Digester, digestOf, sha256Hex, type Digest } from "../registry/oci/index.js";
import type { OperationOptions, SignatureStatus } from "../registry/store/index.js";
import { readTar, type TarReadEntry } from "./tar.js";
import {
  checkArchiveEnd,
  checkEntryHeader,
  checkEntryName,
  describeEntryType,
  metadataInvalid,
} from "./entry-checks.js";
import { keyFingerprint, loadPublicKey, verifyBytes } from "./sign.js";
import { partAt, partMatches, readBundleBytes, resolveBundleInput, type BundleInput } from "./parts.js";
import {
  BLOB_DIR,
  DIRECTORY_MODE,
  MAX_METADATA_BYTES,
  METADATA_ENTRY,
  SIGNATURE_ENTRY,
  entryMtime,
  type BundleFile,
  type BundleMetadata,
} from "./format.js";

export { checkEntryName } from "./entry-checks.js";

export interface BundleHead {
  input: BundleInput;
  metadata: BundleMetadata;
  metadataBytes: Uint8Array;
  /** Digest of airlock.json: the bundle's identity. */
  digest: Digest;
  signature: Uint8Array | undefined;
}

export interface SignatureReport {
  status: SignatureStatus;
  keyFingerprint?: string;
}

export interface VerifyOptions extends OperationOptions {
  /** Public key that must have signed the bundle; without one a signature is reported as unchecked. */
  publicKey?: string | undefined;
}

export interface VerifyResult {
  bundle: string;
  name: string;
  version: string;
  digest: Digest;
  signature: SignatureReport;
  entries: number;
  bytes: number;
  parts: number;
  /** True when a hook ended the walk after the head (e.g. the bundle was already imported). */
  stoppedEarly: boolean;
}

/** Where an entry's verified bytes go (the store, for import); committed only after its digest checks. */
export interface EntrySink {
  write(chunk: Uint8Array): Promise<void>;
  /** The digest of what was written: a sink hashes as it writes, so the walk does not hash twice. */
  digest(): Digest;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

export interface WalkHooks {
  /** After the head and signature check; return false to stop without reading further. */
  onHead?(head: BundleHead, signature: SignatureReport): Promise<boolean>;
  openSink?(file: BundleFile): Promise<EntrySink | undefined>;
}

async function readEntryBytes(entry: TarReadEntry, max: number, where: string): Promise<Uint8Array> {
  if (entry.typeflag !== "0") throw metadataInvalid(`${entry.name} is not a regular file`, where);
  if (entry.size > max) throw metadataInvalid(`${entry.name} is ${entry.size} bytes, over ${max}`, where);
  const chunks: Uint8Array[] = [];
  // Copied: the reader reuses its buffers once the next chunk is asked for.
  for await (const chunk of entry.body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** Names the damaged part when a split bundle's entry does not match; undefined for single files. */
async function damagedPart(input: BundleInput, start: number, end: number): Promise<string | undefined> {
  if (input.parts.length < 2) return undefined;
  let offset = 0;
  const spanned = [];
  for (const part of input.parts) {
    if (offset < end && start < offset + part.size) spanned.push(part);
    offset += part.size;
  }
  if (spanned.length === 1) return basename(spanned[0]!.path);
  for (const part of spanned) if (!(await partMatches(part))) return basename(part.path);
  return spanned.map((part) => basename(part.path)).join(", ");
}

/** airlock.json and its signature: build writes them as plain 0644 files. */
const HEAD_ENTRY = { type: "file", mode: 0o644 } as const;

type TarEntries = AsyncGenerator<TarReadEntry, number | undefined>;

async function readHead(
  input: BundleInput,
  entries: TarEntries,
): Promise<{ head: BundleHead; next: IteratorResult<TarReadEntry, number | undefined> }> {
  const first = await entries.next();
  if (first.done === true || first.value.name !== METADATA_ENTRY) {
    throw new AirlockError("BUNDLE_METADATA_MISSING", "the first entry is not airlock.json", {
      where: input.label,
      hint: "this is not an Airlock bundle (or is a later part: name the first part)",
    });
  }
  const metadataBytes = await readEntryBytes(first.value, MAX_METADATA_BYTES, input.label);
  // zod loads on first use, so commands that never read a bundle do not pay for it.
  const { parseBundleMetadata } = await import("./metadata.js");
  const metadata = parseBundleMetadata(metadataBytes, input.label);
  const mtime = entryMtime(metadata.created);
  const checkHeadHeader = (entry: TarReadEntry): void =>
    checkEntryHeader(
      entry,
      { ...HEAD_ENTRY, name: entry.name, size: entry.size, mtime },
      locate(input, entry),
    );
  checkHeadHeader(first.value);
  let next = await entries.next();
  let signature: Uint8Array | undefined;
  if (next.done !== true && next.value.name === SIGNATURE_ENTRY) {
    signature = await readEntryBytes(next.value, 1024, input.label);
    checkHeadHeader(next.value);
    next = await entries.next();
  }
  return { head: { input, metadata, metadataBytes, digest: digestOf(metadataBytes), signature }, next };
}

/** Reads only a bundle's first entries: its metadata and signature. Fast whatever the bundle's size. */
export async function readBundleHead(paths: string[]): Promise<BundleHead> {
  const input = await resolveBundleInput(paths);
  const entries = readTar(readBundleBytes(input));
  try {
    return (await readHead(input, entries)).head;
  } finally {
    await entries.return(undefined);
  }
}

export async function checkSignature(
  head: BundleHead,
  publicKeyPath: string | undefined,
): Promise<SignatureReport> {
  if (publicKeyPath === undefined) return { status: head.signature === undefined ? "unsigned" : "unchecked" };
  const key = await loadPublicKey(publicKeyPath);
  if (head.signature === undefined) {
    throw new AirlockError("BUNDLE_UNSIGNED", "the bundle is not signed, but a key was given", {
      where: head.input.label,
      hint: "ask the vendor for a signed bundle; without --key an unsigned bundle is accepted",
    });
  }
  if (!verifyBytes(head.metadataBytes, head.signature, key)) {
    throw new AirlockError(
      "BUNDLE_SIGNATURE_INVALID",
      "the signature does not match airlock.json with this key",
      {
        where: head.input.label,
        hint: "the bundle was signed with another key or was altered: check --key, and the bundle's origin",
      },
    );
  }
  return { status: "verified", keyFingerprint: keyFingerprint(key) };
}

/** What the walk checks the entries after the head against. */
interface Expectations {
  input: BundleInput;
  files: Map<string, BundleFile>;
  directories: Set<string>;
  seen: Set<string>;
  /** Every header's mtime: the bundle's created time. */
  mtime: number;
}

function expectationsOf(head: BundleHead): Expectations {
  const files = new Map(head.metadata.files.map((file) => [file.path, file]));
  // blobs/sha256/ belongs to every OCI layout, even a delta's that carries no blob (build writes it).
  const directories = new Set<string>(["blobs/", BLOB_DIR]);
  for (const path of files.keys()) {
    const parts = path.split("/");
    for (let i = 1; i < parts.length; i++) directories.add(`${parts.slice(0, i).join("/")}/`);
  }
  return { input: head.input, files, directories, seen: new Set(), mtime: entryMtime(head.metadata.created) };
}

/** `name`, or `name in part X` for a split bundle: where verify errors point. */
function locate(input: BundleInput, entry: TarReadEntry): string {
  const part = partAt(input, entry.offset);
  return part === undefined ? entry.name : `${entry.name} in part ${part}`;
}

/**
 * Checks an entry's name, type, listing, size and header before any of its body is read; returns
 * the file it is, or undefined for a directory, which has no body.
 */
function checkEntry(entry: TarReadEntry, expected: Expectations): BundleFile | undefined {
  const where = locate(expected.input, entry);
  checkEntryName(entry.name, where);
  const { mtime } = expected;
  if (entry.typeflag === "5") {
    const dir = entry.name.endsWith("/") ? entry.name : `${entry.name}/`;
    if (!expected.directories.has(dir)) {
      throw new AirlockError("BUNDLE_ENTRY_UNKNOWN", `directory ${entry.name} is not part of the bundle`, {
        where,
        hint: "the bundle was altered after it was built: get it again from the vendor",
      });
    }
    checkEntryHeader(entry, { name: dir, type: "directory", mode: DIRECTORY_MODE, size: 0, mtime }, where);
    return undefined;
  }
  if (entry.typeflag !== "0") {
    throw new AirlockError(
      "BUNDLE_ENTRY_UNSAFE",
      `entry ${entry.name} is ${describeEntryType(entry.typeflag)}`,
      {
        where,
        hint: "bundles hold regular files only: this one was tampered with; do not use it",
      },
    );
  }
  const file = expected.files.get(entry.name);
  if (file === undefined || expected.seen.has(entry.name)) {
    throw new AirlockError(
      file === undefined ? "BUNDLE_ENTRY_UNKNOWN" : "BUNDLE_ENTRY_DUPLICATE",
      file === undefined
        ? `entry ${entry.name} is not listed in airlock.json`
        : `entry ${entry.name} appears twice`,
      { where, hint: "the bundle was altered after it was built: get it again from the vendor" },
    );
  }
  expected.seen.add(entry.name);
  if (entry.size !== file.size) {
    throw new AirlockError(
      "BUNDLE_ENTRY_CORRUPT",
      `${entry.name} is ${entry.size} bytes, airlock.json says ${file.size}`,
      { where, hint: "the bundle is damaged: copy it again" },
    );
  }
  checkEntryHeader(entry, { name: file.path, type: "file", mode: file.mode, size: file.size, mtime }, where);
  return file;
}

/** Streams an entry's body into the sink (or a digester), then holds it to its sha256. */
async function passEntry(
  entry: TarReadEntry,
  file: BundleFile,
  input: BundleInput,
  options: VerifyOptions,
  hooks: WalkHooks,
): Promise<void> {
  const sink = hooks.openSink === undefined ? undefined : await hooks.openSink(file);
  try {
    const digester = sink === undefined ? new Digester() : undefined;
    let read = 0;
    for await (const chunk of entry.body) {
      options.signal?.throwIfAborted();
      if (sink === undefined) digester!.update(chunk);
      else await sink.write(chunk);
      read += chunk.byteLength;
      options.onProgress?.({
        phase: "verify",
        done: entry.dataOffset + read,
        total: input.size,
        item: entry.name,
      });
    }
    if (sha256Hex(sink?.digest() ?? digester!.digest()) !== file.sha256) {
      const part = await damagedPart(input, entry.dataOffset, entry.dataOffset + entry.size);
      throw new AirlockError(
        "BUNDLE_ENTRY_CORRUPT",
        `${entry.name} does not match its sha256 in airlock.json`,
        {
          where: part === undefined ? entry.name : `${entry.name} in part ${part}`,
          hint:
            part === undefined
              ? "the bundle is damaged: copy it again"
              : `part ${part} is damaged: copy that part again`,
        },
      );
    }
    await sink?.commit();
  } catch (error) {
    await sink?.abort();
    if (error instanceof AirlockError && error.code === "BUNDLE_TRUNCATED") {
      throw new AirlockError(error.code, `${error.message}, inside ${entry.name}`, {
        where: locate(input, entry),
        hint: error.hint,
      });
    }
    throw error;
  }
}

/** A parse failure of a split bundle named without its parts.json most likely means parts out of order. */
function explainPartsError(error: unknown, input: BundleInput): unknown {
  if (!(error instanceof AirlockError) || input.parts.length < 2) return error;
  const partsUnchecked = input.parts.some((part) => part.expected === undefined);
  const parseFailures = [
    "BUNDLE_TRUNCATED",
    "BUNDLE_CORRUPT",
    "BUNDLE_METADATA_MISSING",
    "BUNDLE_TRAILING_DATA",
  ];
  if (partsUnchecked && parseFailures.includes(error.code)) {
    // Without .parts.json nothing checked the parts' order or sizes: that is the likeliest cause.
    return new AirlockError(error.code, `${error.message} (in parts named without their .parts.json)`, {
      where: error.where ?? input.label,
      hint: "name the parts in order (…001, …002, …), or put the .parts.json that came with them beside the first",
    });
  }
  if (error.code === "BUNDLE_TRUNCATED") {
    return new AirlockError(error.code, `${error.message}: a part is short or missing`, {
      where: error.where ?? input.label,
      hint: "copy every part again; `.parts.json` lists their sizes and sha256",
    });
  }
  return error;
}

/**
 * One streaming pass over a bundle: the signature first, then every entry's name, type, size, tar
 * header and digest against airlock.json, and nothing after the end of the archive. Entries are handed
 * to `hooks.openSink` as they pass; a sink is committed only after its entry checks.
 */
export async function walkBundle(
  paths: string[],
  options: VerifyOptions = {},
  hooks: WalkHooks = {},
): Promise<VerifyResult> {
  const input = await resolveBundleInput(paths);
  const entries = readTar(readBundleBytes(input, options.signal));
  try {
    const { head, next: firstBodyEntry } = await readHead(input, entries);
    const signature = await checkSignature(head, options.publicKey);
    const result: VerifyResult = {
      bundle: input.label,
      name: head.metadata.name,
      version: head.metadata.version,
      digest: head.digest,
      signature,
      entries: 0,
      bytes: input.size,
      parts: input.parts.length,
      stoppedEarly: false,
    };
    if (hooks.onHead !== undefined && !(await hooks.onHead(head, signature)))
      return { ...result, stoppedEarly: true };

    const expected = expectationsOf(head);
    let current = firstBodyEntry;
    for (; current.done !== true; current = await entries.next()) {
      const file = checkEntry(current.value, expected);
      if (file === undefined) continue;
      await passEntry(current.value, file, input, options, hooks);
      result.entries++;
    }
    checkArchiveEnd(current.value!, input);
    const missing = head.metadata.files.find((file) => !expected.seen.has(file.path));
    if (missing !== undefined) {
      throw new AirlockError(
        "BUNDLE_ENTRY_MISSING",
        `${missing.path} is listed in airlock.json but not in the bundle`,
        { where: input.label, hint: "the bundle is incomplete: copy it again" },
      );
    }
    options.onProgress?.({ phase: "verify", done: input.size, total: input.size });
    return result;
  } catch (error) {
    throw explainPartsError(error, input);
  } finally {
    await entries.return(undefined);
  }
}

export function verifyBundle(paths: string[], options: VerifyOptions = {}): Promise<VerifyResult> {
  return walkBundle(paths, options);
}
