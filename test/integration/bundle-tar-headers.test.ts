/**
 * The tar header is part of what is signed (issue 10, point 3), and airlock.json has one schema
 * (point 4): a header whose mode, owner or mtime differs from what build writes, bytes after the
 * end-of-archive marker, and an airlock.json the schema refuses are each a typed error from verify,
 * import and (for the metadata) inspect; a refused import leaves nothing visible in the store.
 */
import { copyFile, lstat, readFile, readdir, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  METADATA_ENTRY,
  PARTS_SUFFIX,
  SIGNATURE_ENTRY,
  buildBundle,
  encodeHeader,
  generateKeyPair,
  importBundle,
  indexTarFile,
  inspectBundle,
  loadPrivateKey,
  paddingFor,
  signBytes,
  verifyBundle,
  type PartsManifest,
} from "../../bundle/index.js";
import {
  MiB,
  expectAirlockError,
  runTool,
  sha256File,
  snapshotStore,
  useFixtures,
  withStore,
  type Fixtures,
} from "../helpers/fixtures.js";

const SPLIT = 2 * MiB;
/** The sample bundle.yaml's created time, in seconds: every header's mtime. */
const CREATED_MTIME = Date.parse("2026-11-01T00:00:00Z") / 1000;

let fx: Fixtures;
let key: string;
let pub: string;
let signed: string;
let partsDir: string;
let parts: string[];

