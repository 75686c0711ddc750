import { readFile, statfs } from "node:fs/promises";
import { dirname, resolve as resolvePath } from "node:path";
import { createPublicKey, type KeyObject } from "node:crypto";
import {
  AirlockError,
  MediaType,
  REF_NAME_ANNOTATION,
  digestOf,
  encodeJson,
  sha256Hex,
  type Digest,
  type Descriptor,
  type OperationOptions,
} from "../registry/oci/index.js";
import type { BundleSpec } from "./spec.js";
import { resolveImage, type BlobSource, type ResolvedImage, type SourceContext } from "./sources.js";
import { RegistryConnections } from "./registry-source.js";
import { resolvePack, type ResolvedPack } from "./pack.js";
import { endOfArchive, entryLength } from "./tar.js";
import { directoriesFor, memoryEntry, planFiles, writeEntries, type PlannedEntry } from "./build-entries.js";
import { signBytes, loadPrivateKey, keyFingerprint } from "./sign.js";
import type { PartInfo } from "./parts.js";
import { BundleWriter } from "./writer.js";
import { readBundleHead } from "./verify.js";
import { ConcurrentPulls, DEFAULT_PULL_CONCURRENCY } from "./pulls.js";
import {
  BLOB_DIR,
  BUNDLE_MEDIA_TYPE,
  METADATA_ENTRY,
  entryMtime,
  SIGNATURE_ENTRY,
  type BundleBase,
  type BundleFile,
  type BundleImage,
  type BundleMetadata,
} from "./format.js";

export interface BuildOptions extends OperationOptions {
  specFile: string;
  output: string;
  signKey?: string | undefined;
  splitSize?: number | undefined;
  /** A bundle the site already has: its blobs are left out. */
  base?: string[] | undefined;
  /** An inventory exported from the site (`airlock bundle inventory`): its blobs are left out. */
  baseInventory?: string | undefined;
  /** docker-style auth.json for registries whose bundle.yaml `registries:` entry names no `authFile:`. */
  authFile?: string | undefined;
  /** Registry hosts pulled from over plain HTTP, as `insecureHttp: true` in bundle.yaml would. */
  insecureRegistries?: string[] | undefined;
  /** Registry blobs pulled at once, each into its place in the archive (default 2; 1 pulls them in turn). */
  concurrency?: number | undefined;
}

export interface BuildResult {
  output: string;
  parts: PartInfo[] | undefined;
  name: string;
  version: string;
  /** Digest of airlock.json: the bundle's identity. */
  digest: Digest;
  bytes: number;
  images: BundleImage[];
  signed: boolean;
  keyFingerprint: string | undefined;
  base: { name: string; version: string; blobsOmitted: number; bytesOmitted: number } | undefined;
}

export interface SiteInventory {
  kind: "airlock-inventory";
  bundles: { name: string; version: string; digest: Digest }[];
  blobs: { digest: Digest; size: number }[];
}

async function loadBaseBlobs(
  options: BuildOptions,
): Promise<{ base: Omit<BundleBase, "blobs">; blobs: Map<Digest, number> } | undefined> {
  if (options.base !== undefined && options.base.length > 0) {
    const { metadata, digest } = await readBundleHead(options.base);
    const blobs = new Map<Digest, number>();
    for (const file of metadata.files) {
      if (file.path.startsWith(BLOB_DIR)) blobs.set(`sha256:${file.path.slice(BLOB_DIR.length)}`, file.size);
    }
    for (const blob of metadata.base?.blobs ?? []) blobs.set(blob.digest, blob.size);
    return { base: { name: metadata.name, version: metadata.version, digest }, blobs };
  }
  if (options.baseInventory !== undefined) {
    let inventory: SiteInventory;
    try {
      inventory = JSON.parse(await readFile(options.baseInventory, "utf8")) as SiteInventory;
    } catch (error) {
      throw new AirlockError("INVENTORY_INVALID", `cannot read the inventory: ${(error as Error).message}`, {
        where: options.baseInventory,
        hint: "export it at the site with `airlock bundle inventory -o inventory.json`",
      });
    }
    if (
      inventory.kind !== "airlock-inventory" ||
      !Array.isArray(inventory.blobs) ||
      inventory.bundles.length === 0
    ) {
      throw new AirlockError("INVENTORY_INVALID", "not an Airlock inventory with at least one bundle", {
        where: options.baseInventory,
        hint: "export it at the site with `airlock bundle inventory -o inventory.json`",
      });
    }
    const { rcompare } = await import("semver");
    const newest = [...inventory.bundles].sort((a, b) => rcompare(a.version, b.version))[0]!;
    return {
      base: { name: newest.name, version: newest.version, digest: newest.digest },
      blobs: new Map(inventory.blobs.map((blob) => [blob.digest, blob.size])),
    };
  }
  return undefined;
}

