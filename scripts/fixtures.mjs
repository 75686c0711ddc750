#!/usr/bin/env node
// Seeded, network-free generator of OCI test images and the sample bundle project.
//
//   node scripts/fixtures.mjs --out DIR [--seed 42] [--size 20MiB] [--force]
//
// The same seed and size give byte-identical layouts (every digest equal) for a
// given Node zlib build; the skopeo-made archives are recorded by sha256 only.
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import fs from "node:fs/promises";
import path from "node:path";
import { Buffer } from "node:buffer";
import { pipeline } from "node:stream/promises";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { constants as zlibConstants, crc32, deflateRawSync } from "node:zlib";
import { $ } from "zx";

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

const MediaType = {
  index: "application/vnd.oci.image.index.v1+json",
  manifest: "application/vnd.oci.image.manifest.v1+json",
  config: "application/vnd.oci.image.config.v1+json",
  layer: "application/vnd.oci.image.layer.v1.tar+gzip",
};
const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";
const CREATED = "2026-01-01T00:00:00Z";

const MIN_SIZE = 256 * KiB;
// Configs, manifests and index.json; subtracted so layers fill the rest of the budget.
const METADATA_BYTES = 8 * KiB;
const MAX_LAYER_BYTES = 512 * MiB;
// Random bytes do not compress: above this, stored gzip keeps big fixtures fast.
const STORED_GZIP_ABOVE = 64 * MiB;
const CHUNK_BYTES = 1 * MiB;
const TAR_BLOCK = 512;
// Every layer holds three files of these shares of its payload.
const FILE_SHARES = [0.5, 0.3, 0.2];
const K3S_BYTES = 1 * MiB;

const BASE_SHARE = 0.2;
const AMD64 = { architecture: "amd64", os: "linux" };
const ARM64 = { architecture: "arm64", os: "linux", variant: "v8" };
// Shares of the size budget each image manifest's own layers get; with the base, they sum to 1.
const IMAGES = [
  {
    ref: "hubble/msgbroker:4.5.0",
    manifests: [
      { platform: AMD64, share: 0.2, ownLayers: 2, onBase: false },
      { platform: ARM64, share: 0.2, ownLayers: 2, onBase: false },
    ],
  },
  { ref: "hubble/console:4.5.0", manifests: [{ platform: AMD64, share: 0.15, ownLayers: 1, onBase: true }] },
  { ref: "hubble/agent:4.5.0", manifests: [{ platform: AMD64, share: 0.15, ownLayers: 2, onBase: true }] },
  { ref: "hubble/msgbroker:4.4.0", manifests: [{ platform: AMD64, share: 0.1, ownLayers: 1, onBase: true }] },
];