beforeAll(async () => {
  fx = await useFixtures({ size: 8 * MiB });
  const work = await fx.dir("work");
  key = join(work, "key.pem");
  pub = join(work, "pub.pem");
  await generateKeyPair(key, pub);
  signed = join(work, "mgmt-4.5.0.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: signed, signKey: key });
  partsDir = await fx.dir("parts");
  const split = await buildBundle({
    specFile: fx.spec,
    output: join(partsDir, "mgmt-4.5.0.airlock.tar"),
    signKey: key,
    splitSize: SPLIT,
  });
  parts = split.parts!.map((part) => join(partsDir, part.name));
  expect(parts.length).toBeGreaterThanOrEqual(3);
  // The undamaged inputs pass, so each refusal below is about its one defect.
  await verifyBundle([signed], { publicKey: pub });
  await verifyBundle([parts[0]!], { publicKey: pub });
});

afterAll(async () => {
  await fx?.cleanup();
});

/** Recomputes a ustar block's checksum, as a forger would after editing it. */
function reseal(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
}

/** The ustar block of `name` in the signed bundle (the last block before its body). */
async function headerOffset(name: string): Promise<number> {
  const entry = (await indexTarFile(signed)).get(name);
  expect(entry, name).toBeDefined();
  return entry!.dataOffset - 512;
}

/** A copy of the signed bundle with `name`'s ustar header edited and its checksum recomputed. */
async function withEditedHeader(name: string, edit: (block: Buffer) => void): Promise<string> {
  const bytes = Buffer.from(await readFile(signed));
  const block = bytes.subarray(await headerOffset(name), (await headerOffset(name)) + 512);
  edit(block);
  reseal(block);
  const path = join(await fx.dir("edited"), basename(signed));
  await writeFile(path, bytes);
  return path;
}

function octalField(value: number, length: number): string {
  return `${value.toString(8).padStart(length - 1, "0")}\0`;
}

/**
 * Imports `paths` into a fresh store; expects `code` naming `culprit`, no bundle or tag visible, no
 * ingest leftovers, and any blob stored before the refusal referenced by nothing (gc's, issue 10 point 5).
 */
async function expectImportRefused(paths: string[], code: string, culprit: string | RegExp): Promise<void> {
  const dataDir = await fx.dir("site");
  await withStore(dataDir, async (store) => {
    await expectAirlockError(importBundle(store, paths, { publicKey: pub }), code, culprit);
  });
  const after = await snapshotStore(dataDir);
  expect(after.bundles).toEqual([]);
  expect(after.tags).toEqual([]);
  expect(after.ingest).toEqual([]);
  const unreferenced = await withStore(dataDir, async (store) => (await store.fsck()).unreferenced);
  expect([...unreferenced].sort()).toEqual(after.blobs.map((blob) => blob.name).sort());
}

describe("the headers build writes", () => {
  it("tar -tvf lists every entry as owner 0/0, mode 0644 or 0755, at the bundle's created time", async () => {
    const listing = await runTool("tar", ["--utc", "--full-time", "--numeric-owner", "-tvf", signed]);
    expect(listing.code, listing.stderr).toBe(0);
    const lines = listing.stdout.toString().trimEnd().split("\n");
    expect(lines.length).toBe((await indexTarFile(signed)).size);
    for (const line of lines) {
      expect(line).toMatch(/^(-rw-r--r--|-rwxr-xr-x|drwxr-xr-x) 0\/0 +\d+ 2026-11-01 00:00:00 \S+$/);
    }
    expect(lines.find((line) => line.endsWith(" bin/k3s"))).toMatch(/^-rwxr-xr-x 0\/0 /);
    expect(lines.find((line) => line.endsWith(" airlock.json"))).toMatch(/^-rw-r--r-- 0\/0 /);
  });
});

describe("a header edited after the build (checksum recomputed)", () => {
  it("mode 04755 and uid 1000 on bin/k3s: GNU tar -xpf would make it setuid, verify and import refuse it", async () => {
    const path = await withEditedHeader("bin/k3s", (block) => {
      block.write(octalField(0o4755, 8), 100, "latin1");
      block.write(octalField(1000, 8), 108, "latin1");
    });
    // The forgery is real: extracting the bundle as root gives a setuid file owned by uid 1000.
    const out = await fx.dir("extract");
    const extracted = await runTool("tar", ["-xpf", path, "-C", out]);
    expect(extracted.code, extracted.stderr).toBe(0);
    const k3s = await lstat(join(out, "bin", "k3s"));
    expect(k3s.mode & 0o7777).toBe(0o4755);
    expect(k3s.uid).toBe(1000);

    const error = await expectAirlockError(
      verifyBundle([path], { publicKey: pub }),
      "BUNDLE_ENTRY_HEADER_MISMATCH",
      "bin/k3s",
    );
    expect(error.message).toContain("mode 04755, build writes 0755");
    expect(error.where).toBe("bin/k3s");
    await expectImportRefused([path], "BUNDLE_ENTRY_HEADER_MISMATCH", "bin/k3s");
  });

  const fields: { field: string; entry: string; edit: (block: Buffer) => void; says: string }[] = [
    {
      field: "uid",
      entry: "bin/k3s",
      edit: (block) => block.write(octalField(1000, 8), 108, "latin1"),
      says: "uid 1000, build writes 0",
    },
    {
      field: "gid",
      entry: "manifests/values.yaml",
      edit: (block) => block.write(octalField(42, 8), 116, "latin1"),
      says: "gid 42, build writes 0",
    },
    {
      field: "uname",
      entry: "bin/k3s",
      edit: (block) => block.write("daemon\0", 265, "latin1"),
      says: 'uname "daemon", build writes ""',
    },
    {
      field: "gname",
      entry: "index.json",
      edit: (block) => block.write("wheel\0", 297, "latin1"),
      says: 'gname "wheel", build writes ""',
    },
    {
      field: "mtime",
      entry: "bin/k3s",
      edit: (block) => block.write(octalField(CREATED_MTIME + 1, 12), 136, "latin1"),
      says: `mtime ${CREATED_MTIME + 1}, build writes ${CREATED_MTIME}`,
    },
    {
      field: "mode of a directory",
      entry: "bin/",
      edit: (block) => block.write(octalField(0o1777, 8), 100, "latin1"),
      says: "mode 01777, build writes 0755",
    },
    {
      field: "mode of airlock.json",
      entry: METADATA_ENTRY,
      edit: (block) => block.write(octalField(0o6755, 8), 100, "latin1"),
      says: "mode 06755, build writes 0644",
    },
    {
      field: "mode of the signature",
      entry: SIGNATURE_ENTRY,
      edit: (block) => block.write(octalField(0o666, 8), 100, "latin1"),
      says: "mode 0666, build writes 0644",
    },
    {
      field: "devmajor (a field build leaves empty)",
      entry: "bin/k3s",
      edit: (block) => block.write(octalField(8, 8), 329, "latin1"),
      says: "differs from the one build writes, at byte 329",
    },
  ];

  for (const { field, entry, edit, says } of fields) {
    it(`${field} on ${entry}: BUNDLE_ENTRY_HEADER_MISMATCH naming the entry, the field, expected and found`, async () => {
      const path = await withEditedHeader(entry, edit);
      const error = await expectAirlockError(
        verifyBundle([path], { publicKey: pub }),
        "BUNDLE_ENTRY_HEADER_MISMATCH",
        entry,
      );
      expect(error.message).toContain(says);
      await expectImportRefused([path], "BUNDLE_ENTRY_HEADER_MISMATCH", entry);
    });
  }

  it("a PAX record giving bin/k3s uid 1000 over an untouched ustar header is refused the same way", async () => {
    const bytes = await readFile(signed);
    const at = await headerOffset("bin/k3s");
    const record = Buffer.from("12 uid=1000\n");
    const paxHeader = Buffer.from(
      encodeHeader({
        name: "PaxHeader",
        size: record.length,
        mode: 0o644,
        type: "file",
        mtime: CREATED_MTIME,
      }),
    );
    paxHeader.write("x", 156, "latin1");
    reseal(paxHeader);
    const path = join(await fx.dir("pax"), basename(signed));
    await writeFile(
      path,
      Buffer.concat([
        bytes.subarray(0, at),
        paxHeader,
        record,
        Buffer.alloc(paddingFor(record.length)),
        bytes.subarray(at),
      ]),
    );
    const listing = await runTool("tar", ["--numeric-owner", "-tvf", path]);
    expect(listing.stdout.toString()).toMatch(/-rwxr-xr-x 1000\/0 .* bin\/k3s/);
    const error = await expectAirlockError(
      verifyBundle([path], { publicKey: pub }),
      "BUNDLE_ENTRY_HEADER_MISMATCH",
      "bin/k3s",
    );
    expect(error.message).toContain("uid 1000, build writes 0");
    await expectImportRefused([path], "BUNDLE_ENTRY_HEADER_MISMATCH", "bin/k3s");
  });

  it("in a split bundle, the error names the part holding the edited header", async () => {
    const dir = await fx.dir("parts-edited");
    for (const name of await readdir(partsDir)) await copyFile(join(partsDir, name), join(dir, name));
    const copies = parts.map((part) => join(dir, basename(part)));
    const at = await headerOffset("bin/k3s");
    const index = Math.floor(at / SPLIT);
    // The part holds the whole header block, so one part's bytes are edited in place.
    expect(Math.floor((at + 511) / SPLIT)).toBe(index);
    const bytes = Buffer.from(await readFile(copies[index]!));
    const block = bytes.subarray(at - index * SPLIT, at - index * SPLIT + 512);
    block.write(octalField(0o4755, 8), 100, "latin1");
    reseal(block);
    await writeFile(copies[index]!, bytes);
    const part = basename(copies[index]!);
    const error = await expectAirlockError(
      verifyBundle([copies[0]!], { publicKey: pub }),
      "BUNDLE_ENTRY_HEADER_MISMATCH",
      `bin/k3s in part ${part}`,
    );
    expect(error.message).toContain("mode 04755");
    await expectImportRefused([copies[0]!], "BUNDLE_ENTRY_HEADER_MISMATCH", `part ${part}`);
  });
});

describe("bytes after the end-of-archive marker", () => {
  async function withTrailing(name: string, extra: Buffer): Promise<string> {
    const path = join(await fx.dir("trailing"), name);
    await writeFile(path, Buffer.concat([await readFile(signed), extra]));
    return path;
  }

  it.each([
    ["one byte", () => Buffer.from([0x41])],
    ["512 random bytes", () => Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 131 + 7) % 256))],
    ["two more zero blocks (padding build does not write)", () => Buffer.alloc(1024)],
    [
      "a whole extra entry, which tar --ignore-zeros lists",
      () => {
        const body = Buffer.from("#!/bin/sh\necho pwned\n");
        return Buffer.concat([
          encodeHeader({
            name: "bin/extra",
            size: body.length,
            mode: 0o755,
            type: "file",
            mtime: CREATED_MTIME,
          }),
          body,
          Buffer.alloc(paddingFor(body.length)),
          Buffer.alloc(1024),
        ]);
      },
    ],
  ])("%s: BUNDLE_TRAILING_DATA naming the byte, for verify and import", async (title, extra) => {
    const size = (await readFile(signed)).length;
    const path = await withTrailing(`${title.split(" ")[0]}.airlock.tar`, extra());
    if (title.startsWith("a whole")) {
      const listing = await runTool("tar", ["--ignore-zeros", "-tf", path]);
      expect(listing.stdout.toString()).toContain("bin/extra\n");
    }
    const error = await expectAirlockError(
      verifyBundle([path], { publicKey: pub }),
      "BUNDLE_TRAILING_DATA",
      `from byte ${size}`,
    );
    expect(error.message).toContain(`${extra().length} bytes follow the end-of-archive marker`);
    await expectImportRefused([path], "BUNDLE_TRAILING_DATA", `from byte ${size}`);
  });

  it("in a split bundle (parts.json updated to match), the error names the last part", async () => {
    const dir = await fx.dir("parts-trailing");
    for (const name of await readdir(partsDir)) await copyFile(join(partsDir, name), join(dir, name));
    const copies = parts.map((part) => join(dir, basename(part)));
    const last = copies.at(-1)!;
    const lastSize = (await readFile(last)).length;
    await writeFile(last, Buffer.concat([await readFile(last), Buffer.from("tail")]));
    const manifestPath = join(dir, `${basename(signed)}${PARTS_SUFFIX}`);
    const manifest = JSON.parse(await readFile(manifestPath, "utf8")) as PartsManifest;
    manifest.parts.at(-1)!.size = lastSize + 4;
    manifest.parts.at(-1)!.sha256 = await sha256File(last);
    manifest.size += 4;
    await writeFile(manifestPath, JSON.stringify(manifest));
    await expectAirlockError(
      verifyBundle([copies[0]!], { publicKey: pub }),
      "BUNDLE_TRAILING_DATA",
      `in part ${basename(last)}`,
    );
    await expectImportRefused([copies[0]!], "BUNDLE_TRAILING_DATA", `in part ${basename(last)}`);
  });
});

