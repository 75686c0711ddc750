import { basename } from "node:path";
import {
  AirlockError,
  Digester,
  sha256Hex,
  type Digest,
  type ErrorCode,
  type OperationOptions,
} from "../registry/oci/index.js";
import { readTar, type TarReadEntry } from "./tar.js";
import { checkArchiveEnd, checkEntryHeader, checkEntryName, describeEntryType } from "./entry-checks.js";
import {
  arrivingBundleInput,
  partMatches,
  readBundleBytes,
  resolveBundleInput,
  type ArrivingBundle,
  type BundleInput,
} from "./parts.js";
import {
  checkSignature,
  locate,
  readHead,
  type BundleHead,
  type SignatureReport,
  type TarEntries,
} from "./head.js";
import { BLOB_DIR, DIRECTORY_MODE, entryMtime, type BundleFile } from "./format.js";

export { checkEntryName } from "./entry-checks.js";
export { checkSignature, readBundleHead, type BundleHead, type SignatureReport } from "./head.js";

export interface VerifyOptions extends OperationOptions {
  /** Public key that must have signed the bundle; without one a signature is reported as unchecked. */
  publicKey?: string | undefined;
  /** The one file named is still being written: read it as it arrives (see ArrivingBundle). */
  arriving?: ArrivingBundle | undefined;
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
  /** True when the reader stopped after the head (e.g. the bundle was already imported). */
  stoppedEarly: boolean;
}

/** Where an entry's body can be streamed: something that hashes what it writes (a store ingest). */
export interface HashingWriter {
  /**
   * Hashes the chunk and resolves once it is written. The walk gives the next chunk before awaiting
   * the previous one: writes must land in the order given, and a chunk stays valid until its write ends.
   */
  write(chunk: Uint8Array): Promise<void>;
  /** The digest of what was written, which the walk holds to airlock.json. */
  digest(): Digest;
}

/**
 * An entry whose name, type, listing, size and tar header have checked; its body has not yet. Its
 * body is read once, by `verify` or `writeTo`, each of which returns only when it matched its sha256.
 * An entry left unread is verified by the walk before it yields the next one.
 */
export interface VerifiedEntry {
  file: BundleFile;
  verify(): Promise<void>;
  /** Streams the body into `writer` (no second hash: the writer's digest is checked). */
  writeTo(writer: HashingWriter): Promise<void>;
}

