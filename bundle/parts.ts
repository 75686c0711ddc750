import { open, readFile, stat } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { createHash } from "node:crypto";
import { AirlockError, errnoCode } from "../registry/oci/index.js";
import { readChunks, readFileRanges } from "../registry/store/index.js";

/**
 * A bundle on disk is one tar, or byte-range parts of it (`X.001`, `X.002`, …) that `cat` joins,
 * described by `X.parts.json`. This module writes both and reads either as one byte stream.
 */
export interface PartInfo {
  name: string;
  size: number;
  sha256: string;
}

export interface PartsManifest {
  bundle: string;
  size: number;
  parts: PartInfo[];
}

export const PARTS_SUFFIX = ".parts.json";

export function partName(output: string, index: number): string {
  return `${output}.${String(index + 1).padStart(3, "0")}`;
}

/** Where a bundle's bytes come from: one file, or parts in order. */
export interface BundleInput {
  /** What to call the bundle in messages. */
  label: string;
  parts: { path: string; size: number; expected?: PartInfo; ready?: (end: number) => Promise<void> }[];
  size: number;
}

/** A bundle file still being written (a console upload): its final size, and when bytes are there. */
export interface ArrivingBundle {
  size: number;
  /** Resolves once the file's first `end` bytes are written; rejects to give up (the upload stalled). */
  ready(end: number): Promise<void>;
}

/** The input of a bundle that is one file still arriving: read as it grows, never past `size`. */
export function arrivingBundleInput(path: string, arriving: ArrivingBundle): BundleInput {
  return {
    label: path,
    parts: [{ path, size: arriving.size, ready: (end) => arriving.ready(end) }],
    size: arriving.size,
  };
}

function partsManifestPathFor(path: string): string | undefined {
  if (path.endsWith(PARTS_SUFFIX)) return path;
  const match = /^(.*)\.\d{3}$/.exec(path);
  return match === null ? undefined : `${match[1]}${PARTS_SUFFIX}`;
}

async function sizeOf(path: string, label: string, partOf?: string): Promise<number> {
  try {
    return (await stat(path)).size;
  } catch (error) {
    if (errnoCode(error) === "ENOENT") {
      throw new AirlockError(
        partOf === undefined ? "BUNDLE_NOT_FOUND" : "BUNDLE_PART_MISSING",
        `${path} does not exist`,
        {
          where: partOf === undefined ? label : `part ${basename(path)} of ${partOf}`,
          hint:
            partOf === undefined
              ? "check the path"
              : "copy every part listed in the .parts.json next to the first one",
        },
      );
    }
    throw error;
  }
}

/** Reads a parts.json, which came on the same media as the parts: refuses anything but a list of plain part names. */
function parsePartsManifest(text: string, path: string): PartsManifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  const m = value as Partial<PartsManifest> | null | undefined;
  const valid =
    typeof m === "object" &&
    m !== null &&
    typeof m.bundle === "string" &&
    Array.isArray(m.parts) &&
    m.parts.every(
      (p: Partial<PartInfo> | null) =>
        typeof p?.name === "string" &&
        p.name !== "" &&
        basename(p.name) === p.name &&
        Number.isSafeInteger(p.size) &&
        typeof p.sha256 === "string",
    );
  if (!valid) {
    throw new AirlockError("BUNDLE_PARTS_MANIFEST_INVALID", `${basename(path)} is not a valid parts list`, {
      where: path,
      hint: "copy the .parts.json that came with the parts again, or name every part in order",
    });
  }
  return m as PartsManifest;
}

/**
 * Resolves what the operator named: a whole tar, the first part (`X.001`) or parts.json of a split
 * bundle, or a list of parts. Sizes are checked up front, so a missing or short part is named before
 * any byte is read.
 */