/** Manifests and indexes after the blobs they reference, so a streaming reader meets children first. */
function blobRank(blob: BlobSource): number {
  if (blob.mediaType === MediaType.OciIndex || blob.mediaType === MediaType.DockerManifestList) return 2;
  if (blob.mediaType === MediaType.OciManifest || blob.mediaType === MediaType.DockerManifest) return 1;
  return 0;
}

function defaultCreated(spec: BundleSpec): string {
  if (spec.created !== undefined) return new Date(spec.created).toISOString();
  const epoch = process.env.SOURCE_DATE_EPOCH;
  if (epoch !== undefined && /^\d+$/.test(epoch)) return new Date(Number(epoch) * 1000).toISOString();
  return new Date(0).toISOString();
}

async function checkFreeSpace(output: string, bytes: number): Promise<void> {
  const dir = dirname(resolvePath(output));
  let free: number;
  try {
    const info = await statfs(dir);
    free = info.bavail * info.bsize;
  } catch (error) {
    throw new AirlockError("OUTPUT_NOT_WRITABLE", `cannot use ${dir}: ${(error as Error).message}`, {
      where: output,
      hint: "the output's directory must exist and be writable",
    });
  }
  if (free < bytes) {
    throw new AirlockError(
      "OUTPUT_DISK_FULL",
      `the bundle needs ${bytes} bytes but ${dir} has ${free} free`,
      {
        where: output,
        hint: "free space, or write the bundle to a larger disk with -o",
      },
    );
  }
}

/**
 * Reads and checks bundle.yaml. The parser brings zod and yaml, which only a build needs: loading them
 * on first use keeps them out of verify and import, whose speed is bound by hashing.
 */
export async function loadBundleSpec(file: string): Promise<BundleSpec> {
  return (await import("./spec.js")).loadBundleSpec(file);
}

/** Everything a build writes, decided before the first byte is: the archive's exact layout. */
interface BundlePlan {
  metadata: BundleMetadata;
  metadataBytes: Uint8Array;
  /** Every entry in archive order, airlock.json and its signature first. */
  entries: PlannedEntry[];
  base: BuildResult["base"];
}

