/**
 * Bad input (issue 3, point 11, and the entry rules of point 6): every case gives a typed
 * AirlockError whose where/message names the culprit and which carries a hint; imports harm nothing
 * already stored (blob files, bundle rows, tags) and leave no ingest leftovers and a clean fsck. Blobs
 * a failed import stored before it met the fault stay, unreferenced, for gc (issue 10, point 5).
 */
import { copyFile, mkdir, readFile, readdir, rm, stat, symlink, truncate, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BLOB_DIR,
  buildBundle,
  encodeHeader,
  endOfArchive,
  generateKeyPair,
  importBundle,
  indexTarFile,
  paddingFor,
  verifyBundle,
} from "../../bundle/index.js";
import { type WriteChunk, writeFully } from "../../registry/store/index.js";
import {
  MiB,
  expectAirlockError,
  flipByte,
  ingestFiles,
  rejection,
  runTool,
  snapshotStore,
  useFixtures,
  type Fixtures,
  type StoreSnapshot,
  withStore,
} from "../helpers/fixtures.js";

const SPLIT = 2 * MiB;

let fx: Fixtures;
let work: string;
let pub: string;
let otherPub: string;
let signed: string;
let unsigned: string;
let full440: string;
/** Parts of the signed bundle split at SPLIT bytes, in a directory of their own. */
let partsDir: string;
let parts: string[];

/** A site that already holds mgmt 4.4.0: a failed import must not harm what is there. */
async function site(): Promise<{ dataDir: string; before: StoreSnapshot }> {
  const dataDir = await fx.dir("site");
  await withStore(dataDir, async (store) => {
    expect((await importBundle(store, [full440])).imported).toBe(true);
  });
  const before = await snapshotStore(dataDir);
  expect(before.bundles).toHaveLength(1);
  expect(before.blobs.length).toBeGreaterThan(3);
  return { dataDir, before };
}

/**
 * Every blob file that was there is still there, untouched (inode and mtime); bundle rows and tags are
 * as they were; no ingest leftovers; and whatever blob the failed import added is referenced by nothing.
 */
async function expectStoreUnharmed(dataDir: string, before: StoreSnapshot): Promise<void> {
  const after = await snapshotStore(dataDir);
  const names = new Set(before.blobs.map((blob) => blob.name));
  expect(after.blobs.filter((blob) => names.has(blob.name))).toEqual(before.blobs);
  expect(after.bundles).toEqual(before.bundles);
  expect(after.tags).toEqual(before.tags);
  expect(after.ingest).toEqual([]);
  const added = after.blobs.filter((blob) => !names.has(blob.name)).map((blob) => blob.name);
  const unreferenced = await withStore(dataDir, async (store) => (await store.fsck()).unreferenced);
  expect(unreferenced.filter((digest) => added.includes(digest)).sort()).toEqual(added.sort());
}

/** Imports `paths` into a site holding 4.4.0; expects `code` naming `culprit`, and the store unharmed. */
async function expectImportRefused(
  paths: string[],
  code: string,
  culprit?: string | RegExp,
  options: { publicKey?: string } = {},
): Promise<void> {
  const { dataDir, before } = await site();
  await withStore(dataDir, async (store) => {
    await expectAirlockError(importBundle(store, paths, options), code, culprit);
  });
  await expectStoreUnharmed(dataDir, before);
}

/** A copy of the split parts and their .parts.json in a fresh directory, to damage. */
async function copyParts(): Promise<string[]> {
  const dir = await fx.dir("parts-copy");
  for (const name of await readdir(partsDir)) await copyFile(join(partsDir, name), join(dir, name));
  return parts.map((part) => join(dir, basename(part)));
}

async function copyOf(path: string, name: string): Promise<string> {
  const target = join(await fx.dir("copy"), name);
  await copyFile(path, target);
  return target;
}

/** Blob entries of the signed bundle with their offsets in the tar. */
async function blobEntries(): Promise<{ name: string; dataOffset: number; size: number; offset: number }[]> {
  const entries = await indexTarFile(signed);
  return [...entries.values()]
    .filter((entry) => entry.name.startsWith(BLOB_DIR) && entry.size > 0)
    .sort((a, b) => a.offset - b.offset);
}

