#!/usr/bin/env node
// Seeded, network-free generator of OCI test images and the sample bundle project.
//
//   node scripts/fixtures.mjs --out DIR [--seed 42] [--size 20MiB] [--force]
//
// hubble/msgbroker:4.5.0 is the real broker: Debian's nats-server of this host, packed by
// scripts/msgbroker-image.mjs (about 5.5 MiB, on top of --size). The other images are seeded random
// layers filling --size: hubble/console:4.5.0, a two-platform index (linux/amd64, linux/arm64/v8);
// hubble/agent:4.5.0 and hubble/msgbroker:4.4.0 (the previous release), single-platform images
// sharing a base layer with console's amd64 image.
//
// The same seed and size give byte-identical layouts (every digest equal) for a given Node zlib
// build and the same installed nats-server and libraries; the skopeo-made archives are recorded by
// sha256 only.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Buffer } from "node:buffer";
import { $ } from "zx";
import { runIfMain } from "./cli.mjs";
import { buildMsgbrokerImage } from "./msgbroker-image.mjs";
import {
  MediaType,
  REF_NAME_ANNOTATION,
  addToIndex,
  blobBytes,
  openLayout,
  platformName,
  tarLength,
  writeImage,
  writeJsonBlob,
  writeLayerBlob,
} from "./oci-layout.mjs";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const CREATED = "2026-01-01T00:00:00Z";
// Bumped whenever the same seed and size make different fixtures, so that older ones are not reused.
const FORMAT = 2;
const MSGBROKER_REF = "hubble/msgbroker:4.5.0";
// About what the real msgbroker image takes (its layer is about 5.5 MiB), for the free space check.
const MSGBROKER_BYTES = 8 * MiB;

const MIN_SIZE = 256 * KiB;
// Configs, manifests and index.json; subtracted so layers fill the rest of the budget.
const METADATA_BYTES = 8 * KiB;
const MAX_LAYER_BYTES = 512 * MiB;
// Random bytes do not compress: above this, stored gzip keeps big fixtures fast.
const STORED_GZIP_ABOVE = 64 * MiB;
const TAR_BLOCK = 512;
// Every layer holds three files of these shares of its payload.
const FILE_SHARES = [0.5, 0.3, 0.2];
const K3S_BYTES = 1 * MiB;

const BASE_SHARE = 0.2;
const AMD64 = { architecture: "amd64", os: "linux" };
const ARM64 = { architecture: "arm64", os: "linux", variant: "v8" };
// The seeded images: shares of the size budget each image manifest's own layers get; with the base,
// they sum to 1. The base is linux/amd64, so the arm64 image has layers of its own only.
const IMAGES = [
  {
    ref: "hubble/console:4.5.0",
    manifests: [
      { platform: AMD64, share: 0.2, ownLayers: 2, onBase: true },
      { platform: ARM64, share: 0.2, ownLayers: 2, onBase: false },
    ],
  },
  { ref: "hubble/agent:4.5.0", manifests: [{ platform: AMD64, share: 0.2, ownLayers: 2, onBase: true }] },
  { ref: "hubble/msgbroker:4.4.0", manifests: [{ platform: AMD64, share: 0.2, ownLayers: 1, onBase: true }] },
];

/**
 * Makes (or reuses) the fixtures in `out` and returns their summary. An existing `out` whose
 * fixtures.json has the same seed, size and format is kept unless `force` (its msgbroker image is
 * the one built when it was made).
 */
