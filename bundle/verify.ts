import { basename } from "node:path";
import { AirlockError, Digester, digestOf, isDigest, sha256Hex, type Digest } from "../registry/oci/index.js";
import type { OperationOptions, SignatureStatus } from "../registry/store/index.js";
import { readTar, type TarReadEntry } from "./tar.js";
import { keyFingerprint, loadPublicKey, verifyBytes } from "./sign.js";
import { partAt, partMatches, readBundleBytes, resolveBundleInput, type BundleInput } from "./parts.js";
import {
  BLOB_DIR,
  BUNDLE_MEDIA_TYPE,
  MAX_METADATA_BYTES,
  METADATA_ENTRY,
  SIGNATURE_ENTRY,
  type BundleFile,
  type BundleMetadata,
} from "./format.js";

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

function metadataError(message: string, where: string): AirlockError {
  return new AirlockError("BUNDLE_METADATA_INVALID", `airlock.json: ${message}`, {
    where,
    hint: "the bundle was not made by `airlock bundle build`, or is damaged: get it again from the vendor",
  });
}

/**
 * What is wrong with a bundle entry name, or undefined: absolute paths, `..`, empty or odd segments
 * (anything beyond letters, digits and `._+@=-`), and names outside the bundle's layout. Build checks
 * its own names with this too, so it never writes a bundle that verify would refuse.
 */
export function entryNameProblem(name: string): string | undefined {
  if (name.startsWith("/")) return "is an absolute path";
  const segments = name.replace(/\/$/, "").split("/");
  if (segments.some((segment) => segment === ".." || segment === ".")) return "climbs out of the bundle";
  if (segments.some((segment) => !/^[A-Za-z0-9._+@=-]+$/.test(segment))) {
    return "has an empty segment or a character other than letters, digits and ._+@=-";
  }
  const layout = [
    "airlock.json",
    "airlock.json.sig",
    "oci-layout",
    "index.json",
    "blobs",
    "manifests",
    "bin",
  ];
  return layout.includes(segments[0]!) ? undefined : "is outside the bundle layout";
}

export function checkEntryName(name: string, where: string): void {
  const problem = entryNameProblem(name);
  if (problem !== undefined) {
    throw new AirlockError("BUNDLE_ENTRY_UNSAFE", `entry ${JSON.stringify(name)} ${problem}`, {
      where,
      hint: "the bundle is malformed or was tampered with: do not use it; get it again from the vendor",
    });
  }
}

function isDigestValue(value: unknown): boolean {
  return typeof value === "string" && isDigest(value);
}

function parseMetadata(bytes: Uint8Array, where: string): BundleMetadata {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw metadataError(`not valid JSON (${(error as Error).message})`, where);
  }
  const m = doc as Partial<BundleMetadata>;
  if (m.schemaVersion !== 1 || m.mediaType !== BUNDLE_MEDIA_TYPE)
    throw metadataError("unknown schemaVersion or mediaType", where);
  if (typeof m.name !== "string" || typeof m.version !== "string" || typeof m.created !== "string") {
    throw metadataError("name, version and created are required", where);
  }
  if (
    !Array.isArray(m.files) ||
    !Array.isArray(m.images) ||
    !Array.isArray(m.packs) ||
    typeof m.totals !== "object"
  ) {
    throw metadataError("files, images, packs and totals are required", where);
  }
  const paths = new Set<string>();
  for (const file of m.files) {
    if (
      typeof file.path !== "string" ||
      !Number.isSafeInteger(file.size) ||
      file.size < 0 ||
      !/^[a-f0-9]{64}$/.test(file.sha256)
    ) {
      throw metadataError(`files entry ${JSON.stringify(file.path)} is malformed`, where);
    }
    checkEntryName(file.path, where);
    if ([METADATA_ENTRY, SIGNATURE_ENTRY].includes(file.path) || paths.has(file.path)) {
      throw metadataError(`files lists ${file.path} twice or lists itself`, where);
    }
    if (file.path.startsWith(BLOB_DIR) && file.path !== `${BLOB_DIR}${file.sha256}`) {
      throw metadataError(`${file.path} is a blob whose name is not its digest`, where);
    }
    paths.add(file.path);
  }
  for (const image of m.images) {
    if (typeof image.ref !== "string" || !isDigest(image.digest))
      throw metadataError("an images entry is malformed", where);
    const referrers: unknown = image.referrers;
    if (
      referrers !== undefined &&
      (!Array.isArray(referrers) ||
        !referrers.every(
          (referrer: Record<string, unknown>) =>
            isDigestValue(referrer.digest) &&
            isDigestValue(referrer.subject) &&
            typeof referrer.mediaType === "string",
        ))
    ) {
      throw metadataError(`the referrers of ${image.ref} are malformed`, where);
    }
  }
  return doc as BundleMetadata;
}

