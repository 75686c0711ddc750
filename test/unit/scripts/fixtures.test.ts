import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { generateFixtures } from "../../../scripts/fixtures.mjs";
import type { FixturesSummary } from "../../../scripts/fixtures.mjs";

const run = promisify(execFile);
const SIZE = 4 * 1024 * 1024;
const REFS = [
  "hubble/msgbroker:4.5.0",
  "hubble/console:4.5.0",
  "hubble/agent:4.5.0",
  "hubble/msgbroker:4.4.0",
];
// The real image, built from the host's nats-server package: the seed has no part in it.
const REAL = "hubble/msgbroker:4.5.0";
const SEEDED = REFS.filter((ref) => ref !== REAL);
const HOST_PLATFORM = { x64: "linux/amd64", arm64: "linux/arm64/v8" }[process.arch as string];

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
}
interface Index {
  mediaType: string;
  manifests: Descriptor[];
}
interface Manifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}
interface Config {
  architecture: string;
  os: string;
  variant?: string;
  config: { User: string; Entrypoint: string[] };
  rootfs: { type: string; diff_ids: string[] };
}

let root: string;
let first: FixturesSummary;
let second: FixturesSummary;
let otherSeed: FixturesSummary;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "airlock-fixtures-test-"));
  [first, second, otherSeed] = await Promise.all([
    generateFixtures({ out: path.join(root, "a"), seed: 42, size: SIZE }),
    generateFixtures({ out: path.join(root, "b"), seed: 42, size: "4MiB" }),
    generateFixtures({ out: path.join(root, "c"), seed: 7, size: SIZE }),
  ]);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const blobPath = (layout: string, digest: string) =>
  path.join(layout, "blobs", "sha256", digest.slice("sha256:".length));
const readJson = async <T>(file: string) => JSON.parse(await readFile(file, "utf8")) as T;
const readBlobJson = <T>(layout: string, digest: string) => readJson<T>(blobPath(layout, digest));

async function refManifest(layout: string, ref: string): Promise<Manifest> {
  const index = await readJson<Index>(path.join(layout, "index.json"));
  const entry = index.manifests.find(
    (descriptor) => descriptor.annotations?.["org.opencontainers.image.ref.name"] === ref,
  );
  if (!entry) throw new Error(`${ref} is not in index.json`);
  return readBlobJson<Manifest>(layout, entry.digest);
}

// Every image manifest in the layout, the multi-arch index's children included.
async function allManifests(layout: string): Promise<Manifest[]> {
  const index = await readJson<Index>(path.join(layout, "index.json"));
  const manifests: Manifest[] = [];
  for (const entry of index.manifests) {
    if (entry.mediaType === "application/vnd.oci.image.index.v1+json") {
      const child = await readBlobJson<Index>(layout, entry.digest);
      for (const descriptor of child.manifests)
        manifests.push(await readBlobJson<Manifest>(layout, descriptor.digest));
    } else {
      manifests.push(await readBlobJson<Manifest>(layout, entry.digest));
    }
  }
  return manifests;
}

interface TarEntry {
  name: string;
  mode: string;
  uid: number;
  gid: number;
  mtime: number;
  type: string;
  size: number;
}

