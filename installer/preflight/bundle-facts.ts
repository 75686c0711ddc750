import { BIN_DIR, readBundleHead, type BundleMetadata } from "../../bundle/index.js";
import type { BundleFacts, Sizing } from "./types.js";

export const GiB = 1024 ** 3;

/** What a plane needs when its bundle declares no `sizing`. */
export const DEFAULT_SIZING: Sizing = { cpus: 2, memoryBytes: 2 * GiB, source: "default" };

const K3S_BINARY = `${BIN_DIR}k3s`;

function positive(value: unknown): number | undefined {
  return typeof value === "number" && Number.isFinite(value) && value > 0 ? value : undefined;
}

/**
 * The bundle's `sizing` (`{ cpus, memoryBytes }`) when its airlock.json carries one; the bundle format
 * does not define it yet, so anything else falls back to the defaults, figure by figure.
 */
export function sizingOf(metadata: BundleMetadata): Sizing {
  const declared = (metadata as { sizing?: unknown }).sizing;
  if (typeof declared !== "object" || declared === null) return DEFAULT_SIZING;
  const cpus = positive((declared as { cpus?: unknown }).cpus);
  const memoryBytes = positive((declared as { memoryBytes?: unknown }).memoryBytes);
  if (cpus === undefined && memoryBytes === undefined) return DEFAULT_SIZING;
  return {
    cpus: cpus ?? DEFAULT_SIZING.cpus,
    memoryBytes: memoryBytes ?? DEFAULT_SIZING.memoryBytes,
    source: "bundle",
  };
}

export function factsOf(metadata: BundleMetadata, digest: string): BundleFacts {
  const images = metadata.images.filter((image) => image.kind === "image");
  const bin = metadata.files.filter((file) => file.path.startsWith(BIN_DIR));
  const k3sBinaryBytes = bin.find((file) => file.path === K3S_BINARY)?.size ?? 0;
  return {
    name: metadata.name,
    version: metadata.version,
    digest,
    created: metadata.created,
    images: images.map((image) => ({ ref: image.ref, platforms: image.platforms })),
    sizing: sizingOf(metadata),
    storeBytes: metadata.totals.bytes,
    k3sBinaryBytes,
    k3sArchiveBytes: bin.reduce((sum, file) => sum + file.size, 0) - k3sBinaryBytes,
    imageBytes: images.reduce((sum, image) => sum + image.totalBytes, 0),
  };
}

/** Reads only the bundle's first entries: instant whatever its size. */
export async function readBundleFacts(bundle: string): Promise<BundleFacts> {
  const head = await readBundleHead([bundle]);
  return factsOf(head.metadata, head.digest);
}
