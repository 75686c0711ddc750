import type { Digest } from "../registry/oci/index.js";

/** Names and media types of the bundle file. DESIGN.md, "The bundle file", is the prose twin of this. */
export const BUNDLE_MEDIA_TYPE = "application/vnd.airlock.bundle.v1+json";
export const METADATA_ENTRY = "airlock.json";
export const SIGNATURE_ENTRY = "airlock.json.sig";
export const LAYOUT_ENTRIES = ["oci-layout", "index.json"] as const;
export const BLOB_DIR = "blobs/sha256/";
export const MANIFESTS_DIR = "manifests/";
export const BIN_DIR = "bin/";
/** `airlock.json` is metadata; anything larger is not one. */
export const MAX_METADATA_BYTES = 64 * 1024 * 1024;
/** Modes build gives files (bundle.yaml's 0644 or 0755); directories are 0755. */
export const FILE_MODES = [0o644, 0o755] as const;
export const DIRECTORY_MODE = 0o755;

/** The mtime of every tar header of a bundle: its `created`, in whole seconds. */
export function entryMtime(created: string): number {
  return Math.floor(Date.parse(created) / 1000);
}

/**
 * What is wrong with a bundle entry name, or undefined: absolute paths, `..`, empty or odd segments
 * (anything beyond letters, digits and `._+@=-`), and names outside the bundle's layout. Build checks
 * its own names with this too, so it never writes a bundle that verify would refuse.
 */
export function entryNameProblem(name: string): string | undefined {
  if (name.startsWith("/")) return "is an absolute path";
  const segments = name.replace(/\/$/, "").split("/");
  if (segments.some((segment) => segment === ".." || segment === ".")) return "climbs out of the bundle";
  if (segments.some((segment) => !/^[A-Za-z0-9._+@=-]+$/.test(segment))) {
    return "has an empty segment or a character other than letters, digits and ._+@=-";
  }
  const layout = [METADATA_ENTRY, SIGNATURE_ENTRY, ...LAYOUT_ENTRIES, "blobs", "manifests", "bin"];
  return layout.includes(segments[0]!) ? undefined : "is outside the bundle layout";
}

export interface BundleImage {
  /** The name inside the bundle and at the site: `repository:tag`. */
  ref: string;
  digest: Digest;
  mediaType: string;
  /** Bytes of the image's own manifest/index document. */
  size: number;
  /** Sum of every distinct blob the image needs, manifests included. */
  totalBytes: number;
  blobs: number;
  platforms: string[];
  kind: "image" | "pack";
  /** Top digest at the source, before any platform filtering. */
  sourceDigest: Digest;
  /**
   * Manifests referring to the image or its platforms (signatures, SBOMs), when bundle.yaml asked for
   * `referrers: true`; their blobs count in totalBytes and blobs. Import serves them from the
   * registry's referrers API under the image's repository.
   */
  referrers?: BundleReferrer[];
}

/** A manifest carried because it refers to an image's manifest or index. */
export interface BundleReferrer {
  digest: Digest;
  mediaType: string;
  size: number;
  artifactType?: string;
  /** The manifest it refers to: the image's top one, one of its platforms', or another referrer. */
  subject: Digest;
}

export interface BundlePack {
  name: string;
  version: string;
  ref: string;
  digest: Digest;
}

export interface BundleFile {
  path: string;
  size: number;
  sha256: string;
  /** One of FILE_MODES. */
  mode: number;
}

export interface BundleBase {
  name: string;
  version: string;
  /** Digest of the base bundle's airlock.json. */
  digest: Digest;
  /** Blobs the delta's images need that it does not carry: the site must already hold them. */
  blobs: { digest: Digest; size: number }[];
}

export interface BundleTotals {
  /** Entries listed in `files`. */
  files: number;
  /** Bytes of every listed file. */
  bytes: number;
  images: number;
  blobs: number;
  blobBytes: number;
}

/**
 * A check the vendor asks an upgrade to this bundle to pass after each broker and at the end
 * (installer/upgrade's declared gates): an HTTP GET that must answer `status` (200 unless given), or
 * a Kubernetes Job (batch/v1) that must succeed within `timeoutSeconds`.
 */
export interface BundleUpgradeGate {
  name: string;
  http?: { url: string; status?: number };
  job?: {
    apiVersion: "batch/v1";
    kind: "Job";
    metadata?: Record<string, unknown>;
    spec: Record<string, unknown>;
  };
  timeoutSeconds?: number;
}

/** The document stored as `airlock.json`, first entry of every bundle. */
export interface BundleMetadata {
  schemaVersion: 1;
  mediaType: typeof BUNDLE_MEDIA_TYPE;
  name: string;
  version: string;
  upgradeFrom?: string;
  /** Declared upgrade gates; absent when the spec declares none. */
  upgradeGates?: BundleUpgradeGate[];
  created: string;
  base?: BundleBase;
  images: BundleImage[];
  packs: BundlePack[];
  /** Every entry of the tar after the signature, in tar order, directories excepted. */
  files: BundleFile[];
  totals: BundleTotals;
}