/** Resolves every source and decides the archive: which blobs it carries, in what order, and airlock.json. */
async function planBundle(
  spec: BundleSpec,
  options: BuildOptions,
  signingKey: KeyObject | undefined,
  registries: RegistryConnections,
): Promise<BundlePlan> {
  const context: SourceContext = { stores: new Map(), registries };
  const resolved: ResolvedImage[] = [];
  for (const image of spec.images) resolved.push(await resolveImage(image, context));
  const packs: ResolvedPack[] = [];
  for (const pack of spec.packs) packs.push(await resolvePack(pack));
  const packRefs = new Set(packs.map((pack) => pack.image.ref));
  const all = [...resolved, ...packs.map((pack) => pack.image)];
  const fileEntries = await planFiles(spec);

  const baseInfo = await loadBaseBlobs(options);
  const blobs = new Map<Digest, BlobSource>();
  for (const image of all)
    for (const blob of image.blobs) if (!blobs.has(blob.digest)) blobs.set(blob.digest, blob);
  const omitted: { digest: Digest; size: number }[] = [];
  const carried: BlobSource[] = [];
  for (const blob of blobs.values()) {
    if (baseInfo?.blobs.has(blob.digest) === true) omitted.push({ digest: blob.digest, size: blob.size });
    else carried.push(blob);
  }
  carried.sort((a, b) => blobRank(a) - blobRank(b) || (a.digest < b.digest ? -1 : 1));
  omitted.sort((a, b) => (a.digest < b.digest ? -1 : 1));

  // Referrers are listed untagged, as OCI layout tools (oras) find them: by scanning index.json.
  const referrers = new Map<Digest, Descriptor>();
  for (const image of resolved) {
    for (const { digest, mediaType, size, artifactType } of image.referrers ?? []) {
      referrers.set(digest, {
        mediaType,
        digest,
        size,
        ...(artifactType === undefined ? {} : { artifactType }),
      });
    }
  }
  const layoutIndex = encodeJson({
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [
      ...all.map((image): Descriptor => ({
        ...image.descriptor,
        annotations: { [REF_NAME_ANNOTATION]: image.ref },
      })),
      ...referrers.values(),
    ],
  });
  const blobEntries: PlannedEntry[] = carried.map((blob) => ({
    name: `${BLOB_DIR}${sha256Hex(blob.digest)}`,
    type: "file",
    mode: 0o644,
    size: blob.size,
    sha256: sha256Hex(blob.digest),
    open: () => blob.open(),
    selfChecking: blob.selfChecking,
    remote: blob.remote,
  }));
  const files = [
    memoryEntry("oci-layout", encodeJson({ imageLayoutVersion: "1.0.0" })),
    memoryEntry("index.json", layoutIndex),
    ...blobEntries,
    ...fileEntries,
  ];
  // blobs/sha256/ is part of every OCI layout, even a delta's that carries no blob.
  const seenDirs = new Set<string>();
  const body: PlannedEntry[] = [...files.slice(0, 2), ...directoriesFor([`${BLOB_DIR}-`], seenDirs)];
  for (const entry of files.slice(2)) body.push(...directoriesFor([entry.name], seenDirs), entry);

  const listed: BundleFile[] = files.map((entry) => ({
    path: entry.name,
    size: entry.size,
    sha256: entry.sha256!,
    mode: entry.mode,
  }));
  const metadata: BundleMetadata = {
    schemaVersion: 1,
    mediaType: BUNDLE_MEDIA_TYPE,
    name: spec.name,
    version: spec.version,
    ...(spec.upgradeFrom === undefined ? {} : { upgradeFrom: spec.upgradeFrom }),
    ...(spec.upgradeGates.length === 0 ? {} : { upgradeGates: spec.upgradeGates }),
    created: defaultCreated(spec),
    ...(baseInfo === undefined ? {} : { base: { ...baseInfo.base, blobs: omitted } }),
    images: all.map((image) => ({
      ref: image.ref,
      digest: image.descriptor.digest,
      mediaType: image.descriptor.mediaType,
      size: image.descriptor.size,
      totalBytes: image.blobs.reduce((sum, blob) => sum + blob.size, 0),
      blobs: image.blobs.length,
      platforms: image.platforms,
      kind: packRefs.has(image.ref) ? "pack" : "image",
      sourceDigest: image.sourceDigest,
      ...(image.referrers === undefined ? {} : { referrers: image.referrers }),
    })),
    packs: packs.map((pack) => ({
      name: pack.name,
      version: pack.version,
      ref: pack.image.ref,
      digest: pack.image.descriptor.digest,
    })),
    files: listed,
    totals: {
      files: listed.length,
      bytes: listed.reduce((sum, file) => sum + file.size, 0),
      images: all.length,
      blobs: carried.length,
      blobBytes: carried.reduce((sum, blob) => sum + blob.size, 0),
    },
  };
  const metadataBytes = new TextEncoder().encode(JSON.stringify(metadata, null, 2) + "\n");
  const head: PlannedEntry[] = [memoryEntry(METADATA_ENTRY, metadataBytes)];
  if (signingKey !== undefined) head.push(memoryEntry(SIGNATURE_ENTRY, signBytes(metadataBytes, signingKey)));
  return {
    metadata,
    metadataBytes,
    entries: [...head, ...body],
    base:
      baseInfo === undefined
        ? undefined
        : {
            name: baseInfo.base.name,
            version: baseInfo.base.version,
            blobsOmitted: omitted.length,
            bytesOmitted: omitted.reduce((sum, blob) => sum + blob.size, 0),
          },
  };
}

