/**
 * The bundle's life, library-level: build (signed, deterministic, platform-filtered, split, delta),
 * verify, inspect, import, diff and inventory, on seeded fixtures. Issue 3, points 5–9.
 */
import { createReadStream } from "node:fs";
import { appendFile, copyFile, readFile, rm, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildBundle,
  diffBundles,
  exportInventory,
  generateKeyPair,
  importBundle,
  inspectBundle,
  readBundleHead,
  readTar,
  verifyBundle,
  BLOB_DIR,
  type BuildResult,
  type BundleMetadata,
  type PartsManifest,
} from "../../bundle/index.js";
import {
  MiB,
  blobFiles,
  expectAirlockError,
  expectStoreUnchanged,
  readTarEntry,
  runTool,
  sha256File,
  sha256Files,
  sha256Hex,
  snapshotStore,
  useFixtures,
  type Fixtures,
  withStore,
  opensslVerify,
} from "../helpers/fixtures.js";

let fx: Fixtures;
let work: string;
let key: string;
let pub: string;
let fingerprint: string;
/** The signed sample bundle, built once. */
let bundle: string;
let built: BuildResult;
let metadata: BundleMetadata;

async function metadataOf(path: string | string[]): Promise<BundleMetadata> {
  return (await readBundleHead(Array.isArray(path) ? path : [path])).metadata;
}

function blobPaths(meta: BundleMetadata): string[] {
  return meta.files
    .filter((file) => file.path.startsWith(BLOB_DIR))
    .map((file) => file.path)
    .sort();
}

beforeAll(async () => {
  fx = await useFixtures({ size: 20 * MiB });
  work = await fx.dir("work");
  key = join(work, "key.pem");
  pub = join(work, "pub.pem");
  fingerprint = (await generateKeyPair(key, pub)).fingerprint;
  bundle = join(work, "mgmt-4.5.0.airlock.tar");
  built = await buildBundle({ specFile: fx.spec, output: bundle, signKey: key });
  metadata = await metadataOf(bundle);
});

afterAll(async () => {
  await fx?.cleanup();
});