export async function generateFixtures({ out, seed = 42, size = 20 * MiB, force = false }) {
  const outDir = path.resolve(out);
  const bytes = typeof size === "string" ? parseSize(size) : size;
  if (!Number.isSafeInteger(seed) || seed < 0) {
    throw new RangeError(`seed must be a non-negative integer, got ${seed}`);
  }
  if (!Number.isSafeInteger(bytes) || bytes < MIN_SIZE) {
    throw new RangeError(`size must be a whole number of bytes, at least ${MIN_SIZE}, got ${size}`);
  }
  // skopeo splits oci:, oci-archive: and docker-archive: references at the first ':'.
  if (outDir.includes(":")) throw new Error(`output path must not contain ':': ${outDir}`);

  if (!force) {
    const existing = await readSummary(outDir);
    if (existing?.seed === seed && existing.size === bytes && existing.format === FORMAT) return existing;
    if (existing === null && (await isNonEmptyDir(outDir))) {
      throw new Error(`${outDir} exists and holds no fixtures.json; pass force to replace it`);
    }
  }

  const parent = path.dirname(outDir);
  await fs.mkdir(parent, { recursive: true });
  await checkFreeSpace(parent, bytes);
  const workPrefix = `.${path.basename(outDir)}.partial-`;
  await removeAbandonedWork(parent, workPrefix);
  const work = await fs.mkdtemp(path.join(parent, `${workPrefix}${process.pid}-`));
  try {
    // mkdtemp makes it 0700; the fixtures are meant to be readable like any checkout.
    await fs.chmod(work, 0o755);
    const summary = await buildFixtures(work, outDir, seed, bytes);
    return await publish(work, outDir, summary);
  } catch (error) {
    await fs.rm(work, { recursive: true, force: true });
    throw error;
  }
}

/** "20MiB", "20M", "512K", "2GiB" or plain bytes; units are binary. */
function parseSize(text) {
  const match = /^(\d+(?:\.\d+)?)\s*(?:([KMG])(?:iB)?|B)?$/i.exec(text.trim());
  if (!match) throw new RangeError(`cannot read size "${text}": use bytes or K, M, G with optional iB`);
  const unit = { K: KiB, M: MiB, G: GiB }[match[2]?.toUpperCase()] ?? 1;
  return Math.floor(Number(match[1]) * unit);
}

async function readSummary(outDir) {
  try {
    return JSON.parse(await fs.readFile(path.join(outDir, "fixtures.json"), "utf8"));
  } catch (error) {
    if (error.code === "ENOENT" || error.code === "ENOTDIR") return null;
    throw error;
  }
}

async function isNonEmptyDir(dir) {
  try {
    return (await fs.readdir(dir)).length > 0;
  } catch (error) {
    if (error.code === "ENOENT") return false;
    throw error;
  }
}

// A killed run leaves its work dir (named after its pid) beside `outDir`; remove those whose
// process is gone, and leave those of runs still going.
async function removeAbandonedWork(parent, workPrefix) {
  for (const name of await fs.readdir(parent)) {
    if (!name.startsWith(workPrefix)) continue;
    const pid = Number.parseInt(name.slice(workPrefix.length), 10);
    if (Number.isInteger(pid) && !isRunning(pid))
      await fs.rm(path.join(parent, name), { recursive: true, force: true });
  }
}

function isRunning(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return error.code === "EPERM";
  }
}

// The layout, skopeo's copies of two images and its scratch copies all land on this file system:
// the seeded images (1.0 of the size), agent's docker-archive (0.4), console's oci-archive (0.6, twice
// while skopeo packs it), and the real msgbroker image.
async function checkFreeSpace(dir, bytes) {
  const needed = Math.ceil(bytes * 2.8) + MSGBROKER_BYTES + 16 * MiB;
  const stats = await fs.statfs(dir);
  const available = stats.bavail * stats.bsize;
  if (available < needed) {
    throw new Error(`${dir} has ${available} bytes free; fixtures of ${bytes} bytes need about ${needed}`);
  }
}

// Swaps the finished work dir in for `outDir`. A run that published between our two renames
// made the same fixtures if seed and size match, so its summary is returned instead.
async function publish(work, outDir, summary) {
  const retired = `${work}.retired`;
  await fs.rename(outDir, retired).catch((error) => {
    if (error.code !== "ENOENT") throw error;
  });
  try {
    await fs.rename(work, outDir);
  } catch (error) {
    const winner = error.code === "ENOTEMPTY" || error.code === "EEXIST" ? await readSummary(outDir) : null;
    if (winner?.seed !== summary.seed || winner.size !== summary.size || winner.format !== summary.format)
      throw error;
    await fs.rm(work, { recursive: true, force: true });
    return winner;
  } finally {
    await fs.rm(retired, { recursive: true, force: true });
  }
  return summary;
}