/** A bundle being read: its head (signature checked), then its entries in archive order. */
export interface BundleWalk {
  head: BundleHead;
  signature: SignatureReport;
  /**
   * Every entry after the head. Iteration ends only when the whole archive checked: nothing after its
   * end, nothing listed missing. Entries are yielded once each; the chunks they pass are valid until
   * the one after next is read (see readChunks).
   */
  entries(): AsyncGenerator<VerifiedEntry, void>;
  /** What was verified: every entry once `entries()` ended, or only the head (stoppedEarly). */
  result(): VerifyResult;
  /** Closes the bundle's files; a walk stopped after its head reads nothing more. */
  close(): Promise<void>;
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

const ALTERED = "the bundle was altered after it was built: get it again from the vendor";

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
        hint: ALTERED,
      });
    }
    checkEntryHeader(entry, { name: dir, type: "directory", mode: DIRECTORY_MODE, size: 0, mtime }, where);
    return undefined;
  }
  if (entry.typeflag !== "0") {
    throw new AirlockError(
      "BUNDLE_ENTRY_UNSAFE",
      `entry ${entry.name} is ${describeEntryType(entry.typeflag)}`,
      { where, hint: "bundles hold regular files only: this one was tampered with; do not use it" },
    );
  }
  const file = expected.files.get(entry.name);
  if (file === undefined || expected.seen.has(entry.name)) {
    throw new AirlockError(
      file === undefined ? "BUNDLE_ENTRY_UNKNOWN" : "BUNDLE_ENTRY_DUPLICATE",
      file === undefined
        ? `entry ${entry.name} is not listed in airlock.json`
        : `entry ${entry.name} appears twice`,
      { where, hint: ALTERED },
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

/** Errors already explained, which reach the walk again when it checks an entry the consumer failed. */
const explained = new WeakSet<AirlockError>();

/** A parse failure of a split bundle named without its parts.json most likely means parts out of order. */
function explainPartsError(error: unknown, input: BundleInput): unknown {
  if (!(error instanceof AirlockError) || input.parts.length < 2 || explained.has(error)) return error;
  const explanation = partsExplanation(error, input);
  explained.add(explanation);
  return explanation;
}

function partsExplanation(error: AirlockError, input: BundleInput): AirlockError {
  const partsUnchecked = input.parts.some((part) => part.expected === undefined);
  const parseFailures: ErrorCode[] = [
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

/** A body that ends early names its entry (and part), then what the parts may explain. */
function explainBodyError(error: unknown, entry: TarReadEntry, input: BundleInput): unknown {
  if (error instanceof AirlockError && error.code === "BUNDLE_TRUNCATED") {
    const named = new AirlockError(error.code, `${error.message}, inside ${entry.name}`, {
      where: locate(input, entry),
      hint: error.hint,
    });
    return explainPartsError(named, input);
  }
  return explainPartsError(error, input);
}

async function checkDigest(entry: TarReadEntry, file: BundleFile, digest: Digest, input: BundleInput) {
  if (sha256Hex(digest) === file.sha256) return;
  const part = await damagedPart(input, entry.dataOffset, entry.dataOffset + entry.size);
  throw new AirlockError("BUNDLE_ENTRY_CORRUPT", `${entry.name} does not match its sha256 in airlock.json`, {
    where: part === undefined ? entry.name : `${entry.name} in part ${part}`,
    hint:
      part === undefined
        ? "the bundle is damaged: copy it again"
        : `part ${part} is damaged: copy that part again`,
  });
}

/** An entry whose body is read at most once, into a writer or a digester, and held to its sha256. */
class EntryBody implements VerifiedEntry {
  /** Settled once the body was read and checked; rejected with what failed. */
  private outcome: Promise<void> | undefined;

  constructor(
    readonly file: BundleFile,
    private readonly entry: TarReadEntry,
    private readonly input: BundleInput,
    private readonly options: VerifyOptions,
  ) {}

  verify(): Promise<void> {
    const digester = new Digester();
    return this.writeTo({
      write: (chunk) => Promise.resolve(digester.update(chunk)),
      digest: () => digester.digest(),
    });
  }

  writeTo(writer: HashingWriter): Promise<void> {
    if (this.outcome !== undefined)
      return Promise.reject(new Error(`${this.file.path}: its body was already read`));
    this.outcome = this.pass(writer);
    return this.outcome;
  }

  /** For the walk: checks an unread body, and fails again with what failed the consumer's read. */
  finish(): Promise<void> {
    return this.outcome ?? this.verify();
  }

  private async pass(writer: HashingWriter): Promise<void> {
    const { entry, input, options } = this;
    try {
      let read = 0;
      // The write of the chunk before: awaited only after this chunk is handed over, so the writer
      // hashes this one while that one is written. Its buffer is reused by the read after next.
      let previous: Promise<void> = Promise.resolve();
      for await (const chunk of entry.body) {
        options.signal?.throwIfAborted();
        const writing = writer.write(chunk);
        writing.catch(() => undefined);
        await previous;
        previous = writing;
        read += chunk.byteLength;
        options.onProgress?.({
          phase: "verify",
          done: entry.dataOffset + read,
          total: input.size,
          item: entry.name,
        });
      }
      await previous;
      await checkDigest(entry, this.file, writer.digest(), input);
    } catch (error) {
      throw explainBodyError(error, entry, input);
    }
  }
}

async function* walkEntries(
  head: BundleHead,
  entries: TarEntries,
  first: IteratorResult<TarReadEntry, number | undefined>,
  options: VerifyOptions,
  counted: { entries: number },
): AsyncGenerator<VerifiedEntry, void> {
  const { input } = head;
  try {
    const expected = expectationsOf(head);
    let current = first;
    for (; current.done !== true; current = await entries.next()) {
      const file = checkEntry(current.value, expected);
      if (file === undefined) continue;
      const body = new EntryBody(file, current.value, input, options);
      yield body;
      await body.finish();
      counted.entries++;
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
  } catch (error) {
    throw explainPartsError(error, input);
  }
}

/**
 * Opens a bundle for one streaming pass: reads its head and checks the signature, then
 * `entries()` holds every entry's name, type, size, tar header and digest to airlock.json.
 */
export async function openBundle(paths: string[], options: VerifyOptions = {}): Promise<BundleWalk> {
  const input =
    options.arriving === undefined
      ? await resolveBundleInput(paths)
      : arrivingBundleInput(paths[0]!, options.arriving);
  const tar = readTar(readBundleBytes(input, options.signal));
  try {
    const { head, next } = await readHead(input, tar);
    const signature = await checkSignature(head, options.publicKey);
    const counted = { entries: 0 };
    let state: "head" | "walking" | "done" = "head";
    return {
      head,
      signature,
      async *entries() {
        if (state !== "head") throw new Error("a bundle's entries are walked once");
        state = "walking";
        yield* walkEntries(head, tar, next, options, counted);
        state = "done";
      },
      result: () => ({
        bundle: input.label,
        name: head.metadata.name,
        version: head.metadata.version,
        digest: head.digest,
        signature,
        entries: counted.entries,
        bytes: input.size,
        parts: input.parts.length,
        stoppedEarly: state !== "done",
      }),
      close: async () => void (await tar.return(undefined)),
    };
  } catch (error) {
    await tar.return(undefined);
    throw explainPartsError(error, input);
  }
}

/**
 * One streaming pass over a bundle: the signature first, then every entry's name, type, size, tar
 * header and digest against airlock.json, and nothing after the end of the archive.
 */
export async function verifyBundle(paths: string[], options: VerifyOptions = {}): Promise<VerifyResult> {
  const walk = await openBundle(paths, options);
  try {
    for await (const entry of walk.entries()) await entry.verify();
    return walk.result();
  } finally {
    await walk.close();
  }
}