describe("build", () => {
  it("builds the sample, signed, with every image of bundle.yaml and its pack", () => {
    expect(built).toMatchObject({
      name: "mgmt",
      version: "4.5.0",
      signed: true,
      keyFingerprint: fingerprint,
      parts: undefined,
    });
    expect(built.images.map((image) => image.ref).sort()).toEqual(
      [
        "hubble/agent:4.5.0",
        "hubble/console:4.5.0",
        "hubble/msgbroker:4.5.0",
        "packs/observability:0.1.0",
      ].sort(),
    );
    expect(built.digest).toBe(`sha256:${sha256Hex(Buffer.from(JSON.stringify(metadata, null, 2) + "\n"))}`);
  });

  it("gives a byte-identical tar when built twice from the same inputs", async () => {
    const again = join(work, "again.airlock.tar");
    const second = await buildBundle({ specFile: fx.spec, output: again, signKey: key });
    expect(second.digest).toBe(built.digest);
    expect((await stat(again)).size).toBe((await stat(bundle)).size);
    expect(await sha256File(again)).toBe(await sha256File(bundle));
    await rm(again);
  });

  it("writes airlock.json first and its signature second, and openssl verifies the signature", async () => {
    const names: string[] = [];
    for await (const entry of readTar(createReadStream(bundle) as AsyncIterable<Buffer>)) {
      names.push(entry.name);
      if (names.length === 3) break;
    }
    expect(names.slice(0, 2)).toEqual(["airlock.json", "airlock.json.sig"]);

    const listing = await runTool("tar", ["-tf", bundle]);
    expect(listing.code).toBe(0);
    expect(listing.stdout.toString("utf8").split("\n").slice(0, 2)).toEqual([
      "airlock.json",
      "airlock.json.sig",
    ]);

    const out = await fx.dir("extract");
    const extract = await runTool("tar", ["-xf", bundle, "-C", out, "airlock.json", "airlock.json.sig"]);
    expect(extract.code, extract.stderr).toBe(0);
    const verified = await opensslVerify(pub, join(out, "airlock.json.sig"), join(out, "airlock.json"));
    expect(verified.stdout.toString("utf8").trim()).toBe("Verified OK");
    expect(verified.code).toBe(0);

    // The same check refuses an altered airlock.json: the assertion above can fail.
    await appendFile(join(out, "airlock.json"), " ");
    const altered = await opensslVerify(pub, join(out, "airlock.json.sig"), join(out, "airlock.json"));
    expect(altered.code).not.toBe(0);
    expect(altered.stdout.toString("utf8")).toContain("Verification failure");
  });

  it("narrows a multi-arch index to the platforms: given, which makes a new index digest", async () => {
    const text = await readFile(fx.spec, "utf8");
    const line = "    source: oci-archive:../console.oci-archive.tar:hubble/console:4.5.0\n";
    expect(text).toContain(line);
    const specFile = join(fx.sampleDir, "bundle-arm64.yaml");
    await writeFile(specFile, text.replace(line, `${line}    platforms: [linux/arm64]\n`));
    const output = join(work, "arm64.airlock.tar");
    const result = await buildBundle({ specFile, output });
    const full = built.images.find((image) => image.ref === "hubble/console:4.5.0")!;
    const narrowed = result.images.find((image) => image.ref === "hubble/console:4.5.0")!;
    expect(full.platforms).toEqual(["linux/amd64", "linux/arm64/v8"]);
    expect(full.digest).toBe(fx.summary.images["hubble/console:4.5.0"]!.digest);
    expect(narrowed.platforms).toEqual(["linux/arm64/v8"]);
    expect(narrowed.digest).not.toBe(full.digest);
    expect(narrowed.sourceDigest).toBe(full.digest);

    const index = JSON.parse(
      (await readTarEntry(output, `${BLOB_DIR}${narrowed.digest.slice("sha256:".length)}`)).toString("utf8"),
    ) as {
      manifests: { digest: string; platform?: { os: string; architecture: string } }[];
    };
    expect(index.manifests).toHaveLength(1);
    expect(index.manifests[0]!.platform).toMatchObject({ os: "linux", architecture: "arm64" });
    const fullIndex = JSON.parse(
      (await readTarEntry(bundle, `${BLOB_DIR}${full.digest.slice("sha256:".length)}`)).toString("utf8"),
    ) as typeof index;
    const amd64 = fullIndex.manifests.find((m) => m.platform?.architecture === "amd64")!;
    const narrowedMeta = await metadataOf(output);
    expect(blobPaths(narrowedMeta)).not.toContain(`${BLOB_DIR}${amd64.digest.slice("sha256:".length)}`);
    expect(narrowedMeta.totals.blobs).toBeLessThan(metadata.totals.blobs);
    expect((await verifyBundle([output])).entries).toBe(narrowedMeta.files.length);
    await rm(specFile);
  });
});