async function buildFixtures(work, outDir, seed, size) {
  const layoutDir = path.join(work, "layout");
  const layout = await openLayout(layoutDir);
  // The real image first: index.json then lists the refs in the summary's order.
  const msgbroker = await buildMsgbrokerImage({ out: layoutDir, ref: MSGBROKER_REF, created: CREATED });
  const images = await writeImages(layout, seed, size);

  const ociArchive = path.join(work, "console.oci-archive.tar");
  const dockerArchive = path.join(work, "agent.docker-archive.tar");
  // Only local transports, so skopeo never opens a connection; its scratch copies stay in `work`.
  const skopeo = $({ quiet: true, env: { ...process.env, TMPDIR: work } });
  const consoleRef = "hubble/console:4.5.0";
  const agentRef = "hubble/agent:4.5.0";
  await Promise.all([
    // --all keeps console's index whole: both platforms, under the layout's digest.
    skopeo`skopeo --insecure-policy copy --quiet --all --preserve-digests oci:${layoutDir}:${consoleRef} oci-archive:${ociArchive}:${consoleRef}`,
    skopeo`skopeo --insecure-policy copy --quiet oci:${layoutDir}:${agentRef} docker-archive:${dockerArchive}:${agentRef}`,
  ]);

  await writeSampleProject(path.join(work, "sample"), seed);

  const totalBlobBytes = await blobBytes(layout);
  const summary = {
    format: FORMAT,
    seed,
    size,
    layout: path.join(outDir, "layout"),
    images: {
      [MSGBROKER_REF]: {
        digest: msgbroker.digest,
        mediaType: msgbroker.mediaType,
        platforms: [msgbroker.platform],
        blobs: 3, // manifest, config, layer
      },
      ...images.summaries,
    },
    msgbroker: {
      ref: MSGBROKER_REF,
      natsServer: msgbroker.natsServer.version,
      packages: msgbroker.packages,
      totalBytes: msgbroker.totalBytes,
    },
    totalBlobBytes,
    // The seeded images' blobs and the real image's (manifest, config, layer) are all distinct.
    seededBlobBytes: totalBlobBytes - msgbroker.totalBytes,
    sharedLayerDigest: images.sharedLayerDigest,
    archives: {
      ociArchive: {
        path: path.join(outDir, path.basename(ociArchive)),
        sha256: await sha256File(ociArchive),
      },
      dockerArchive: {
        path: path.join(outDir, path.basename(dockerArchive)),
        sha256: await sha256File(dockerArchive),
      },
    },
    sample: path.join(outDir, "sample", "bundle.yaml"),
  };
  await fs.writeFile(path.join(work, "fixtures.json"), `${JSON.stringify(summary, null, 2)}\n`);
  return summary;
}

// ---- images -----------------------------------------------------------------------------

// Deflate level 1, or stored (level 0) above STORED_GZIP_ABOVE.
function writeRandomLayer(layout, files) {
  return writeLayerBlob(layout, files, { level: tarLength(files) > STORED_GZIP_ABOVE ? 0 : 1 });
}

