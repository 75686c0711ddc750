/**
 * Interop with a real OCI tool (issue 3, point 10): the bundle's root and the store are OCI image
 * layouts that skopeo reads. skopeo is a required peer: its absence fails these tests.
 */
import { access, constants, readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, importBundle, readBundleHead, type BundleMetadata } from "../../bundle/index.js";
import { Store } from "../../registry/store/index.js";
import { MiB, runTool, sha256Hex, useFixtures, type Fixtures } from "../helpers/fixtures.js";

const SKOPEO = "/usr/bin/skopeo";

let fx: Fixtures;
let bundle: string;
let metadata: BundleMetadata;
let dataDir: string;
/** skopeo unpacks oci-archive: into TMPDIR; keep that inside the fixtures dir so it is removed. */
let scratch: string;
/** The bundle extracted with GNU tar: its root is an OCI layout. */
let bundleLayout: string;

interface Manifestish {
  manifests?: { digest: string }[];
  config?: { digest: string };
}

async function readLayoutBlob(layout: string, digest: string): Promise<Buffer> {
  return readFile(join(layout, "blobs", "sha256", digest.slice("sha256:".length)));
}

/** The config digests an image manifest or index leads to, read from an OCI layout directory. */
async function configsOf(layout: string, raw: Buffer): Promise<string[]> {
  const doc = JSON.parse(raw.toString("utf8")) as Manifestish;
  if (doc.config !== undefined) return [doc.config.digest];
  const out: string[] = [];
  for (const child of doc.manifests ?? [])
    out.push(...(await configsOf(layout, await readLayoutBlob(layout, child.digest))));
  return out.sort();
}

async function skopeo(args: string[]): Promise<Buffer> {
  const result = await runTool(SKOPEO, args, { env: { TMPDIR: scratch } });
  expect(result.code, `skopeo ${args.join(" ")}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

beforeAll(async () => {
  // Up front and loud: a missing skopeo is a broken test machine, not a reason to skip.
  await access(SKOPEO, constants.X_OK);
  fx = await useFixtures({ size: 8 * MiB });
  scratch = await fx.dir("tmp");
  const work = await fx.dir("work");
  bundle = join(work, "mgmt-4.5.0.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: bundle });
  metadata = (await readBundleHead([bundle])).metadata;
  bundleLayout = await fx.dir("extracted");
  const extracted = await runTool("tar", ["-xf", bundle, "-C", bundleLayout]);
  expect(extracted.code, extracted.stderr).toBe(0);
  dataDir = await fx.dir("data");
  const store = await Store.open(dataDir);
  try {
    expect((await importBundle(store, [bundle])).imported).toBe(true);
  } finally {
    store.close();
  }
});

afterAll(async () => {
  await fx?.cleanup();
});

/** `skopeo copy --all` of every image of the bundle into a new OCI layout; returns the layout. */
async function copyEveryImage(name: string, flags: string[]): Promise<string> {
  const dir = join(await fx.dir(name), "layout");
  for (const image of metadata.images) {
    await skopeo([
      "--insecure-policy",
      "copy",
      "--quiet",
      "--all",
      ...flags,
      `oci-archive:${bundle}:${image.ref}`,
      `oci:${dir}:${image.ref}`,
    ]);
  }
  return dir;
}

describe("skopeo reads every image of a bundle", () => {
  it("finds skopeo where the test machine setup installs it", async () => {
    const version = await runTool(SKOPEO, ["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout.toString("utf8")).toMatch(/^skopeo version \d+\.\d+/);
  });

  it("covers every image and the pack", () => {
    expect(metadata.images.map((image) => image.ref).sort()).toEqual([
      "hubble/agent:4.5.0",
      "hubble/console:4.5.0",
      "hubble/msgbroker:4.5.0",
      "packs/observability:0.1.0",
    ]);
  });

  it("skopeo inspect --raw oci-archive:BUNDLE:REF returns the manifest whose sha256 is the digest in airlock.json", async () => {
    for (const image of metadata.images) {
      const raw = await skopeo(["inspect", "--raw", `oci-archive:${bundle}:${image.ref}`]);
      expect(`sha256:${sha256Hex(raw)}`, image.ref).toBe(image.digest);
      expect(raw.byteLength).toBe(image.size);
      expect((JSON.parse(raw.toString("utf8")) as { mediaType: string }).mediaType).toBe(image.mediaType);
    }
  });

  it("skopeo copy --all oci-archive:BUNDLE:REF oci:DIR:REF copies every image: same configs, every platform", async () => {
    const dir = await copyEveryImage("copy", []);
    // skopeo compresses layers on the way into oci: (docker-archive's are stored uncompressed), so a
    // top digest may change; the configs, i.e. the images themselves, may not.
    for (const image of metadata.images) {
      const raw = await skopeo(["inspect", "--raw", `oci:${dir}:${image.ref}`]);
      expect(await configsOf(dir, raw), image.ref).toEqual(
        await configsOf(bundleLayout, await readLayoutBlob(bundleLayout, image.digest)),
      );
    }
  });

  it("skopeo copy --all --preserve-digests keeps every digest of airlock.json and every blob of the bundle", async () => {
    const dir = await copyEveryImage("copy-preserve", ["--preserve-digests"]);
    const index = JSON.parse(await readFile(join(dir, "index.json"), "utf8")) as {
      manifests: { digest: string; annotations?: Record<string, string> }[];
    };
    const copied = new Map(
      index.manifests.map((m) => [m.annotations?.["org.opencontainers.image.ref.name"], m.digest]),
    );
    for (const image of metadata.images) expect(copied.get(image.ref), image.ref).toBe(image.digest);
    // Every blob of the bundle landed in the copy: both platforms of console's index, the pack's layer.
    const blobs = new Set(await readdir(join(dir, "blobs", "sha256")));
    for (const file of metadata.files.filter((f) => f.path.startsWith("blobs/sha256/"))) {
      expect(blobs.has(file.sha256), file.path).toBe(true);
    }
  });

  it("skopeo inspect oci:DATADIR/store:REF reads every imported image from the store", async () => {
    for (const image of metadata.images) {
      const raw = await skopeo(["inspect", "--raw", `oci:${join(dataDir, "store")}:${image.ref}`]);
      expect(`sha256:${sha256Hex(raw)}`, image.ref).toBe(image.digest);
      if (image.kind === "pack") continue; // skopeo's non-raw inspect refuses artifacts ("unsupported image-specific operation")
      const info = JSON.parse(
        (await skopeo(["inspect", `oci:${join(dataDir, "store")}:${image.ref}`])).toString("utf8"),
      ) as {
        Digest: string;
        Layers: string[];
        Os: string;
      };
      expect(info.Digest, image.ref).toBe(image.digest);
      expect(info.Os).toBe("linux");
      expect(info.Layers.length).toBeGreaterThan(0);
    }
  });
});