describe("verify and inspect", () => {
  it("verifies the signature with the key and every entry", async () => {
    const result = await verifyBundle([bundle], { publicKey: pub });
    expect(result).toMatchObject({
      name: "mgmt",
      version: "4.5.0",
      digest: built.digest,
      signature: { status: "verified", keyFingerprint: fingerprint },
      entries: metadata.files.length,
      bytes: (await stat(bundle)).size,
      parts: 1,
      stoppedEarly: false,
    });
    expect((await verifyBundle([bundle])).signature.status).toBe("unchecked");
  });

  it("inspects name, version, upgradeFrom, images with digests and platforms, packs, files, totals and signature", async () => {
    const result = await inspectBundle([bundle], { publicKey: pub });
    expect(result).toMatchObject({
      name: "mgmt",
      version: "4.5.0",
      upgradeFrom: ">=4.4.0 <4.5.0",
      created: "2026-11-01T00:00:00.000Z",
      digest: built.digest,
      base: undefined,
      signature: { status: "verified", keyFingerprint: fingerprint },
    });
    const byRef = new Map(result.images.map((image) => [image.ref, image]));
    expect([...byRef.keys()].sort()).toEqual([
      "hubble/agent:4.5.0",
      "hubble/console:4.5.0",
      "hubble/msgbroker:4.5.0",
      "packs/observability:0.1.0",
    ]);
    expect(byRef.get("hubble/console:4.5.0")).toMatchObject({
      digest: fx.summary.images["hubble/console:4.5.0"]!.digest,
      platforms: ["linux/amd64", "linux/arm64/v8"],
      kind: "image",
      blobs: fx.summary.images["hubble/console:4.5.0"]!.blobs,
    });
    // The real broker, built for this host's platform.
    expect(byRef.get("hubble/msgbroker:4.5.0")).toMatchObject({
      digest: fx.summary.images["hubble/msgbroker:4.5.0"]!.digest,
      platforms: fx.summary.images["hubble/msgbroker:4.5.0"]!.platforms,
      kind: "image",
      blobs: 3,
    });
    expect(byRef.get("hubble/agent:4.5.0")).toMatchObject({ platforms: ["linux/amd64"], kind: "image" });
    expect(byRef.get("packs/observability:0.1.0")).toMatchObject({ kind: "pack" });
    for (const image of result.images) {
      // Each image's top document is a blob of the bundle, of the size inspect reports.
      const body = await readTarEntry(bundle, `${BLOB_DIR}${image.digest.slice("sha256:".length)}`);
      expect(`sha256:${sha256Hex(body)}`).toBe(image.digest);
      expect(body.byteLength).toBe(image.size);
      expect(image.totalBytes).toBeGreaterThan(image.size);
    }
    expect(result.packs).toEqual([
      {
        name: "observability",
        version: "0.1.0",
        ref: "packs/observability:0.1.0",
        digest: byRef.get("packs/observability:0.1.0")!.digest,
      },
    ]);
    const k3s = join(fx.sampleDir, "bin", "k3s");
    expect(result.files.map((file) => file.path).sort()).toEqual([
      "bin/k3s",
      "manifests/namespace.yaml",
      "manifests/values.yaml",
    ]);
    expect(result.files.find((file) => file.path === "bin/k3s")).toMatchObject({
      size: (await stat(k3s)).size,
      sha256: await sha256File(k3s),
      mode: 0o755,
    });
    const blobs = metadata.files.filter((file) => file.path.startsWith(BLOB_DIR));
    expect(result.totals).toMatchObject({
      images: 4,
      blobs: blobs.length,
      blobBytes: blobs.reduce((sum, file) => sum + file.size, 0),
      files: metadata.files.length,
      archiveBytes: (await stat(bundle)).size,
      parts: 1,
    });
    expect((await inspectBundle([bundle])).signature.status).toBe("unchecked");
  });
});

describe("import", () => {
  it("imports into a data dir: fsck clean, tags visible; a re-import is a no-op that rewrites nothing", async () => {
    const dataDir = await fx.dir("data");
    await withStore(dataDir, async (store) => {
      const result = await importBundle(store, [bundle], { publicKey: pub });
      expect(result).toMatchObject({
        imported: true,
        name: "mgmt",
        version: "4.5.0",
        digest: built.digest,
        signature: { status: "verified" },
      });
      expect(result.blobsWritten).toBeGreaterThanOrEqual(metadata.totals.blobs);
      const report = await store.fsck();
      expect(report).toMatchObject({ ok: true, corrupt: [], missing: [], unreferenced: [], staleIngests: 0 });
      for (const image of metadata.images) {
        const [repository, tag] = image.ref.split(":") as [string, string];
        expect(store.resolveTag(repository, tag), image.ref).toBe(image.digest);
      }
      const bundles = store.listBundles();
      expect(bundles).toHaveLength(1);
      expect(bundles[0]).toMatchObject({
        name: "mgmt",
        version: "4.5.0",
        digest: built.digest,
        signature: "verified",
        upgradeFrom: ">=4.4.0 <4.5.0",
      });
      expect(bundles[0]!.files.map((file) => file.path).sort()).toEqual([
        "bin/k3s",
        "manifests/namespace.yaml",
        "manifests/values.yaml",
      ]);
    });

    const before = await blobFiles(dataDir);
    const snapshot = await snapshotStore(dataDir);
    await withStore(dataDir, async (store) => {
      const again = await importBundle(store, [bundle], { publicKey: pub });
      expect(again).toMatchObject({
        imported: false,
        blobsWritten: 0,
        bytesWritten: 0,
        digest: built.digest,
      });
    });
    expect(await blobFiles(dataDir)).toEqual(before);
    await expectStoreUnchanged(dataDir, snapshot);
  });
});