async function writeImages(layout, seed, size) {
  const budget = size - METADATA_BYTES;
  const baseLayers = [];
  for (const [n, layerBytes] of splitLayers(budget * BASE_SHARE, 1).entries()) {
    const files = layerFiles(`usr/lib/hubble-base/layer-${n}`, layerBytes, seed, `base/${n}`);
    baseLayers.push(await writeRandomLayer(layout, files));
  }

  const summaries = {};
  const refDescriptors = [];
  for (const image of IMAGES) {
    const component = image.ref.slice(image.ref.indexOf("/") + 1, image.ref.indexOf(":"));
    const manifests = [];
    for (const spec of image.manifests) {
      const ownLayers = [];
      for (const [n, layerBytes] of splitLayers(budget * spec.share, spec.ownLayers).entries()) {
        const files = layerFiles(
          `opt/hubble/${component}/layer-${n}`,
          layerBytes,
          seed,
          `${image.ref}/${platformName(spec.platform)}/${n}`,
        );
        // The entrypoint binary lives in the image's first own layer.
        if (n === 0) files[0].name = `opt/hubble/bin/${component}`;
        ownLayers.push(await writeRandomLayer(layout, files));
      }
      manifests.push(
        await writeImageManifest(layout, {
          ref: image.ref,
          component,
          platform: spec.platform,
          baseLayers: spec.onBase ? baseLayers : [],
          ownLayers,
        }),
      );
    }
    // More than one platform makes the ref a multi-arch image index.
    const top =
      manifests.length > 1
        ? await writeJsonBlob(layout, MediaType.index, {
            schemaVersion: 2,
            mediaType: MediaType.index,
            manifests: manifests.map(({ descriptor, platform }) => ({ ...descriptor, platform })),
          })
        : manifests[0].descriptor;
    const blobs = new Set([top.digest, ...manifests.flatMap((manifest) => manifest.blobs)]);
    summaries[image.ref] = {
      digest: top.digest,
      mediaType: top.mediaType,
      platforms: manifests.map((manifest) => platformName(manifest.platform)),
      blobs: blobs.size,
    };
    refDescriptors.push({ ...top, annotations: { [REF_NAME_ANNOTATION]: image.ref } });
  }

  await addToIndex(layout, refDescriptors);
  return { summaries, sharedLayerDigest: baseLayers[0].descriptor.digest };
}

async function writeImageManifest(layout, { ref, component, platform, baseLayers, ownLayers }) {
  const version = ref.slice(ref.indexOf(":") + 1);
  const layers = [...baseLayers, ...ownLayers];
  const { manifest: descriptor, config } = await writeImage(layout, {
    created: CREATED,
    platform,
    config: {
      User: "65532",
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      Entrypoint: [`/opt/hubble/bin/${component}`],
      WorkingDir: "/",
      Labels: { "org.opencontainers.image.title": component, "org.opencontainers.image.version": version },
    },
    history: [
      ...baseLayers.map((_, n) => ({ created: CREATED, created_by: `hubble base layer ${n}` })),
      ...ownLayers.map((_, n) => ({
        created: CREATED,
        created_by: `hubble ${component} ${version} layer ${n}`,
      })),
    ],
    layers,
  });
  return {
    descriptor,
    platform,
    blobs: [descriptor.digest, config.digest, ...layers.map((layer) => layer.descriptor.digest)],
  };
}

// Splits a byte budget into the fewest layers (at least `minimumCount`) of at most MAX_LAYER_BYTES.
function splitLayers(bytes, minimumCount) {
  const count = Math.max(minimumCount, Math.ceil(bytes / MAX_LAYER_BYTES));
  return Array.from({ length: count }, () => Math.floor(bytes / count));
}

// Files whose tar, gzipped, comes to about `layerBytes`: random bytes do not compress, so
// only tar headers, padding and gzip's stored-block framing (5 bytes per 16 KiB) are taken off.
function layerFiles(dir, layerBytes, seed, label) {
  const tarOverhead = FILE_SHARES.length * (TAR_BLOCK + TAR_BLOCK / 2) + 2 * TAR_BLOCK;
  const gzipOverhead = 18 + 5 * Math.ceil(layerBytes / (16 * KiB));
  const payload = layerBytes - tarOverhead - gzipOverhead;
  return FILE_SHARES.map((share, n) => ({
    name: `${dir}/part-${n}.bin`,
    size: Math.floor(payload * share),
    fill: seededRandom(seed, `${label}/${n}`),
  }));
}

// ---- seeded bytes -----------------------------------------------------------------------

// sfc32, keyed by sha256 of (seed, label) so every file has its own independent stream and
// generation order does not matter. Words are written little-endian on every host.
function seededRandom(seed, label) {
  const key = createHash("sha256").update(`airlock-fixtures/${seed}/${label}`).digest();
  const state = new Int32Array([
    key.readInt32LE(0),
    key.readInt32LE(4),
    key.readInt32LE(8),
    key.readInt32LE(12),
  ]);
  // The generator is inlined in one loop with local state: several times faster than a call per word.
  const fillWords = (view, words) => {
    let [a, b, c, d] = state;
    for (let i = 0; i < words; i++) {
      const t = (((a + b) | 0) + d) | 0;
      d = (d + 1) | 0;
      a = b ^ (b >>> 9);
      b = (c + (c << 3)) | 0;
      c = (((c << 21) | (c >>> 11)) + t) | 0;
      view.setInt32(i * 4, t, true);
    }
    state.set([a, b, c, d]);
  };
  fillWords(new DataView(new ArrayBuffer(48)), 12);
  return (buffer) => {
    const whole = buffer.length - (buffer.length % 4);
    fillWords(new DataView(buffer.buffer, buffer.byteOffset, whole), whole / 4);
    if (whole < buffer.length) {
      const tail = new DataView(new ArrayBuffer(4));
      fillWords(tail, 1);
      buffer.set(new Uint8Array(tail.buffer, 0, buffer.length - whole), whole);
    }
    return buffer;
  };
}