/** The signed bundle's bytes without its end-of-archive blocks, so entries can be appended. */
async function bundleBody(): Promise<Buffer> {
  const bytes = await readFile(signed);
  const eoa = endOfArchive().byteLength;
  expect(bytes.subarray(bytes.byteLength - eoa).every((byte) => byte === 0)).toBe(true);
  return bytes.subarray(0, bytes.byteLength - eoa);
}

function fileEntry(name: string, body: Uint8Array): Buffer {
  return Buffer.concat([
    encodeHeader({ name, size: body.byteLength, mode: 0o644, type: "file", mtime: 0 }),
    body,
    new Uint8Array(paddingFor(body.byteLength)),
  ]);
}

/** Writes a crafted bundle: the real one with `extra` appended after its last entry (or inserted after its signature). */
async function crafted(
  name: string,
  extra: Buffer,
  where: "end" | "after-signature" = "end",
): Promise<string> {
  const body = await bundleBody();
  let bytes: Buffer;
  if (where === "end") {
    bytes = Buffer.concat([body, extra, endOfArchive()]);
  } else {
    const entries = await indexTarFile(signed);
    const afterSig = entries.get("oci-layout")!.offset;
    bytes = Buffer.concat([body.subarray(0, afterSig), extra, body.subarray(afterSig), endOfArchive()]);
  }
  const path = join(await fx.dir("crafted"), name);
  await writeFile(path, bytes);
  return path;
}

/** The header block(s) GNU tar writes for one path, end-of-archive stripped: a real tar's symlink or device entry. */
async function gnuTarHeader(args: string[]): Promise<Buffer> {
  const out = join(await fx.dir("gnutar"), "one.tar");
  const result = await runTool("tar", ["--format=ustar", "-cf", out, ...args]);
  expect(result.code, result.stderr).toBe(0);
  const bytes = await readFile(out);
  const header = bytes.subarray(0, 512);
  expect(header.every((byte) => byte === 0)).toBe(false);
  expect(bytes.subarray(512, 1024).every((byte) => byte === 0)).toBe(true);
  return Buffer.from(header);
}