describe("split bundles", () => {
  let splitOutput: string;
  let parts: string[];
  let unsplit: string;

  beforeAll(async () => {
    const dir = await fx.dir("split");
    splitOutput = join(dir, "mgmt-4.5.0.airlock.tar");
    const result = await buildBundle({
      specFile: fx.spec,
      output: splitOutput,
      signKey: key,
      splitSize: 5 * MiB,
    });
    parts = result.parts!.map((part) => join(dir, part.name));
    unsplit = bundle;
  });

  it("writes parts of at most the split size and a .parts.json naming each part's size and sha256", async () => {
    expect(parts.length).toBeGreaterThanOrEqual(4);
    expect(parts.map((part) => basename(part))).toEqual(
      parts.map((_, i) => `mgmt-4.5.0.airlock.tar.${String(i + 1).padStart(3, "0")}`),
    );
    const manifest = JSON.parse(await readFile(`${splitOutput}.parts.json`, "utf8")) as PartsManifest;
    expect(manifest.bundle).toBe("mgmt-4.5.0.airlock.tar");
    expect(manifest.parts.map((part) => part.name)).toEqual(parts.map((part) => basename(part)));
    let total = 0;
    for (const [i, part] of parts.entries()) {
      const size = (await stat(part)).size;
      if (i < parts.length - 1) expect(size).toBe(5 * MiB);
      else expect(size).toBeLessThanOrEqual(5 * MiB);
      expect(manifest.parts[i]).toEqual({ name: basename(part), size, sha256: await sha256File(part) });
      total += size;
    }
    expect(manifest.size).toBe(total);
    await expect(stat(splitOutput)).rejects.toThrow();
  });

  it("joins with cat into exactly the unsplit build", async () => {
    expect(await sha256Files(parts)).toBe(await sha256File(unsplit));
  });

  it("verifies and imports from the first part, from .parts.json and from the explicit list", async () => {
    const inputs = [[parts[0]!], [`${splitOutput}.parts.json`], parts];
    for (const input of inputs) {
      const verified = await verifyBundle(input, { publicKey: pub });
      expect(verified, input.join(" ")).toMatchObject({
        digest: built.digest,
        parts: parts.length,
        entries: metadata.files.length,
        signature: { status: "verified" },
      });
      const dataDir = await fx.dir("data-split");
      await withStore(dataDir, async (store) => {
        const imported = await importBundle(store, input, { publicKey: pub });
        expect(imported).toMatchObject({ imported: true, digest: built.digest, parts: parts.length });
        expect((await store.fsck()).ok).toBe(true);
        expect(store.listBundles().map((b) => b.digest)).toEqual([built.digest]);
      });
      await rm(dataDir, { recursive: true, force: true });
    }
  });

  it("reads an explicit list of parts where they were named, even on different media", async () => {
    const stickA = await fx.dir("stick-a");
    const stickB = await fx.dir("stick-b");
    const [first, ...rest] = parts;
    await copyFile(first!, join(stickA, basename(first!)));
    await copyFile(`${splitOutput}.parts.json`, join(stickA, basename(`${splitOutput}.parts.json`)));
    for (const part of rest) await copyFile(part, join(stickB, basename(part)));
    const named = [join(stickA, basename(first!)), ...rest.map((part) => join(stickB, basename(part)))];
    const verified = await verifyBundle(named, { publicKey: pub });
    expect(verified).toMatchObject({
      digest: built.digest,
      parts: parts.length,
      signature: { status: "verified" },
    });
  });
});