async function sha256File(file) {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(file)) hash.update(chunk);
  return hash.digest("hex");
}

// ---- sample bundle project -------------------------------------------------------------

async function writeSampleProject(dir, seed) {
  const files = {
    "bundle.yaml": `name: mgmt
version: 4.5.0
upgradeFrom: ">=4.4.0 <4.5.0"
created: "2026-11-01T00:00:00Z"
images:
  # The real broker: Debian's nats-server (scripts/msgbroker-image.mjs), for this host's platform.
  - ref: hubble/msgbroker:4.5.0
    source: oci:../layout:hubble/msgbroker:4.5.0
  # A two-platform index (linux/amd64, linux/arm64/v8), kept whole; platforms: would narrow it.
  - ref: hubble/console:4.5.0
    source: oci-archive:../console.oci-archive.tar:hubble/console:4.5.0
  - ref: hubble/agent:4.5.0
    source: docker-archive:../agent.docker-archive.tar:hubble/agent:4.5.0
packs:
  - path: ./packs/observability
manifests: ./manifests
files:
  - path: ./bin/k3s
    name: k3s
    mode: 0755
`,
    "bundle-4.4.0.yaml": `name: mgmt
version: 4.4.0
created: "2026-10-01T00:00:00Z"
images:
  - ref: hubble/msgbroker:4.4.0
    source: oci:../layout:hubble/msgbroker:4.4.0
manifests: ./manifests
`,
    "packs/observability/pack.yaml": `name: observability
version: 0.1.0
`,
    "packs/observability/values.yaml": `retentionDays: 7
scrapeInterval: 30s
`,
    "packs/observability/templates/configmap.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: observability
  namespace: hubble-system
data:
  retentionDays: "{{ .Values.retentionDays }}"
  scrapeInterval: "{{ .Values.scrapeInterval }}"
`,
    "manifests/namespace.yaml": `apiVersion: v1
kind: Namespace
metadata:
  name: hubble-system
  labels:
    app.kubernetes.io/part-of: hubble
`,
    "manifests/values.yaml": `msgbroker:
  replicas: 2
  ports:
    client: 4222
    cluster: 6222
    monitor: 8222
`,
  };
  for (const [name, content] of Object.entries(files)) {
    await fs.mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await fs.writeFile(path.join(dir, name), content);
  }
  const k3s = path.join(dir, "bin", "k3s");
  await fs.mkdir(path.dirname(k3s), { recursive: true });
  await fs.writeFile(k3s, seededRandom(seed, "sample/bin/k3s")(Buffer.alloc(K3S_BYTES)));
  await fs.chmod(k3s, 0o755);
}

// ---- CLI -----------------------------------------------------------------------------

const USAGE = "usage: node scripts/fixtures.mjs --out DIR [--seed 42] [--size 20MiB] [--force]";

await runIfMain(import.meta, {
  name: "fixtures",
  usage: USAGE,
  options: {
    out: { type: "string" },
    seed: { type: "string", default: "42" },
    size: { type: "string", default: "20MiB" },
    force: { type: "boolean", default: false },
  },
  required: ["out"],
  toOptions: (values) => {
    if (!/^\d+$/.test(values.seed))
      throw new Error(`--seed must be a non-negative integer, got "${values.seed}"`);
    return { out: values.out, seed: Number(values.seed), size: parseSize(values.size), force: values.force };
  },
  // A size or seed out of range is a usage error too (a RangeError: exit 2).
  run: generateFixtures,
});