beforeAll(async () => {
  fx = await useFixtures({ size: 8 * MiB });
  work = await fx.dir("work");
  const key = join(work, "key.pem");
  pub = join(work, "pub.pem");
  otherPub = join(work, "other-pub.pem");
  await generateKeyPair(key, pub);
  await generateKeyPair(join(work, "other-key.pem"), otherPub);
  signed = join(work, "signed.airlock.tar");
  unsigned = join(work, "unsigned.airlock.tar");
  full440 = join(work, "mgmt-4.4.0.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: signed, signKey: key });
  await buildBundle({ specFile: fx.spec, output: unsigned });
  await buildBundle({ specFile: fx.spec440, output: full440 });
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

describe("build refuses a bad bundle.yaml or source", () => {
  async function specWith(name: string, transform: (text: string) => string): Promise<string> {
    const text = await readFile(fx.spec, "utf8");
    const changed = transform(text);
    expect(changed).not.toBe(text);
    const file = join(fx.sampleDir, name);
    await writeFile(file, changed);
    return file;
  }

  async function expectNoOutput(dir: string): Promise<void> {
    expect(await readdir(dir)).toEqual([]);
  }

  it("invalid bundle.yaml: SPEC_INVALID at file:line:col", async () => {
    const file = await specWith("bad-version.yaml", (text) =>
      text.replace("version: 4.5.0", "version: four-point-five"),
    );
    const out = await fx.dir("out");
    const error = await expectAirlockError(
      buildBundle({ specFile: file, output: join(out, "x.tar") }),
      "SPEC_INVALID",
      `${file}:2:10`,
    );
    expect(error.where).toBe(`${file}:2:10`);
    expect(error.message).toContain("four-point-five");
    expect(error.exitCode).toBe(2);
    await expectNoOutput(out);
  });

  it("unknown image ref in a source: IMAGE_NOT_FOUND naming the ref and the source", async () => {
    const file = await specWith("unknown-ref.yaml", (text) =>
      text.replace(
        "source: oci:../layout:hubble/msgbroker:4.5.0",
        "source: oci:../layout:hubble/msgbroker:9.9.9",
      ),
    );
    const out = await fx.dir("out");
    const error = await expectAirlockError(
      buildBundle({ specFile: file, output: join(out, "x.tar") }),
      "IMAGE_NOT_FOUND",
      "hubble/msgbroker:9.9.9",
    );
    expect(error.where).toContain("layout");
    expect(error.hint).toContain("hubble/msgbroker:4.5.0");
    await expectNoOutput(out);
  });

  it("digest pin mismatch: DIGEST_PIN_MISMATCH naming the image and both digests", async () => {
    const pin = `sha256:${"0".repeat(64)}`;
    const file = await specWith("bad-pin.yaml", (text) =>
      text.replace(
        "source: oci:../layout:hubble/msgbroker:4.5.0\n",
        `source: oci:../layout:hubble/msgbroker:4.5.0\n    digest: ${pin}\n`,
      ),
    );
    const out = await fx.dir("out");
    const error = await expectAirlockError(
      buildBundle({ specFile: file, output: join(out, "x.tar") }),
      "DIGEST_PIN_MISMATCH",
      "hubble/msgbroker:4.5.0",
    );
    expect(error.message).toContain(pin);
    expect(error.message).toContain(fx.summary.images["hubble/msgbroker:4.5.0"]!.digest);
    await expectNoOutput(out);
  });

  it("a manifests file whose name verify would refuse: PATH_UNSUPPORTED before anything is written", async () => {
    const odd = join(fx.sampleDir, "manifests", "my config.yaml");
    await writeFile(odd, "kind: ConfigMap\n");
    try {
      const out = await fx.dir("out");
      await expectAirlockError(
        buildBundle({ specFile: fx.spec, output: join(out, "x.tar") }),
        "PATH_UNSUPPORTED",
        "my config.yaml",
      );
      await expectNoOutput(out);
    } finally {
      await rm(odd);
    }
  });
});

describe("damaged bundles", () => {
  it("truncated tar: BUNDLE_TRUNCATED at the byte where it ends, for verify and import", async () => {
    const last = (await blobEntries()).at(-1)!;
    const cut = last.dataOffset + Math.floor(last.size / 2);
    expect(cut).toBeGreaterThan((await stat(signed)).size / 2);
    const path = await copyOf(signed, "truncated.airlock.tar");
    await truncate(path, cut);
    const error = await expectAirlockError(
      verifyBundle([path], { publicKey: pub }),
      "BUNDLE_TRUNCATED",
      `byte ${cut}`,
    );
    expect(error.where).toBe(last.name);
    await expectImportRefused([path], "BUNDLE_TRUNCATED", `byte ${cut}`, { publicKey: pub });
  });

  it("one flipped byte inside a blob's body: BUNDLE_ENTRY_CORRUPT naming that blob, for verify and import", async () => {
    // The last layer: every blob before it has been written by the time import meets it.
    const entries = (await blobEntries()).filter((entry) => entry.size > 64 * 1024);
    const victim = entries.at(-1)!;
    const path = await copyOf(signed, "flipped.airlock.tar");
    await flipByte(path, victim.dataOffset + Math.floor(victim.size / 2));
    const error = await expectAirlockError(
      verifyBundle([path], { publicKey: pub }),
      "BUNDLE_ENTRY_CORRUPT",
      victim.name,
    );
    expect(error.where).toBe(victim.name);
    await expectImportRefused([path], "BUNDLE_ENTRY_CORRUPT", victim.name, { publicKey: pub });
  });
});

describe("split bundles", () => {
  it("a missing part: BUNDLE_PART_MISSING naming it", async () => {
    const copies = await copyParts();
    const gone = copies[1]!;
    await rm(gone);
    for (const input of [[copies[0]!], [`${copies[0]!.replace(/\.001$/, "")}.parts.json`]]) {
      await expectAirlockError(
        verifyBundle(input, { publicKey: pub }),
        "BUNDLE_PART_MISSING",
        basename(gone),
      );
      await expectImportRefused(input, "BUNDLE_PART_MISSING", basename(gone), { publicKey: pub });
    }
  });

  it("parts named out of order: BUNDLE_PARTS_ORDER naming the misplaced part", async () => {
    const swapped = [parts[1]!, parts[0]!, ...parts.slice(2)];
    const error = await expectAirlockError(
      verifyBundle(swapped, { publicKey: pub }),
      "BUNDLE_PARTS_ORDER",
      basename(parts[1]!),
    );
    expect(error.hint).toContain(parts.map((part) => basename(part)).join(" "));
    expect(error.exitCode).toBe(2);
    await expectImportRefused(swapped, "BUNDLE_PARTS_ORDER", basename(parts[1]!), { publicKey: pub });
  });

  it("parts named out of order without their .parts.json: a typed error whose hint is about order", async () => {
    const copies = await copyParts();
    await rm(`${copies[0]!.replace(/\.001$/, "")}.parts.json`);
    const swapped = [copies[1]!, copies[0]!, ...copies.slice(2)];
    const error = await rejection(verifyBundle(swapped, { publicKey: pub }));
    expect(["BUNDLE_CORRUPT", "BUNDLE_METADATA_MISSING", "BUNDLE_TRUNCATED"]).toContain(error.code);
    expect(error.hint).toContain("in order");
    await expectImportRefused(swapped, error.code, undefined, { publicKey: pub });
  });

  it("a flipped byte in part 2 names part 2 and the entry", async () => {
    const copies = await copyParts();
    // A byte of a blob's body that lies in part 2.
    const target = (await blobEntries()).find(
      (entry) => entry.dataOffset + entry.size > SPLIT + 4096 && entry.dataOffset < 2 * SPLIT - 4096,
    )!;
    expect(target).toBeDefined();
    const offset = Math.max(target.dataOffset, SPLIT) + 100;
    expect(offset).toBeLessThan(Math.min(target.dataOffset + target.size, 2 * SPLIT));
    await flipByte(copies[1]!, offset - SPLIT);
    const part2 = basename(copies[1]!);
    for (const input of [[copies[0]!], copies]) {
      const error = await expectAirlockError(
        verifyBundle(input, { publicKey: pub }),
        "BUNDLE_ENTRY_CORRUPT",
        `part ${part2}`,
      );
      expect(error.where).toContain(target.name);
      expect(error.hint).toContain(part2);
    }
    await expectImportRefused([copies[0]!], "BUNDLE_ENTRY_CORRUPT", `part ${part2}`, { publicKey: pub });
  });
});

describe("signatures", () => {
  it("wrong key: BUNDLE_SIGNATURE_INVALID", async () => {
    const error = await expectAirlockError(
      verifyBundle([signed], { publicKey: otherPub }),
      "BUNDLE_SIGNATURE_INVALID",
      signed,
    );
    expect(error.hint).toMatch(/key/);
    await expectImportRefused([signed], "BUNDLE_SIGNATURE_INVALID", signed, { publicKey: otherPub });
  });

  it("unsigned bundle when a key is given: BUNDLE_UNSIGNED", async () => {
    await expectAirlockError(verifyBundle([unsigned], { publicKey: pub }), "BUNDLE_UNSIGNED", unsigned);
    await expectImportRefused([unsigned], "BUNDLE_UNSIGNED", unsigned, { publicKey: pub });
    // Without a key it is accepted and reported unsigned: the refusal above is the key's doing.
    expect((await verifyBundle([unsigned])).signature.status).toBe("unsigned");
  });
});

describe("unsafe and unexpected entries (signature intact: the metadata is the vendor's)", () => {
  const cases: { title: string; file: () => Promise<string>; code: string; culprit: string | RegExp }[] = [
    {
      title: "path traversal entry at the end",
      file: () =>
        crafted("traversal.tar", fileEntry("../../etc/cron.d/evil", Buffer.from("* * * * * root sh\n"))),
      code: "BUNDLE_ENTRY_UNSAFE",
      culprit: "../../etc/cron.d/evil",
    },
    {
      title: "path traversal entry inside a known directory, right after the signature",
      file: () =>
        crafted(
          "traversal-early.tar",
          fileEntry("manifests/../../evil", Buffer.from("x")),
          "after-signature",
        ),
      code: "BUNDLE_ENTRY_UNSAFE",
      culprit: "manifests/../../evil",
    },
    {
      title: "absolute path",
      file: () => crafted("absolute.tar", fileEntry("/etc/cron.d/evil", Buffer.from("x"))),
      code: "BUNDLE_ENTRY_UNSAFE",
      culprit: "/etc/cron.d/evil",
    },
    {
      title: "symlink entry (made by GNU tar)",
      file: async () => {
        const dir = await fx.dir("link");
        await mkdir(join(dir, "bin"));
        await symlink("/etc/passwd", join(dir, "bin", "evil"));
        return crafted("symlink.tar", await gnuTarHeader(["-C", dir, "bin/evil"]));
      },
      code: "BUNDLE_ENTRY_UNSAFE",
      culprit: /bin\/evil[\s\S]*symbolic link|symbolic link[\s\S]*bin\/evil/,
    },
    {
      title: "device entry (GNU tar of /dev/null)",
      file: async () =>
        crafted(
          "device.tar",
          await gnuTarHeader(["-C", "/", "--transform=s,^dev/null$,bin/null,", "dev/null"]),
        ),
      code: "BUNDLE_ENTRY_UNSAFE",
      culprit: /bin\/null[\s\S]*device|device[\s\S]*bin\/null/,
    },
    {
      title: "unknown extra entry",
      file: () => crafted("extra.tar", fileEntry("bin/extra", Buffer.from("not listed in airlock.json\n"))),
      code: "BUNDLE_ENTRY_UNKNOWN",
      culprit: "bin/extra",
    },
    {
      title: "duplicate entry",
      file: async () => {
        const entries = await indexTarFile(signed);
        const values = entries.get("manifests/values.yaml")!;
        const bytes = await readFile(signed);
        const whole = bytes.subarray(
          values.offset,
          values.dataOffset + values.size + paddingFor(values.size),
        );
        return crafted("duplicate.tar", Buffer.from(whole));
      },
      code: "BUNDLE_ENTRY_DUPLICATE",
      culprit: "manifests/values.yaml",
    },
  ];

  for (const testCase of cases) {
    it(`${testCase.title}: ${testCase.code}, nothing of it visible and nothing stored harmed`, async () => {
      const path = await testCase.file();
      // Still a well-formed tar that GNU tar lists: the refusal is Airlock's, not a parse failure.
      expect((await runTool("tar", ["-tf", path])).code).toBe(0);
      const error = await expectAirlockError(
        verifyBundle([path], { publicKey: pub }),
        testCase.code,
        testCase.culprit,
      );
      expect(error.code).not.toBe("BUNDLE_CORRUPT");
      await expectImportRefused([path], testCase.code, testCase.culprit, { publicKey: pub });
    });
  }
});

describe("disk full during import", () => {
  it("an injected ENOSPC gives STORE_DISK_FULL, nothing stored harmed and no ingest leftovers; a later import completes", async () => {
    const { dataDir, before } = await site();
    const limit = 3 * MiB;
    let written = 0;
    let failures = 0;
    const writeChunk: WriteChunk = async (handle, chunk, position) => {
      if (written + chunk.byteLength > limit) {
        failures++;
        throw Object.assign(new Error("no space left on device (injected)"), { code: "ENOSPC" });
      }
      written += chunk.byteLength;
      await writeFully(handle, chunk, position);
    };
    await withStore(
      dataDir,
      async (store) => {
        const error = await expectAirlockError(
          importBundle(store, [signed], { publicKey: pub }),
          "STORE_DISK_FULL",
          dataDir,
        );
        expect(error.hint).toMatch(/space/);
      },
      { writeChunk },
    );
    expect(failures).toBe(1);
    expect(written).toBeGreaterThan(MiB);
    expect(await ingestFiles(dataDir)).toEqual([]);
    await expectStoreUnharmed(dataDir, before);

    // Space freed: the same import completes.
    await withStore(dataDir, async (store) => {
      expect((await importBundle(store, [signed], { publicKey: pub })).imported).toBe(true);
      expect((await store.fsck()).ok).toBe(true);
      expect(store.listBundles().map((b) => b.version)).toEqual(["4.4.0", "4.5.0"]);
    });
  });
});