describe("airlock.json is checked by its schema (re-signed, so only the schema can refuse it)", () => {
  /** The signed bundle with airlock.json replaced by `transform` of it, signed again with the vendor key. */
  async function withMetadata(
    name: string,
    transform: (doc: Record<string, unknown>) => void,
  ): Promise<string> {
    const bytes = await readFile(signed);
    const entries = await indexTarFile(signed);
    const head = entries.get(METADATA_ENTRY)!;
    const doc = JSON.parse(bytes.subarray(head.dataOffset, head.dataOffset + head.size).toString()) as Record<
      string,
      unknown
    >;
    transform(doc);
    const metadata = Buffer.from(JSON.stringify(doc, null, 2) + "\n");
    const signature = signBytes(metadata, await loadPrivateKey(key));
    const entry = (entryName: string, body: Uint8Array): Buffer =>
      Buffer.concat([
        encodeHeader({
          name: entryName,
          size: body.byteLength,
          mode: 0o644,
          type: "file",
          mtime: CREATED_MTIME,
        }),
        body,
        Buffer.alloc(paddingFor(body.byteLength)),
      ]);
    const path = join(await fx.dir("metadata"), name);
    await writeFile(
      path,
      Buffer.concat([
        entry(METADATA_ENTRY, metadata),
        entry(SIGNATURE_ENTRY, signature),
        bytes.subarray(entries.get("oci-layout")!.offset),
      ]),
    );
    return path;
  }

  const cases: { title: string; transform: (doc: Record<string, unknown>) => void; field: string }[] = [
    { title: '"base": {}', transform: (doc) => (doc.base = {}), field: "base.name" },
    {
      title: "a file listed with mode 04755",
      transform: (doc) => {
        const files = doc.files as { path: string; mode: number }[];
        files.find((file) => file.path === "bin/k3s")!.mode = 0o4755;
      },
      field: "files[",
    },
    {
      title: "an image digest that is not one",
      transform: (doc) => ((doc.images as { digest: string }[])[1]!.digest = "sha256:zz"),
      field: "images[1].digest",
    },
    {
      title: "created that is not a time",
      transform: (doc) => (doc.created = "yesterday"),
      field: "created",
    },
    { title: "totals missing", transform: (doc) => delete doc.totals, field: "totals" },
  ];

  for (const { title, transform, field } of cases) {
    it(`${title}: BUNDLE_METADATA_INVALID naming ${field} from verify, inspect and import`, async () => {
      const path = await withMetadata(`${field.replace(/\W/g, "")}.airlock.tar`, transform);
      for (const run of [
        () => verifyBundle([path], { publicKey: pub }),
        () => inspectBundle([path], { publicKey: pub }),
      ]) {
        const error = await expectAirlockError(run(), "BUNDLE_METADATA_INVALID", field);
        expect(error.message).toMatch(/^airlock\.json: /);
      }
      await expectImportRefused([path], "BUNDLE_METADATA_INVALID", field);
    });
  }

  it("the same document untouched but re-signed passes, so each refusal above is its field's", async () => {
    const path = await withMetadata("untouched.airlock.tar", () => undefined);
    await verifyBundle([path], { publicKey: pub });
  });
});
