import type { Digest, DigestAlgorithm, ParsedManifest } from "../oci/index.js";
import type {
  BlobIngest,
  BlobInfo,
  BlobStoreOptions,
  ByteRange,
  CommittedBlob,
  ExpectedBlob,
} from "./blobs.js";

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

/** A bundle as a listing shows it: its row, and how many images it brought instead of them. */
export interface BundleSummary extends Omit<StoredBundle, "images" | "files"> {
  imageCount: number;
}

export interface TagCounts {
  tags: number;
  repositories: number;
}

export interface TagRecord {
  repository: string;
  tag: string;
  digest: Digest;
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

/**
 * Content-addressed blobs, whatever holds them: what the contract suite (test/contract) pins for every
 * implementation. FsBlobStore is one (with the file layout on top: `path`, named ingests); the
 * registry's push side writes through this and nothing more.
 */
export interface ContentReader {
  stat(digest: Digest): Promise<BlobInfo | undefined>;
  /** A malformed digest throws at the call; a blob that is absent rejects on the first read (ENOENT). */
  chunks(digest: Digest, range?: ByteRange): AsyncGenerator<Buffer>;
  /** The whole blob, refused (BLOB_UNKNOWN, BLOB_TOO_LARGE) when absent or over `maxBytes`. */
  readSmall(digest: Digest, maxBytes: number): Promise<Buffer>;
  list(): AsyncIterable<Digest>;
}

/** One blob being written: visible only once `commit` checked its digest and size. */
export interface ContentIngest {
  readonly size: number;
  write(chunk: Uint8Array): Promise<void>;
  commit(expected?: ExpectedBlob): Promise<CommittedBlob>;
  abort(): Promise<void>;
}

export interface ContentWriter {
  ingest(algorithm?: DigestAlgorithm): Promise<ContentIngest>;
  put(
    source: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
    expected: ExpectedBlob,
  ): Promise<CommittedBlob>;
  delete(digest: Digest): Promise<boolean>;
}

export type ContentStore = ContentReader & ContentWriter;

/** A manifest referring to another (a signature, an SBOM), as the referrers API lists it. */
export type ReferrerRecord = ManifestRecord & { artifactType: string | undefined };

/** Manifests per repository: DESIGN.md's manifest store, over the blobs that hold their bytes. */
export interface ManifestStore {
  getManifest(repository: string, digest: Digest): ManifestRecord | undefined;
  /** Stores a manifest in its repository, linking the blobs it names (`parsed` is its content) there. */
  putManifest(manifest: ManifestRecord, parsed: ParsedManifest): void;
  /** False when absent; refuses (IN_USE_BY_BUNDLE) what an imported bundle brought. */
  deleteManifest(repository: string, digest: Digest): Promise<boolean>;
  /** Manifests of a repository whose subject is `digest`. */
  listReferrers(repository: string, digest: Digest): ReferrerRecord[];
  hasRepository(repository: string): boolean;
  /** Repositories holding at least one manifest, in order, after `last` when given. */
  listRepositories(limit: number, last?: string): string[];
}

/** Tags per repository, each naming a manifest of it: DESIGN.md's tag store. */
export interface TagStore {
  resolveTag(repository: string, tag: string): Digest | undefined;
  putTag(repository: string, tag: string, digest: Digest): Promise<void>;
  /** False when absent; refuses (IN_USE_BY_BUNDLE) a tag an imported bundle names. */
  deleteTag(repository: string, tag: string): Promise<boolean>;
  /** A repository's tags in order, after `last` when given. */
  listTagsOf(repository: string, limit: number, last?: string): string[];
  listTags(): TagRecord[];
}

/** Which repositories a blob belongs to: a registry serves a blob only under those. */
export interface BlobLinks {
  hasBlob(repository: string, digest: Digest): boolean;
  linkBlob(repository: string, digest: Digest): void;
  /** Links a blob of `from` into `to`; false when `from` does not hold it. */
  mountBlob(from: string, to: string, digest: Digest): boolean;
  /** Unlinks a blob from one repository; refuses (BLOB_IN_USE) while a manifest there names it. */
  deleteBlob(repository: string, digest: Digest): Promise<boolean>;
}

/** What a registry's push side needs of the store: blobs, their links, manifests and tags. */
export interface RegistryContent extends ManifestStore, TagStore, BlobLinks {
  readonly blobs: ContentStore;
}
