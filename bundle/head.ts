import { AirlockError, digestOf, type Digest } from "../registry/oci/index.js";
import type { SignatureStatus } from "../registry/store/index.js";
import { readTar, type TarReadEntry } from "./tar.js";
import { checkEntryHeader, metadataInvalid } from "./entry-checks.js";
import { keyFingerprint, loadPublicKey, verifyBytes } from "./sign.js";
import { partAt, readBundleBytes, resolveBundleInput, type BundleInput } from "./parts.js";
import {
  MAX_METADATA_BYTES,
  METADATA_ENTRY,
  SIGNATURE_ENTRY,
  entryMtime,
  type BundleMetadata,
} from "./format.js";

/** A bundle's first entries: airlock.json, which lists everything after it, and its signature. */
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

export type TarEntries = AsyncGenerator<TarReadEntry, number | undefined>;

/** `name`, or `name in part X` for a split bundle: where verify errors point. */
export function locate(input: BundleInput, entry: TarReadEntry): string {
  const part = partAt(input, entry.offset);
  return part === undefined ? entry.name : `${entry.name} in part ${part}`;
}

async function readEntryBytes(entry: TarReadEntry, max: number, where: string): Promise<Uint8Array> {
  if (entry.typeflag !== "0") throw metadataInvalid(`${entry.name} is not a regular file`, where);
  if (entry.size > max) throw metadataInvalid(`${entry.name} is ${entry.size} bytes, over ${max}`, where);
  const chunks: Uint8Array[] = [];
  // Copied: the reader reuses its buffers once the next chunk is asked for.
  for await (const chunk of entry.body) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

/** airlock.json and its signature: build writes them as plain 0644 files. */
const HEAD_ENTRY = { type: "file", mode: 0o644 } as const;

/** Reads the head off a bundle's entries; returns it with the first entry after it. */
export async function readHead(
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
