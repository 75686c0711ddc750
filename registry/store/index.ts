export { FsBlobStore, BlobIngest, wrapWriteError, writeFully } from "./blobs.js";
export type {
  BlobInfo,
  BlobReader,
  BlobWriter,
  ByteRange,
  CommittedBlob,
  ExpectedBlob,
  WriteChunk,
  BlobStoreOptions,
} from "./blobs.js";
export { Store } from "./store.js";
export type {
  BundleRecord,
  StoredBundle,
  BundleSummary,
  TagCounts,
  ImageRecord,
  FileRecord,
  ManifestRecord,
  TagRecord,
  SignatureStatus,
  FsckReport,
  GcReport,
  StoreOptions,
  UploadSession,
  ContentReader,
  ContentWriter,
  ContentIngest,
  ContentStore,
  ManifestStore,
  TagStore,
  BlobLinks,
  ReferrerRecord,
  RegistryContent,
} from "./types.js";
export { acquireLock } from "./lock.js";
export { SCHEMA_VERSION } from "./db.js";
export { configureConnection } from "./sqlite.js";
export {
  readChunks,
  readFileRanges,
  takeBuffer,
  giveBack,
  allocateReadBuffer,
  STREAM_CHUNK_BYTES,
} from "./chunks.js";
export type { ChunkRange, FileRange } from "./chunks.js";
