import type { Digest } from "../oci/index.js";
import type { BlobIngest, BlobInfo, BlobStoreOptions } from "./blobs.js";

export type SignatureStatus = "verified" | "unchecked" | "unsigned";

export interface ImageRecord {
  ref: string;
  repository: string;
  tag: string;
  digest: Digest;
  mediaType: string;
  size: number;
  kind: "image" | "pack";
}

export interface FileRecord {
  path: string;
  digest: Digest;
  size: number;
  mode: number;
}

export interface ManifestRecord {
  repository: string;
  digest: Digest;
  mediaType: string;
  size: number;
  /** The manifest this one refers to (signatures, SBOMs), for the referrers API. */
  subject?: Digest | undefined;
  artifactType?: string | undefined;
  /** The manifest's own annotations, which the referrers API lists with it. */
  annotations?: Record<string, string> | undefined;
}

export interface BundleRecord {
  digest: Digest;
  name: string;
  version: string;
  upgradeFrom: string | undefined;
  baseDigest: Digest | undefined;
  created: string;
  signature: SignatureStatus;
  totalBytes: number;
  images: ImageRecord[];
  files: FileRecord[];
  /** Every manifest and index of every image, with the repository it is served under. */
  manifests: ManifestRecord[];
}

export interface StoredBundle extends Omit<BundleRecord, "manifests"> {
  id: number;
  importedAt: string;
}

export interface TagRecord {
  repository: string;
  tag: string;
  digest: Digest;
}

export interface Progress {
  phase: string;
  done: number;
  total: number;
  /** What done and total count; bytes unless said. */
  unit?: "bytes" | "items";
  item?: string;
}

export interface OperationOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: Progress) => void) | undefined;
}

export interface FsckReport {
  ok: boolean;
  blobs: number;
  bytes: number;
  corrupt: { digest: Digest; actual: Digest }[];
  missing: { digest: Digest; referencedBy: string }[];
  unreferenced: Digest[];
  staleIngests: number;
}

export interface GcReport {
  dryRun: boolean;
  removed: BlobInfo[];
  bytesFreed: number;
  ingestsRemoved: number;
  uploadsRemoved: number;
}

export interface StoreOptions extends BlobStoreOptions {
  /** Ingest files older than this are a crashed writer's and removed by gc. */
  staleIngestMs?: number;
  /** Registry upload sessions untouched for this long are abandoned and removed by gc. */
  staleUploadMs?: number;
}

/** A registry upload session: a file under `store/uploads/` and a row, both outliving the server. */
export interface UploadSession {
  id: string;
  repository: string;
  ingest: BlobIngest;
}
