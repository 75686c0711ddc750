import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { BundleWriter } from "../../../bundle/writer.js";
import {
  PARTS_SUFFIX,
  partAt,
  partMatches,
  partName,
  readBundleBytes,
  resolveBundleInput,
  type BundleInput,
  type PartsManifest,
} from "../../../bundle/parts.js";
import { rejection } from "../../helpers/errors.js";

const run = promisify(execFile);

function pattern(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** Writes `data` through a BundleWriter in irregular chunks (1 byte, exactly a part, spanning several). */
async function writeAll(writer: BundleWriter, data: Buffer, splitSize = 1000): Promise<void> {
  const sizes = [1, splitSize - 1, splitSize, 3, 2 * splitSize + 17, 1, 511];
  let offset = 0;
  for (let i = 0; offset < data.length; i++) {
    const size = sizes[i % sizes.length]!;
    await writer.write(data.subarray(offset, offset + size));
    offset += size;
  }
}

const sha256 = (data: Uint8Array): string => createHash("sha256").update(data).digest("hex");

async function readInput(input: BundleInput): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  // Copied: the reader reuses a chunk's buffer once the next chunk is asked for.
  for await (const chunk of readBundleBytes(input)) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}

describe("bundle parts", () => {
  let dir: string;
  let output: string;
  const DATA = pattern(10_500, 1);
  const SPLIT = 1000;
  const NAMES = Array.from(
    { length: 11 },
    (_, i) => `mgmt-4.5.0.airlock.tar.${String(i + 1).padStart(3, "0")}`,
  );

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "airlock-parts-"));
    output = join(dir, "mgmt-4.5.0.airlock.tar");
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function writeSplit(data = DATA, splitSize = SPLIT, out = output): Promise<void> {
    const writer = new BundleWriter(out, splitSize);
    await writeAll(writer, data, splitSize);
    expect(writer.bytesWritten).toBe(data.length);
    await writer.finish();
  }

  describe("BundleWriter", () => {
    it("splits into parts whose cat equals the unsplit output, described by parts.json", async () => {
      const writer = new BundleWriter(output, SPLIT);
      await writeAll(writer, DATA);
      const parts = await writer.finish();
      expect(parts?.map((p) => p.name)).toEqual(NAMES);
      expect(parts?.map((p) => p.size)).toEqual([...Array<number>(10).fill(1000), 500]);

      const single = join(dir, "single.tar");
      const unsplit = new BundleWriter(single, undefined);
      await writeAll(unsplit, DATA);
      expect(await unsplit.finish()).toBeUndefined();
      expect((await readFile(single)).equals(DATA)).toBe(true);

      const { stdout } = await run(
        "cat",
        NAMES.map((n) => join(dir, n)),
        { encoding: "buffer", maxBuffer: 1 << 24 },
      );
      expect(stdout.equals(await readFile(single))).toBe(true);

      const manifest = JSON.parse(await readFile(`${output}${PARTS_SUFFIX}`, "utf8")) as PartsManifest;
      expect(manifest.bundle).toBe("mgmt-4.5.0.airlock.tar");
      expect(manifest.size).toBe(DATA.length);
      expect(manifest.parts).toEqual(parts);
      for (const part of manifest.parts) {
        const bytes = await readFile(join(dir, part.name));
        expect(part.size, part.name).toBe(bytes.length);
        expect(part.sha256, part.name).toBe(sha256(bytes));
      }
      expect((await readdir(dir)).filter((n) => n.endsWith(".partial"))).toEqual([]);
      expect((await readdir(dir)).sort()).toEqual(
        [...NAMES, "mgmt-4.5.0.airlock.tar.parts.json", "single.tar"].sort(),
      );
    });

    it("reserved ranges filled later, out of order, give the parts and hashes of an in-order write", async () => {
      const inOrder = join(dir, "in-order.tar");
      const sequential = new BundleWriter(inOrder, SPLIT);
      await sequential.write(DATA);
      const expected = await sequential.finish();

      const writer = new BundleWriter(output, SPLIT);
      // Ranges within a part, across several parts, and ending on a part boundary.
      const reserved = [
        [100, 400],
        [1900, 4100],
        [7000, 8000],
      ] as const;
      let at = 0;
      const fills: (() => Promise<void>)[] = [];
      for (const [start, end] of reserved) {
        await writer.write(DATA.subarray(at, start));
        const place = await writer.reserve(end - start);
        expect(place).toBe(start);
        fills.push(() => writer.writeAt(place, DATA.subarray(start, end)));
        at = end;
      }
      await writer.write(DATA.subarray(at));
      await Promise.all(fills.reverse().map((fill) => fill()));
      expect(writer.bytesWritten).toBe(DATA.length);
      const parts = await writer.finish();
      expect(parts?.map((p) => [p.size, p.sha256])).toEqual(expected?.map((p) => [p.size, p.sha256]));
      expect(await readInput(await resolveBundleInput([`${output}${PARTS_SUFFIX}`]))).toEqual(DATA);
    });

    it("writes no empty trailing part when the size is a multiple of the split size", async () => {
      const data = pattern(3000, 2);
      const writer = new BundleWriter(output, 1000);
      await writer.write(data);
      const parts = await writer.finish();
      expect(parts?.map((p) => [p.name, p.size])).toEqual([
        [basename(partName(output, 0)), 1000],
        [basename(partName(output, 1)), 1000],
        [basename(partName(output, 2)), 1000],
      ]);
      expect(existsIn(await readdir(dir), partName(output, 3))).toBe(false);
    });

    it("shows no final name before finish, and leaves nothing at all when aborted", async () => {
      const writer = new BundleWriter(output, SPLIT);
      await writer.write(DATA.subarray(0, 2500));
      const during = await readdir(dir);
      expect(during.length).toBeGreaterThan(0);
      expect(during.every((n) => n.endsWith(".partial"))).toBe(true);
      await writer.abort();
      expect(await readdir(dir)).toEqual([]);

      const single = new BundleWriter(output, undefined);
      await single.write(DATA);
      expect(await readdir(dir)).toEqual(["mgmt-4.5.0.airlock.tar.partial"]);
      await single.abort();
      expect(await readdir(dir)).toEqual([]);
    });

    it("aborting right after a part boundary leaves nothing either", async () => {
      const writer = new BundleWriter(output, SPLIT);
      await writer.write(DATA.subarray(0, 2000));
      await writer.abort();
      expect(await readdir(dir)).toEqual([]);
    });
  });

  describe("resolveBundleInput", () => {
    function expectAllParts(input: BundleInput, where = dir): void {
      expect(input.label).toBe("mgmt-4.5.0.airlock.tar");
      expect(input.size).toBe(DATA.length);
      expect(input.parts.map((p) => p.path)).toEqual(NAMES.map((n) => join(where, n)));
      expect(input.parts.map((p) => p.expected?.name)).toEqual(NAMES);
    }

    it("resolves every part, in order, from the first part", async () => {
      await writeSplit();
      const input = await resolveBundleInput([join(dir, NAMES[0]!)]);
      expectAllParts(input);
      expect((await readInput(input)).equals(DATA)).toBe(true);
      for (const part of input.parts) expect(await partMatches(part)).toBe(true);
    });

    it("resolves from parts.json", async () => {
      await writeSplit();
      const input = await resolveBundleInput([`${output}${PARTS_SUFFIX}`]);
      expectAllParts(input);
      expect((await readInput(input)).equals(DATA)).toBe(true);
    });

    it("resolves an explicit list of every part in order", async () => {
      await writeSplit();
      const input = await resolveBundleInput(NAMES.map((n) => join(dir, n)));
      expectAllParts(input);
      expect((await readInput(input)).equals(DATA)).toBe(true);
    });

    it("uses the paths of an explicit list whose parts sit in different directories", async () => {
      await writeSplit();
      const second = join(dir, "second-stick");
      await mkdir(second);
      for (const name of NAMES.slice(5)) {
        await copyFile(join(dir, name), join(second, name));
        await rm(join(dir, name));
      }
      const paths = [
        ...NAMES.slice(0, 5).map((n) => join(dir, n)),
        ...NAMES.slice(5).map((n) => join(second, n)),
      ];
      const input = await resolveBundleInput(paths);
      expect(input.parts.map((p) => p.path)).toEqual(paths);
      expect((await readInput(input)).equals(DATA)).toBe(true);
    });

    it("refuses an explicit list out of order with BUNDLE_PARTS_ORDER", async () => {
      await writeSplit();
      const swapped = [NAMES[1]!, NAMES[0]!, ...NAMES.slice(2)].map((n) => join(dir, n));
      const error = await rejection(resolveBundleInput(swapped));
      expect(error).toMatchObject({ code: "BUNDLE_PARTS_ORDER", exitCode: 2 });
      expect(error.message).toContain(NAMES[1]!);
      expect(error.hint).toContain(NAMES.join(" "));
      const later = await rejection(resolveBundleInput([join(dir, NAMES[0]!), join(dir, NAMES[2]!)]));
      expect(later).toMatchObject({ code: "BUNDLE_PARTS_ORDER", where: join(dir, NAMES[2]!) });
      const alone = await rejection(resolveBundleInput([join(dir, NAMES[3]!)]));
      expect(alone.code).toBe("BUNDLE_PARTS_ORDER");
    });

    it("names a missing part with BUNDLE_PART_MISSING", async () => {
      await writeSplit();
      await rm(join(dir, NAMES[6]!));
      for (const start of [join(dir, NAMES[0]!), `${output}${PARTS_SUFFIX}`]) {
        const error = await rejection(resolveBundleInput([start]));
        expect(error.code).toBe("BUNDLE_PART_MISSING");
        expect(error.where).toContain(NAMES[6]!);
        expect(error.message).toContain(NAMES[6]!);
      }
    });

    it("names a short part with BUNDLE_PART_SIZE", async () => {
      await writeSplit();
      await truncate(join(dir, NAMES[2]!), 999);
      const error = await rejection(resolveBundleInput([join(dir, NAMES[0]!)]));
      expect(error.code).toBe("BUNDLE_PART_SIZE");
      expect(error.where).toContain(NAMES[2]!);
      expect(error.message).toContain("999");
    });

    it("tells a changed part from good ones by its sha256", async () => {
      await writeSplit();
      const damaged = await readFile(join(dir, NAMES[4]!));
      damaged[10] = damaged[10]! ^ 0xff;
      await writeFile(join(dir, NAMES[4]!), damaged);
      const input = await resolveBundleInput([join(dir, NAMES[0]!)]);
      const matches = await Promise.all(input.parts.map((part) => partMatches(part)));
      expect(matches.map((ok, i) => (ok ? "" : NAMES[i]))).toEqual(NAMES.map((n, i) => (i === 4 ? n : "")));
    });

    it("asks for parts.json when only a part is named and it is missing", async () => {
      await writeSplit();
      await rm(`${output}${PARTS_SUFFIX}`);
      const error = await rejection(resolveBundleInput([join(dir, NAMES[0]!)]));
      expect(error).toMatchObject({ code: "BUNDLE_PARTS_MANIFEST_MISSING", where: join(dir, NAMES[0]!) });
      const listed = await resolveBundleInput(NAMES.map((n) => join(dir, n)));
      expect((await readInput(listed)).equals(DATA)).toBe(true);
    });

    it("refuses a damaged parts.json with an AirlockError naming it", async () => {
      await writeSplit();
      await writeFile(`${output}${PARTS_SUFFIX}`, '{"bundle": "mgmt-4.5.0.airlock.tar", "parts": [');
      const error = await rejection(resolveBundleInput([join(dir, NAMES[0]!)]));
      expect(error).toMatchObject({
        code: "BUNDLE_PARTS_MANIFEST_INVALID",
        where: `${output}${PARTS_SUFFIX}`,
      });
      for (const doc of [
        { bundle: "b", size: 1 },
        { bundle: "b", size: 1, parts: [{ name: "../../etc/passwd", size: 1, sha256: "" }] },
        { bundle: "b", size: 1, parts: [{ name: NAMES[0], size: "1000", sha256: "" }] },
        [],
      ]) {
        await writeFile(`${output}${PARTS_SUFFIX}`, JSON.stringify(doc));
        expect(
          (await rejection(resolveBundleInput([`${output}${PARTS_SUFFIX}`]))).code,
          JSON.stringify(doc),
        ).toBe("BUNDLE_PARTS_MANIFEST_INVALID");
      }
    });

    it("resolves a single file, and refuses a missing one with BUNDLE_NOT_FOUND", async () => {
      await writeFile(output, DATA);
      const input = await resolveBundleInput([output]);
      expect(input).toEqual({
        label: output,
        parts: [{ path: output, size: DATA.length }],
        size: DATA.length,
      });
      expect((await readInput(input)).equals(DATA)).toBe(true);
      const error = await rejection(resolveBundleInput([join(dir, "absent.tar")]));
      expect(error).toMatchObject({ code: "BUNDLE_NOT_FOUND", exitCode: 2 });
      expect((await rejection(resolveBundleInput([]))).code).toBe("USAGE");
    });
  });

  describe("partAt", () => {
    it("maps byte offsets of the joined bundle to the part holding them", async () => {
      await writeSplit();
      const input = await resolveBundleInput([join(dir, NAMES[0]!)]);
      expect(partAt(input, 0)).toBe(NAMES[0]);
      expect(partAt(input, 999)).toBe(NAMES[0]);
      expect(partAt(input, 1000)).toBe(NAMES[1]);
      expect(partAt(input, 1001)).toBe(NAMES[1]);
      expect(partAt(input, 5_999)).toBe(NAMES[5]);
      expect(partAt(input, 10_000)).toBe(NAMES[10]);
      expect(partAt(input, 10_499)).toBe(NAMES[10]);
      expect(partAt(input, 10_500)).toBe(NAMES[10]);
    });

    it("maps offsets with uneven part sizes, and says nothing for a single file", () => {
      const input: BundleInput = {
        label: "x",
        parts: [
          { path: "/m/x.001", size: 10 },
          { path: "/m/x.002", size: 1 },
          { path: "/n/x.003", size: 5 },
        ],
        size: 16,
      };
      expect([0, 9, 10, 11, 15].map((o) => partAt(input, o))).toEqual([
        "x.001",
        "x.001",
        "x.002",
        "x.003",
        "x.003",
      ]);
      expect(partAt({ label: "y", parts: [{ path: "/y.tar", size: 100 }], size: 100 }, 50)).toBeUndefined();
    });
  });
});

function existsIn(names: string[], path: string): boolean {
  return names.includes(basename(path));
}