async function readEntryBytes(entry: TarReadEntry, max: number, where: string): Promise<Uint8Array> {
  if (entry.typeflag !== "0") throw metadataError(`${entry.name} is not a regular file`, where);
  if (entry.size > max) throw metadataError(`${entry.name} is ${entry.size} bytes, over ${max}`, where);
  const chunks: Uint8Array[] = [];
  // Copied: the reader reuses its buffers once the next chunk is asked for.
  for await (const chunk of entry.body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

function describeEntryType(typeflag: string): string {
  return (
    {
      "1": "a hard link",
      "2": "a symbolic link",
      "3": "a character device",
      "4": "a block device",
      "6": "a FIFO",
    }[typeflag] ?? `of unsupported type ${JSON.stringify(typeflag)}`
  );
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

async function readHead(
  input: BundleInput,
  entries: AsyncGenerator<TarReadEntry>,
): Promise<{ head: BundleHead; next: IteratorResult<TarReadEntry> }> {
  const first = await entries.next();
  if (first.done === true || first.value.name !== METADATA_ENTRY) {
    throw new AirlockError("BUNDLE_METADATA_MISSING", "the first entry is not airlock.json", {
      where: input.label,
      hint: "this is not an Airlock bundle (or is a later part: name the first part)",
    });
  }
  const metadataBytes = await readEntryBytes(first.value, MAX_METADATA_BYTES, input.label);
  const metadata = parseMetadata(metadataBytes, input.label);
  let next = await entries.next();
  let signature: Uint8Array | undefined;
  if (next.done !== true && next.value.name === SIGNATURE_ENTRY) {
    signature = await readEntryBytes(next.value, 1024, input.label);
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

/**
 * One streaming pass over a bundle: the signature first, then every entry's name, type, size and
 * digest against airlock.json. Entries are handed to `hooks.openSink` as they pass; a sink is
 * committed only after its entry checks.
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

    const expected = new Map(head.metadata.files.map((file) => [file.path, file]));
    // blobs/sha256/ belongs to every OCI layout, even a delta's that carries no blob (build writes it).
    const directories = new Set<string>(["blobs/", BLOB_DIR]);
    for (const path of expected.keys()) {
      const parts = path.split("/");
      for (let i = 1; i < parts.length; i++) directories.add(`${parts.slice(0, i).join("/")}/`);
    }
    const seen = new Set<string>();
    let current = firstBodyEntry;
    for (; current.done !== true; current = await entries.next()) {
      const entry = current.value;
      const located = (name: string): string => {
        const part = partAt(input, entry.offset);
        return part === undefined ? name : `${name} in part ${part}`;
      };
      checkEntryName(entry.name, located(entry.name));
      if (entry.typeflag === "5") {
        const dir = entry.name.endsWith("/") ? entry.name : `${entry.name}/`;
        if (!directories.has(dir)) {
          throw new AirlockError(
            "BUNDLE_ENTRY_UNKNOWN",
            `directory ${entry.name} is not part of the bundle`,
            {
              where: located(entry.name),
              hint: "the bundle was altered after it was built: get it again from the vendor",
            },
          );
        }
        continue;
      }
      if (entry.typeflag !== "0") {
        throw new AirlockError(
          "BUNDLE_ENTRY_UNSAFE",
          `entry ${entry.name} is ${describeEntryType(entry.typeflag)}`,
          {
            where: located(entry.name),
            hint: "bundles hold regular files only: this one was tampered with; do not use it",
          },
        );
      }
      const file = expected.get(entry.name);
      if (file === undefined || seen.has(entry.name)) {
        throw new AirlockError(
          file === undefined ? "BUNDLE_ENTRY_UNKNOWN" : "BUNDLE_ENTRY_DUPLICATE",
          file === undefined
            ? `entry ${entry.name} is not listed in airlock.json`
            : `entry ${entry.name} appears twice`,
          {
            where: located(entry.name),
            hint: "the bundle was altered after it was built: get it again from the vendor",
          },
        );
      }
      seen.add(entry.name);
      if (entry.size !== file.size) {
        throw new AirlockError(
          "BUNDLE_ENTRY_CORRUPT",
          `${entry.name} is ${entry.size} bytes, airlock.json says ${file.size}`,
          {
            where: located(entry.name),
            hint: "the bundle is damaged: copy it again",
          },
        );
      }
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
            where: located(entry.name),
            hint: error.hint,
          });
        }
        throw error;
      }
      result.entries++;
    }
    const missing = head.metadata.files.find((file) => !seen.has(file.path));
    if (missing !== undefined) {
      throw new AirlockError(
        "BUNDLE_ENTRY_MISSING",
        `${missing.path} is listed in airlock.json but not in the bundle`,
        {
          where: input.label,
          hint: "the bundle is incomplete: copy it again",
        },
      );
    }
    options.onProgress?.({ phase: "verify", done: input.size, total: input.size });
    return result;
  } catch (error) {
    const partsUnchecked = input.parts.length > 1 && input.parts.some((part) => part.expected === undefined);
    if (
      error instanceof AirlockError &&
      partsUnchecked &&
      ["BUNDLE_TRUNCATED", "BUNDLE_CORRUPT", "BUNDLE_METADATA_MISSING"].includes(error.code)
    ) {
      // Without .parts.json nothing checked the parts' order or sizes: that is the likeliest cause.
      throw new AirlockError(error.code, `${error.message} (in parts named without their .parts.json)`, {
        where: error.where ?? input.label,
        hint: "name the parts in order (…001, …002, …), or put the .parts.json that came with them beside the first",
      });
    }
    if (error instanceof AirlockError && error.code === "BUNDLE_TRUNCATED" && input.parts.length > 1) {
      throw new AirlockError(error.code, `${error.message}: a part is short or missing`, {
        where: error.where ?? input.label,
        hint: "copy every part again; `.parts.json` lists their sizes and sha256",
      });
    }
    throw error;
  } finally {
    await entries.return(undefined);
  }
}

export function verifyBundle(paths: string[], options: VerifyOptions = {}): Promise<VerifyResult> {
  return walkBundle(paths, options);
}