/**
 * Makes (or reuses) the fixtures in `out` and returns their summary.
 * An existing `out` whose fixtures.json has the same seed and size is kept unless `force`.
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
    if (existing?.seed === seed && existing.size === bytes) return existing;
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

// The layout, skopeo's copies of two images and its scratch copies all land on this file system.
async function checkFreeSpace(dir, bytes) {
  const needed = Math.ceil(bytes * 2.2) + 16 * MiB;
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
    if (winner?.seed !== summary.seed || winner.size !== summary.size) throw error;
    await fs.rm(work, { recursive: true, force: true });
    return winner;
  } finally {
    await fs.rm(retired, { recursive: true, force: true });
  }
  return summary;
}

async function buildFixtures(work, outDir, seed, size) {
  const layoutDir = path.join(work, "layout");
  const layout = await createLayout(layoutDir);
  const images = await writeImages(layout, seed, size);

  const ociArchive = path.join(work, "console.oci-archive.tar");
  const dockerArchive = path.join(work, "agent.docker-archive.tar");
  // Only local transports, so skopeo never opens a connection; its scratch copies stay in `work`.
  const skopeo = $({ quiet: true, env: { ...process.env, TMPDIR: work } });
  const consoleRef = "hubble/console:4.5.0";
  const agentRef = "hubble/agent:4.5.0";
  await Promise.all([
    skopeo`skopeo --insecure-policy copy --quiet oci:${layoutDir}:${consoleRef} oci-archive:${ociArchive}:${consoleRef}`,
    skopeo`skopeo --insecure-policy copy --quiet oci:${layoutDir}:${agentRef} docker-archive:${dockerArchive}:${agentRef}`,
  ]);

  await writeSampleProject(path.join(work, "sample"), seed);

  const summary = {
    seed,
    size,
    layout: path.join(outDir, "layout"),
    images: images.summaries,
    totalBlobBytes: [...layout.blobSizes.values()].reduce((sum, blobSize) => sum + blobSize, 0),
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

// ---- OCI image layout -------------------------------------------------------------------

async function createLayout(dir) {
  const blobsDir = path.join(dir, "blobs", "sha256");
  await fs.mkdir(blobsDir, { recursive: true });
  await fs.writeFile(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  return { dir, blobsDir, blobSizes: new Map(), partials: 0 };
}

async function writeJsonBlob(layout, mediaType, value) {
  const content = Buffer.from(JSON.stringify(value));
  const hex = createHash("sha256").update(content).digest("hex");
  await fs.writeFile(path.join(layout.blobsDir, hex), content);
  layout.blobSizes.set(`sha256:${hex}`, content.length);
  return { mediaType, digest: `sha256:${hex}`, size: content.length };
}

// Streams tar → gzip → file, hashing both sides, so no layer is ever held in memory.
async function writeLayerBlob(layout, files) {
  const tarBytes = files.reduce((sum, file) => sum + TAR_BLOCK + roundUpToBlock(file.size), 2 * TAR_BLOCK);
  const level = tarBytes > STORED_GZIP_ABOVE ? 0 : 1;
  const diffIdHash = createHash("sha256");
  const digestHash = createHash("sha256");
  const partial = path.join(layout.blobsDir, `.partial-${layout.partials++}`);
  await pipeline(
    hashed(gzipChunks(hashed(tarChunks(files), diffIdHash), level), digestHash),
    createWriteStream(partial),
  );
  const hex = digestHash.digest("hex");
  await fs.rename(partial, path.join(layout.blobsDir, hex));
  const { size } = await fs.stat(path.join(layout.blobsDir, hex));
  layout.blobSizes.set(`sha256:${hex}`, size);
  return {
    descriptor: { mediaType: MediaType.layer, digest: `sha256:${hex}`, size },
    diffId: `sha256:${diffIdHash.digest("hex")}`,
  };
}

function* hashed(chunks, hash) {
  for (const chunk of chunks) {
    hash.update(chunk);
    yield chunk;
  }
}

// mtime 0, no name, OS unknown.
const GZIP_HEADER = Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]);

// Gzip framing around raw deflate of each chunk on its own, sync-flushed, then an empty final
// block: the bytes depend only on the input. (Node's gzip stream decides by timing whether its
// last chunk is deflated with Z_FINISH, which changes the block layout of stored output.)
function* gzipChunks(chunks, level) {
  yield GZIP_HEADER;
  let crc = 0;
  let length = 0;
  for (const chunk of chunks) {
    crc = crc32(chunk, crc);
    length += chunk.length;
    yield deflateRawSync(chunk, { level, finishFlush: zlibConstants.Z_SYNC_FLUSH });
  }
  yield deflateRawSync(Buffer.alloc(0), { level });
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(length % 2 ** 32, 4);
  yield trailer;
}

async function writeImages(layout, seed, size) {
  const budget = size - METADATA_BYTES;
  const baseLayers = [];
  for (const [n, layerBytes] of splitLayers(budget * BASE_SHARE, 1).entries()) {
    const files = layerFiles(`usr/lib/hubble-base/layer-${n}`, layerBytes, seed, `base/${n}`);
    baseLayers.push(await writeLayerBlob(layout, files));
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
        ownLayers.push(await writeLayerBlob(layout, files));
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

  await fs.writeFile(
    path.join(layout.dir, "index.json"),
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.index, manifests: refDescriptors }),
  );
  return { summaries, sharedLayerDigest: baseLayers[0].descriptor.digest };
}

async function writeImageManifest(layout, { ref, component, platform, baseLayers, ownLayers }) {
  const version = ref.slice(ref.indexOf(":") + 1);
  const layers = [...baseLayers, ...ownLayers];
  const config = await writeJsonBlob(layout, MediaType.config, {
    created: CREATED,
    architecture: platform.architecture,
    os: platform.os,
    ...(platform.variant ? { variant: platform.variant } : {}),
    config: {
      User: "65532",
      Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
      Entrypoint: [`/opt/hubble/bin/${component}`],
      WorkingDir: "/",
      Labels: { "org.opencontainers.image.title": component, "org.opencontainers.image.version": version },
    },
    rootfs: { type: "layers", diff_ids: layers.map((layer) => layer.diffId) },
    history: [
      ...baseLayers.map((_, n) => ({ created: CREATED, created_by: `hubble base layer ${n}` })),
      ...ownLayers.map((_, n) => ({
        created: CREATED,
        created_by: `hubble ${component} ${version} layer ${n}`,
      })),
    ],
  });
  const descriptor = await writeJsonBlob(layout, MediaType.manifest, {
    schemaVersion: 2,
    mediaType: MediaType.manifest,
    config,
    layers: layers.map((layer) => layer.descriptor),
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

function platformName(platform) {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
}

// ---- tar ------------------------------------------------------------------------------

// A minimal ustar stream: regular files, mode 0644, uid/gid 0, mtime 0, then two zero blocks.
function* tarChunks(files) {
  for (const file of files) {
    yield ustarHeader(file.name, file.size);
    for (let done = 0; done < file.size; done += CHUNK_BYTES) {
      yield file.fill(Buffer.allocUnsafe(Math.min(CHUNK_BYTES, file.size - done)));
    }
    const padding = roundUpToBlock(file.size) - file.size;
    if (padding > 0) yield Buffer.alloc(padding);
  }
  yield Buffer.alloc(2 * TAR_BLOCK);
}

function ustarHeader(name, size) {
  if (Buffer.byteLength(name) > 100) throw new Error(`tar name longer than 100 bytes: ${name}`);
  const header = Buffer.alloc(TAR_BLOCK);
  header.write(name, 0);
  writeOctal(header, 100, 8, 0o644);
  writeOctal(header, 108, 8, 0);
  writeOctal(header, 116, 8, 0);
  writeOctal(header, 124, 12, size);
  writeOctal(header, 136, 12, 0);
  header.fill(" ", 148, 156);
  header.write("0", 156);
  header.write("ustar\0" + "00", 257);
  writeOctal(header, 329, 8, 0);
  writeOctal(header, 337, 8, 0);
  // The checksum is six octal digits, NUL, then the space already there.
  writeOctal(
    header,
    148,
    7,
    header.reduce((sum, byte) => sum + byte, 0),
  );
  return header;
}

function writeOctal(buffer, offset, width, value) {
  buffer.write(`${value.toString(8).padStart(width - 1, "0")}\0`, offset, width, "ascii");
}

function roundUpToBlock(bytes) {
  return Math.ceil(bytes / TAR_BLOCK) * TAR_BLOCK;
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
  - ref: hubble/msgbroker:4.5.0
    source: oci:../layout:hubble/msgbroker:4.5.0
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
  clientPort: 4222
  clusterPort: 6222
  monitorPort: 8222
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

async function main(argv) {
  let options;
  try {
    const { values } = parseArgs({
      args: argv,
      options: {
        out: { type: "string" },
        seed: { type: "string", default: "42" },
        size: { type: "string", default: "20MiB" },
        force: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (!values.out) throw new Error("--out is required");
    if (!/^\d+$/.test(values.seed))
      throw new Error(`--seed must be a non-negative integer, got "${values.seed}"`);
    options = {
      out: values.out,
      seed: Number(values.seed),
      size: parseSize(values.size),
      force: values.force,
    };
  } catch (error) {
    console.error(`fixtures: ${error.message}\n${USAGE}`);
    return 2;
  }
  try {
    console.log(JSON.stringify(await generateFixtures(options)));
    return 0;
  } catch (error) {
    console.error(`fixtures: ${error.stderr?.trim() || error.message}`);
    // A size or seed out of range is a usage error too.
    return error instanceof RangeError ? 2 : 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