function tarEntries(tar: Buffer): TarEntry[] {
  const field = (header: Buffer, offset: number, length: number) =>
    header.toString("ascii", offset, offset + length).replace(/\0.*$/s, "");
  const entries: TarEntry[] = [];
  let offset = 0;
  while (tar.subarray(offset, offset + 512).some((byte) => byte !== 0)) {
    const header = tar.subarray(offset, offset + 512);
    const size = parseInt(field(header, 124, 12), 8);
    entries.push({
      name: field(header, 0, 100),
      mode: field(header, 100, 8),
      uid: parseInt(field(header, 108, 8), 8),
      gid: parseInt(field(header, 116, 8), 8),
      mtime: parseInt(field(header, 136, 12), 8),
      type: field(header, 156, 1),
      size,
    });
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  expect(tar.length - offset).toBe(1024);
  expect(tar.subarray(offset).every((byte) => byte === 0)).toBe(true);
  return entries;
}

describe("generateFixtures", () => {
  it("gives the same digests and blobs for the same seed, and different ones for another seed", async () => {
    const blobNames = async (summary: FixturesSummary) =>
      (await readdir(path.join(summary.layout, "blobs", "sha256"))).sort();
    for (const ref of REFS) expect(second.images[ref]?.digest, ref).toBe(first.images[ref]?.digest);
    for (const ref of SEEDED) expect(otherSeed.images[ref]?.digest, ref).not.toBe(first.images[ref]?.digest);
    expect(otherSeed.images[REAL]?.digest).toBe(first.images[REAL]?.digest);
    expect(Object.keys(first.images)).toEqual(REFS);
    expect(await blobNames(second)).toEqual(await blobNames(first));
    expect(second.totalBlobBytes).toBe(first.totalBlobBytes);
    expect(otherSeed.sharedLayerDigest).not.toBe(first.sharedLayerDigest);
    const k3s = (summary: FixturesSummary) => readFile(path.join(path.dirname(summary.sample), "bin", "k3s"));
    expect((await k3s(second)).equals(await k3s(first))).toBe(true);
  });

  it("summarises the layout, the images and the archives", async () => {
    const out = path.join(root, "a");
    expect(first).toMatchObject({
      seed: 42,
      size: SIZE,
      layout: path.join(out, "layout"),
      sample: path.join(out, "sample", "bundle.yaml"),
      archives: {
        ociArchive: { path: path.join(out, "console.oci-archive.tar") },
        dockerArchive: { path: path.join(out, "agent.docker-archive.tar") },
      },
    });
    expect(first.format).toBe(2);
    expect(first.images["hubble/console:4.5.0"]).toEqual({
      digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) as string,
      mediaType: "application/vnd.oci.image.index.v1+json",
      platforms: ["linux/amd64", "linux/arm64/v8"],
      // The index, the base layer (amd64 only), and per platform a manifest, a config and two layers.
      blobs: 10,
    });
    expect(first.images["hubble/agent:4.5.0"]).toMatchObject({
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      platforms: ["linux/amd64"],
      blobs: 5,
    });
    expect(first.images[REAL]).toEqual({
      digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/) as string,
      mediaType: "application/vnd.oci.image.manifest.v1+json",
      platforms: [HOST_PLATFORM],
      blobs: 3,
    });
    const { stdout: natsServer } = await run("dpkg-query", ["-W", "-f=${Version}", "nats-server"]);
    expect(first.msgbroker).toEqual({
      ref: REAL,
      natsServer,
      packages: expect.objectContaining({ "nats-server": natsServer }) as Record<string, string>,
      totalBytes: expect.any(Number) as number,
    });
  });

  it("reuses fixtures of the same seed and size, and replaces them when asked or when they differ", async () => {
    const out = path.join(root, "reuse");
    const made = await generateFixtures({ out, size: "256K" });
    const madeAt = (await stat(path.join(out, "fixtures.json"))).mtimeMs;
    expect(await generateFixtures({ out, size: 256 * 1024 })).toEqual(made);
    expect((await stat(path.join(out, "fixtures.json"))).mtimeMs).toBe(madeAt);

    const forced = await generateFixtures({ out, size: "256K", force: true });
    expect(forced.images).toEqual(made.images);
    expect((await stat(path.join(out, "fixtures.json"))).mtimeMs).not.toBe(madeAt);

    const reseeded = await generateFixtures({ out, seed: 1, size: "256K" });
    expect(reseeded.sharedLayerDigest).not.toBe(made.sharedLayerDigest);

    // Fixtures of an older format (a fake msgbroker:4.5.0, no format field) are remade, not reused.
    const summaryFile = path.join(out, "fixtures.json");
    const { format: _format, ...older } = reseeded;
    await writeFile(summaryFile, JSON.stringify(older));
    expect((await generateFixtures({ out, seed: 1, size: "256K" })).images).toEqual(reseeded.images);
    expect((await readJson<FixturesSummary>(summaryFile)).format).toBe(2);
    expect((await readdir(root)).filter((name) => name.startsWith("."))).toEqual([]);
  });

  it("refuses to replace a directory it did not make, a path with ':' and a size too small", async () => {
    const foreign = path.join(root, "foreign");
    await mkdir(foreign);
    await writeFile(path.join(foreign, "keep.txt"), "mine");
    await expect(generateFixtures({ out: foreign, size: "256K" })).rejects.toThrow(/no fixtures\.json/);
    expect(await readFile(path.join(foreign, "keep.txt"), "utf8")).toBe("mine");
    await expect(generateFixtures({ out: path.join(root, "a:b") })).rejects.toThrow(/':'/);
    await expect(generateFixtures({ out: path.join(root, "tiny"), size: "4K" })).rejects.toThrow(RangeError);
  });

  it("makes a layout skopeo reads: a two-platform index, single-platform images and the real broker", async () => {
    const layout = first.layout;
    const { stdout: raw } = await run("skopeo", ["inspect", "--raw", `oci:${layout}:hubble/console:4.5.0`]);
    const index = JSON.parse(raw) as Index;
    expect(index.mediaType).toBe("application/vnd.oci.image.index.v1+json");
    expect(index.manifests.map((descriptor) => descriptor.platform)).toEqual([
      { architecture: "amd64", os: "linux" },
      { architecture: "arm64", os: "linux", variant: "v8" },
    ]);

    const inspect = async (ref: string) =>
      JSON.parse((await run("skopeo", ["inspect", `oci:${layout}:${ref}`])).stdout) as {
        Digest: string;
        Architecture: string;
        Os: string;
        Layers: string[];
        Labels: Record<string, string>;
      };
    const agent = await inspect("hubble/agent:4.5.0");
    expect(agent).toMatchObject({
      Digest: first.images["hubble/agent:4.5.0"]?.digest,
      Architecture: "amd64",
      Os: "linux",
    });
    expect(agent.Layers[0]).toBe(first.sharedLayerDigest);

    const broker = await inspect(REAL);
    expect(broker).toMatchObject({ Digest: first.images[REAL]?.digest, Os: "linux" });
    expect(broker.Layers).toHaveLength(1);
    expect(broker.Labels["dev.airlock.debian.packages"]).toContain(
      `nats-server=${first.msgbroker.natsServer}`,
    );
  });

  it("shares the base layer between console's amd64 image, agent and msgbroker:4.4.0 only", async () => {
    const index = await readBlobJson<Index>(first.layout, first.images["hubble/console:4.5.0"]!.digest);
    const [amd64, arm64] = await Promise.all(
      index.manifests.map((descriptor) => readBlobJson<Manifest>(first.layout, descriptor.digest)),
    );
    const onBase = [amd64!, await refManifest(first.layout, "hubble/agent:4.5.0")];
    onBase.push(await refManifest(first.layout, "hubble/msgbroker:4.4.0"));
    for (const manifest of onBase) {
      expect(manifest.layers[0]?.digest).toBe(first.sharedLayerDigest);
      expect(manifest.layers.length).toBeGreaterThan(1);
    }
    for (const manifest of [arm64!, await refManifest(first.layout, REAL)]) {
      expect(manifest.layers.map((layer) => layer.digest)).not.toContain(first.sharedLayerDigest);
    }
  });

  it("names every blob by its sha256 and records the size of every descriptor", async () => {
    const blobsDir = path.join(first.layout, "blobs", "sha256");
    let total = 0;
    for (const name of await readdir(blobsDir)) {
      const bytes = await readFile(path.join(blobsDir, name));
      expect(sha256(bytes), name).toBe(name);
      total += bytes.length;
    }
    expect(total).toBe(first.totalBlobBytes);
    for (const manifest of await allManifests(first.layout)) {
      for (const descriptor of [manifest.config, ...manifest.layers]) {
        expect((await stat(blobPath(first.layout, descriptor.digest))).size).toBe(descriptor.size);
      }
    }
  });

  it("writes configs whose diff_ids are the sha256 of the gunzipped layers, the seeded ones plain ustar", async () => {
    const manifests = await allManifests(first.layout);
    // The real broker's, console's two, agent's and msgbroker:4.4.0's.
    expect(manifests).toHaveLength(5);
    const real = await refManifest(first.layout, REAL);
    for (const manifest of manifests) {
      const seeded = manifest.config.digest !== real.config.digest;
      expect(manifest.mediaType).toBe("application/vnd.oci.image.manifest.v1+json");
      const config = await readBlobJson<Config>(first.layout, manifest.config.digest);
      expect(config.os).toBe("linux");
      expect(config.config.User).toBe(seeded ? "65532" : "1000:1000");
      expect(config.rootfs.type).toBe("layers");
      const diffIds: string[] = [];
      for (const layer of manifest.layers) {
        expect(layer.mediaType).toBe("application/vnd.oci.image.layer.v1.tar+gzip");
        const gzipped = await readFile(blobPath(first.layout, layer.digest));
        expect(gzipped.readUInt32LE(4), "gzip header mtime").toBe(0);
        const tar = gunzipSync(gzipped);
        diffIds.push(`sha256:${sha256(tar)}`);
        if (!seeded) continue; // test/unit/scripts/msgbroker-image.test.ts looks into the real one
        for (const entry of tarEntries(tar)) {
          expect(entry).toMatchObject({ mode: "0000644", uid: 0, gid: 0, mtime: 0, type: "0" });
        }
      }
      expect(config.rootfs.diff_ids).toEqual(diffIds);
    }
  });

  it("makes a docker-archive tagged hubble/agent:4.5.0 and an oci-archive of console's whole index", async () => {
    const { dockerArchive, ociArchive } = first.archives;
    const { stdout: dockerManifest } = await run("tar", ["-xOf", dockerArchive.path, "manifest.json"]);
    const [entry] = JSON.parse(dockerManifest) as { RepoTags: string[] }[];
    // skopeo 1.9 writes fully qualified tags ("docker.io/hubble/agent:4.5.0"); docker save writes familiar ones.
    expect(entry?.RepoTags.map((tag) => tag.replace(/^docker\.io\//, ""))).toContain("hubble/agent:4.5.0");

    const { stdout: listing } = await run("tar", ["-tf", ociArchive.path]);
    expect(listing.split("\n")).toContain("index.json");
    const { stdout: ociIndex } = await run("tar", ["-xOf", ociArchive.path, "index.json"]);
    expect((JSON.parse(ociIndex) as Index).manifests).toEqual([
      {
        mediaType: "application/vnd.oci.image.index.v1+json",
        digest: first.images["hubble/console:4.5.0"]!.digest,
        size: expect.any(Number) as number,
        annotations: { "org.opencontainers.image.ref.name": "hubble/console:4.5.0" },
      },
    ]);

    for (const archive of [dockerArchive, ociArchive])
      expect(sha256(await readFile(archive.path))).toBe(archive.sha256);
  });

  it("keeps the seeded images' distinct blob bytes within 10% of the size asked for; the real image comes on top", () => {
    expect(first.seededBlobBytes).toBeGreaterThanOrEqual(SIZE * 0.9);
    expect(first.seededBlobBytes).toBeLessThanOrEqual(SIZE * 1.1);
    expect(first.totalBlobBytes).toBe(first.seededBlobBytes + first.msgbroker.totalBytes);
    // Debian 12's nats-server and libc: about 5.5 MiB; anything far off is not the broker.
    expect(first.msgbroker.totalBytes).toBeGreaterThan(2 * 1024 * 1024);
    expect(first.msgbroker.totalBytes).toBeLessThan(16 * 1024 * 1024);
  });

  it("writes the sample bundle project", async () => {
    const sample = path.dirname(first.sample);
    const bundle = parseYaml(await readFile(first.sample, "utf8")) as {
      name: string;
      version: string;
      images: { ref: string }[];
    };
    expect(bundle).toMatchObject({ name: "mgmt", version: "4.5.0" });
    expect(bundle.images.map((image) => image.ref)).toEqual(REFS.slice(0, 3));
    const older = parseYaml(await readFile(path.join(sample, "bundle-4.4.0.yaml"), "utf8")) as {
      images: { ref: string; source: string }[];
    };
    expect(older.images).toEqual([
      { ref: "hubble/msgbroker:4.4.0", source: "oci:../layout:hubble/msgbroker:4.4.0" },
    ]);
    const k3s = await stat(path.join(sample, "bin", "k3s"));
    expect(k3s.size).toBe(1024 * 1024);
    expect(k3s.mode & 0o777).toBe(0o755);
    for (const file of [
      "packs/observability/pack.yaml",
      "packs/observability/values.yaml",
      "packs/observability/templates/configmap.yaml",
      "manifests/namespace.yaml",
      "manifests/values.yaml",
    ]) {
      expect(parseYaml(await readFile(path.join(sample, file), "utf8")), file).toBeTruthy();
    }
  });
});
