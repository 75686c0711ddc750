import { AirlockError } from "../registry/oci/index.js";
import { BLOCK, encodeHeader, type TarHeaderInput, type TarReadEntry } from "./tar.js";
import { entryNameProblem } from "./format.js";
import { partAt, type BundleInput } from "./parts.js";

/**
 * The rules every entry of a bundle meets beyond its bytes: a safe name, a plain type, and the exact
 * tar header build writes for it, so what verify passes cannot extract as a link, a device, a setuid
 * file or a file owned by someone; and nothing after the end-of-archive marker.
 */
const ALTERED_HINT = "the bundle was altered after it was built: do not use it; get it again from the vendor";

export function metadataInvalid(message: string, where: string): AirlockError {
  return new AirlockError("BUNDLE_METADATA_INVALID", `airlock.json: ${message}`, {
    where,
    hint: "the bundle was not made by `airlock bundle build`, or is damaged: get it again from the vendor",
  });
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

export function describeEntryType(typeflag: string): string {
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

function octalMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, "0")}`;
}

/**
 * The first byte where two headers differ, or undefined when they are the same bytes. A checksum
 * differs whenever anything else in its block does, so a difference elsewhere is named first.
 */
function firstDifference(found: Uint8Array, written: Uint8Array): number | undefined {
  const length = Math.min(found.byteLength, written.byteLength);
  const isChecksum = (i: number): boolean => i % BLOCK >= 148 && i % BLOCK < 156;
  let checksumDifference: number | undefined;
  for (let i = 0; i < length; i++) {
    if (found[i] === written[i]) continue;
    if (!isChecksum(i)) return i;
    checksumDifference ??= i;
  }
  return found.byteLength === written.byteLength ? checksumDifference : length;
}

/**
 * Holds an entry's header to the bytes build writes for it (owner 0/0 without names, the mode it
 * lists, mtime = created, no PAX record but a long path or size), naming the first field that differs.
 */
export function checkEntryHeader(entry: TarReadEntry, expected: TarHeaderInput, where: string): void {
  const written = encodeHeader(expected);
  const at = firstDifference(entry.header, written);
  if (at === undefined) return;
  const fields: [string, string | number, string | number][] = [
    ["mode", octalMode(entry.mode), octalMode(expected.mode)],
    ["uid", entry.uid, 0],
    ["gid", entry.gid, 0],
    ["uname", JSON.stringify(entry.uname), '""'],
    ["gname", JSON.stringify(entry.gname), '""'],
    ["mtime", entry.mtime, expected.mtime],
  ];
  const field = fields.find(([, found, wanted]) => found !== wanted);
  const message =
    field === undefined
      ? `${entry.name}: its tar header differs from the one build writes, at byte ${at} of ${entry.header.byteLength} (a PAX record or a field build leaves empty)`
      : `${entry.name}: its tar header has ${field[0]} ${field[1]}, build writes ${field[2]}`;
  throw new AirlockError("BUNDLE_ENTRY_HEADER_MISMATCH", message, { where, hint: ALTERED_HINT });
}

/** Refuses bytes after the end-of-archive marker: build writes none, and another tool may read them. */
export function checkArchiveEnd(end: number, input: BundleInput): void {
  if (end === input.size) return;
  const part = partAt(input, end);
  throw new AirlockError(
    "BUNDLE_TRAILING_DATA",
    `${input.size - end} bytes follow the end-of-archive marker, from byte ${end}`,
    {
      where: part === undefined ? `byte ${end} of ${input.label}` : `byte ${end} in part ${part}`,
      hint: ALTERED_HINT,
    },
  );
}