describe("delta bundles", () => {
  let dir: string;
  let full440: string;
  let delta: string;
  let deltaBuilt: BuildResult;
  /** A store holding 4.4.0, the site the delta is for. */
  let site: string;
  let inventoryFile: string;
  const sharedPath = (): string => `${BLOB_DIR}${fx.summary.sharedLayerDigest.slice("sha256:".length)}`;

  beforeAll(async () => {
    dir = await fx.dir("delta");
    full440 = join(dir, "mgmt-4.4.0.airlock.tar");
    await buildBundle({ specFile: fx.spec440, output: full440, signKey: key });
    site = await fx.dir("site");
    await withStore(site, async (store) => {
      expect((await importBundle(store, [full440], { publicKey: pub })).imported).toBe(true);
      inventoryFile = join(dir, "inventory.json");
      await writeFile(inventoryFile, JSON.stringify(await exportInventory(store)));
    });
    delta = join(dir, "mgmt-4.5.0-delta.airlock.tar");
    deltaBuilt = await buildBundle({ specFile: fx.spec, output: delta, signKey: key, base: [full440] });
  });

  it("leaves out the blobs the base carries: the layer 4.4.0 shares with 4.5.0", async () => {
    const deltaMeta = await metadataOf(delta);
    const base440 = await readBundleHead([full440]);
    expect(blobPaths(base440.metadata)).toContain(sharedPath());
    expect(blobPaths(metadata)).toContain(sharedPath());
    expect(blobPaths(deltaMeta)).not.toContain(sharedPath());
    expect(blobPaths(deltaMeta)).toEqual(blobPaths(metadata).filter((path) => path !== sharedPath()));
    expect(deltaMeta.totals.blobs).toBe(metadata.totals.blobs - 1);
    const sharedSize = metadata.files.find((file) => file.path === sharedPath())!.size;
    expect(deltaMeta.base).toEqual({
      name: "mgmt",
      version: "4.4.0",
      digest: base440.digest,
      blobs: [{ digest: fx.summary.sharedLayerDigest, size: sharedSize }],
    });
    expect(deltaBuilt.base).toEqual({
      name: "mgmt",
      version: "4.4.0",
      blobsOmitted: 1,
      bytesOmitted: sharedSize,
    });
    expect((await stat(delta)).size).toBeLessThan((await stat(bundle)).size);
    // The images are the same: only the carriage differs.
    expect(deltaMeta.images).toEqual(metadata.images);
    const inspected = await inspectBundle([delta]);
    expect(inspected.base).toEqual({
      name: "mgmt",
      version: "4.4.0",
      digest: base440.digest,
      blobs: 1,
      bytes: sharedSize,
    });
    expect((await verifyBundle([delta], { publicKey: pub })).entries).toBe(deltaMeta.files.length);
  });

  it("diffBundles reports the shared layer and what a delta carries", async () => {
    const diff = await diffBundles([full440], [bundle]);
    const sharedSize = metadata.files.find((file) => file.path === sharedPath())!.size;
    expect(diff.from).toMatchObject({ name: "mgmt", version: "4.4.0" });
    expect(diff.to).toMatchObject({ name: "mgmt", version: "4.5.0", digest: built.digest });
    expect(diff.images.added.map((image) => image.ref).sort()).toEqual([
      "hubble/agent:4.5.0",
      "hubble/console:4.5.0",
      "hubble/msgbroker:4.5.0",
      "packs/observability:0.1.0",
    ]);
    expect(diff.images.removed.map((image) => image.ref)).toEqual(["hubble/msgbroker:4.4.0"]);
    expect(diff.blobs).toMatchObject({
      shared: 1,
      sharedBytes: sharedSize,
      onlyTo: metadata.totals.blobs - 1,
    });
    const deltaMeta = await metadataOf(delta);
    expect(diff.deltaBytes).toBe(deltaMeta.totals.blobBytes);
    expect(diff.files.added).toContain("bin/k3s");
    // A delta describes the same content as the full bundle it replaces.
    const viaDelta = await diffBundles([full440], [delta]);
    expect(viaDelta.blobs).toEqual(diff.blobs);
    expect(viaDelta.images).toEqual(diff.images);
  });

  it("refuses a delta into a store without its base, naming the base, and writes nothing", async () => {
    const dataDir = await fx.dir("no-base");
    // Without the base check this import would succeed and leave the shared layer missing (fsck would fail).
    const before = await snapshotStore(dataDir);
    await withStore(dataDir, async (store) => {
      const error = await expectAirlockError(
        importBundle(store, [delta], { publicKey: pub }),
        "BUNDLE_BASE_MISSING",
        "mgmt 4.4.0",
      );
      expect(error.hint).toContain("mgmt 4.4.0");
    });
    await expectStoreUnchanged(dataDir, before);
    expect(before.blobs).toEqual([]);
  });

  it("imports the delta where its base was imported: fsck clean, every image tagged", async () => {
    const shared = (await blobFiles(site)).get(fx.summary.sharedLayerDigest);
    expect(shared).toBeDefined();
    await withStore(site, async (store) => {
      const result = await importBundle(store, [delta], { publicKey: pub });
      expect(result).toMatchObject({ imported: true, version: "4.5.0" });
      expect(result.blobsPresent).toBeGreaterThanOrEqual(1);
      expect(await store.fsck()).toMatchObject({ ok: true, corrupt: [], missing: [], unreferenced: [] });
      for (const image of metadata.images) {
        const [repository, tag] = image.ref.split(":") as [string, string];
        expect(store.resolveTag(repository, tag)).toBe(image.digest);
      }
      expect(store.resolveTag("hubble/msgbroker", "4.4.0")).toBeDefined();
      expect(store.listBundles().map((b) => b.version)).toEqual(["4.4.0", "4.5.0"]);
    });
    expect((await blobFiles(site)).get(fx.summary.sharedLayerDigest)).toEqual(shared);
  });

  it("a delta whose base holds every blob carries none, and still verifies and imports", async () => {
    // Its layout has blobs/sha256/ but no blob in it: a release that only changes manifests or files.
    const output = join(dir, "mgmt-4.5.0-empty-delta.airlock.tar");
    const result = await buildBundle({ specFile: fx.spec, output, signKey: key, base: [bundle] });
    const meta = await metadataOf(output);
    expect(blobPaths(meta)).toEqual([]);
    expect(meta.totals.blobs).toBe(0);
    expect(result.base?.blobsOmitted).toBe(metadata.totals.blobs);
    expect((await verifyBundle([output], { publicKey: pub })).entries).toBe(meta.files.length);
    const dataDir = await fx.dir("empty-delta");
    await withStore(dataDir, async (store) => {
      expect((await importBundle(store, [bundle])).imported).toBe(true);
      const imported = await importBundle(store, [output], { publicKey: pub });
      expect(imported).toMatchObject({ imported: true, blobsWritten: 0 });
      expect((await store.fsck()).ok).toBe(true);
    });
  });

  it("a delta built from the site's inventory carries the same blobs as one built from the base bundle", async () => {
    const output = join(dir, "mgmt-4.5.0-inv.airlock.tar");
    const result = await buildBundle({
      specFile: fx.spec,
      output,
      signKey: key,
      baseInventory: inventoryFile,
    });
    const viaInventory = await metadataOf(output);
    const viaBase = await metadataOf(delta);
    expect(blobPaths(viaInventory)).toEqual(blobPaths(viaBase));
    expect(viaInventory.base).toEqual(viaBase.base);
    expect(result.base).toEqual(deltaBuilt.base);
  });
});

describe("signature on re-import", () => {
  it("an unsigned import of the same airlock.json is upgraded to verified when the signed bundle is imported with --key", async () => {
    const unsigned = join(work, "unsigned.airlock.tar");
    const unsignedBuild = await buildBundle({ specFile: fx.spec, output: unsigned });
    expect(unsignedBuild.digest).toBe(built.digest);
    const dataDir = await fx.dir("data-resign");
    await withStore(dataDir, async (store) => {
      await importBundle(store, [unsigned]);
      expect(store.findBundle(built.digest)?.signature).toBe("unsigned");
      const again = await importBundle(store, [bundle], { publicKey: pub });
      expect(again.imported).toBe(false);
      expect(store.findBundle(built.digest)?.signature).toBe("verified");
      await importBundle(store, [unsigned]);
      expect(store.findBundle(built.digest)?.signature).toBe("verified");
    });
  });
});