export async function resolveBundleInput(paths: string[]): Promise<BundleInput> {
  if (paths.length === 0) throw new AirlockError("USAGE", "name a bundle file");
  const first = paths[0]!;
  const manifestPath = partsManifestPathFor(first);
  let manifest: PartsManifest | undefined;
  if (manifestPath !== undefined) {
    const text = await readFile(manifestPath, "utf8").catch(() => undefined);
    if (text !== undefined) manifest = parsePartsManifest(text, manifestPath);
    else if (paths.length === 1) {
      throw new AirlockError(
        "BUNDLE_PARTS_MANIFEST_MISSING",
        `${basename(first)} is a part, but ${manifestPath} is missing`,
        {
          where: first,
          hint: "copy the .parts.json that came with the parts, or name every part in order",
        },
      );
    }
  }
  if (manifest === undefined) {
    const parts = [];
    for (const path of paths)
      parts.push({ path, size: await sizeOf(path, path, paths.length > 1 ? first : undefined) });
    return {
      label: paths.length === 1 ? first : `${first} (+${paths.length - 1} parts)`,
      parts,
      size: parts.reduce((s, p) => s + p.size, 0),
    };
  }
  const dir = dirname(manifestPath!);
  const label = manifest.bundle;
  // A part the operator named is read where they named it (parts may sit on different media).
  const listed = manifest.parts.map((info, i) => {
    const named = paths[i];
    return {
      path: named !== undefined && basename(named) === info.name ? named : join(dir, info.name),
      expected: info,
    };
  });
  if (
    paths.length > 1 ||
    (paths.length === 1 && !first.endsWith(PARTS_SUFFIX) && basename(first) !== manifest.parts[0]?.name)
  ) {
    // The operator named parts explicitly: they must be the listed ones, in the listed order.
    paths.forEach((path, i) => {
      const expected = manifest.parts[i];
      if (expected === undefined || basename(path) !== expected.name) {
        throw new AirlockError(
          "BUNDLE_PARTS_ORDER",
          `part ${i + 1} is ${basename(path)}, but ${manifestPath} lists ${expected?.name ?? "no such part"}`,
          {
            where: path,
            hint: `name the parts in order: ${manifest.parts.map((p) => p.name).join(" ")}`,
          },
        );
      }
    });
  }
  const parts = [];
  for (const part of listed) {
    const size = await sizeOf(part.path, label, label);
    if (size !== part.expected.size) {
      throw new AirlockError(
        "BUNDLE_PART_SIZE",
        `part ${part.expected.name} is ${size} bytes, parts.json says ${part.expected.size}`,
        {
          where: `part ${part.expected.name} of ${label}`,
          hint: "the part was cut short or is from another build: copy it again",
        },
      );
    }
    parts.push({ ...part, size });
  }
  return { label, parts, size: parts.reduce((s, p) => s + p.size, 0) };
}

/**
 * The bundle's bytes as one stream, in chunks of up to 4 MiB whose buffers are reused: a chunk is
 * valid until the one after next is asked for, across parts too (see readChunks).
 */
export function readBundleBytes(input: BundleInput, signal?: AbortSignal): AsyncGenerator<Uint8Array> {
  return readFileRanges(
    input.parts.map((part) => ({ path: part.path, start: 0, length: part.size, ready: part.ready })),
    signal,
  );
}

/** The part holding byte `offset` of the joined bundle, for naming the damaged part. */
export function partAt(input: BundleInput, offset: number): string | undefined {
  if (input.parts.length < 2) return undefined;
  let start = 0;
  for (const part of input.parts) {
    if (offset < start + part.size) return basename(part.path);
    start += part.size;
  }
  return basename(input.parts[input.parts.length - 1]!.path);
}

/** Hashes one part to tell whether it is the one that differs from parts.json. */
export async function partMatches(part: BundleInput["parts"][number]): Promise<boolean> {
  if (part.expected === undefined) return true;
  const hash = createHash("sha256");
  for await (const chunk of readChunks(part.path)) hash.update(chunk);
  return hash.digest("hex") === part.expected.sha256;
}

/** Bytes of the joined bundle at `position`: reads cross part boundaries as `cat` would join them. */
export function partSpans(
  input: BundleInput,
  position: number,
  length: number,
): { path: string; start: number; length: number }[] {
  const spans: { path: string; start: number; length: number }[] = [];
  let partStart = 0;
  for (const part of input.parts) {
    const from = Math.max(position, partStart);
    const to = Math.min(position + length, partStart + part.size);
    if (from < to) spans.push({ path: part.path, start: from - partStart, length: to - from });
    partStart += part.size;
  }
  return spans;
}

/** `length` bytes of the joined bundle at `position`, for readers that index it and then read entries (mirror). */
export async function readBundleAt(input: BundleInput, position: number, length: number): Promise<Buffer> {
  const out = Buffer.alloc(length);
  let filled = 0;
  for (const span of partSpans(input, position, length)) {
    const handle = await open(span.path, "r");
    try {
      const { bytesRead } = await handle.read(out, filled, span.length, span.start);
      filled += bytesRead;
    } finally {
      await handle.close();
    }
  }
  if (filled !== length) {
    throw new AirlockError("BUNDLE_TRUNCATED", `the bundle ends before byte ${position + length}`, {
      where: input.label,
      hint: "copy the bundle (every part) again",
    });
  }
  return out;
}