/**
 * Builds a bundle: one deterministic tar whose root is an OCI image layout (see DESIGN.md). Sources
 * are read in place and streamed into the output once, each blob hashed on the way; the output is
 * renamed into place only when complete.
 */
export async function buildBundle(options: BuildOptions): Promise<BuildResult> {
  const signingKey = options.signKey === undefined ? undefined : await loadPrivateKey(options.signKey);
  const spec = await loadBundleSpec(options.specFile);
  // Aborted by the build's stop, or by the first failed pull: no request outlives the build.
  const requests = new AbortController();
  // Open through the write: registry blobs stream from their registry into the output.
  const registries = new RegistryConnections(spec.registries, {
    ...options,
    // A connection per blob in flight, and room for a manifest fetch beside them.
    connections: (options.concurrency ?? DEFAULT_PULL_CONCURRENCY) + 2,
    signal:
      options.signal === undefined ? requests.signal : AbortSignal.any([options.signal, requests.signal]),
  });
  try {
    const plan = await planBundle(spec, options, signingKey, registries);
    return await writeBundle(plan, options, signingKey, requests);
  } finally {
    await registries.close();
  }
}

/** Writes the planned archive and names what it holds. */
async function writeBundle(
  plan: BundlePlan,
  options: BuildOptions,
  signingKey: KeyObject | undefined,
  requests: AbortController,
): Promise<BuildResult> {
  const mtime = entryMtime(plan.metadata.created);
  const totalBytes =
    plan.entries.reduce((sum, entry) => sum + entryLength({ ...entry, mtime }), 0) +
    endOfArchive().byteLength;
  await checkFreeSpace(options.output, totalBytes);
  const concurrency = options.concurrency ?? DEFAULT_PULL_CONCURRENCY;
  const writer = new BundleWriter(options.output, options.splitSize);
  const report = (item: string): void =>
    options.onProgress?.({ phase: "write", done: writer.bytesWritten, total: totalBytes, item });
  // One at a time, every blob streams in its turn: nothing to pull beside the writing.
  const pulls =
    concurrency > 1
      ? new ConcurrentPulls(concurrency, writer, requests, { ...options, onWritten: report })
      : undefined;
  try {
    try {
      await writeEntries(writer, plan.entries, pulls, mtime, report, options);
    } catch (error) {
      await pulls?.cancel(error);
      throw error;
    }
    await pulls?.finish();
    const parts = await writer.finish();
    options.onProgress?.({ phase: "write", done: totalBytes, total: totalBytes });
    return {
      output: options.output,
      parts,
      name: plan.metadata.name,
      version: plan.metadata.version,
      digest: digestOf(plan.metadataBytes),
      bytes: totalBytes,
      images: plan.metadata.images,
      signed: signingKey !== undefined,
      keyFingerprint: signingKey === undefined ? undefined : keyFingerprint(createPublicKey(signingKey)),
      base: plan.base,
    };
  } catch (error) {
    await writer.abort();
    throw error;
  }
}
