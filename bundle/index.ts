export { buildBundle } from "./build.js";
export type { BuildOptions, BuildResult, SiteInventory } from "./build.js";
export { verifyBundle, openBundle, readBundleHead, checkSignature, checkEntryName } from "./verify.js";
export type {
  VerifyOptions,
  VerifyResult,
  BundleHead,
  SignatureReport,
  BundleWalk,
  VerifiedEntry,
  HashingWriter,
} from "./verify.js";
export { importBundle } from "./import.js";
export type { ImportResult } from "./import.js";
export { inspectBundle, diffBundles, exportInventory } from "./inspect.js";
export type { InspectResult, DiffResult } from "./inspect.js";
export {
  generateKeyPair,
  loadPrivateKey,
  loadPublicKey,
  keyFingerprint,
  signBytes,
  verifyBytes,
} from "./sign.js";
export type { KeyPairFiles } from "./sign.js";
export { loadBundleSpec } from "./build.js";
export type {
  BundleSpec,
  ImageSpec,
  PackSpec,
  FileSpec,
  ImageSourceSpec,
  RegistrySourceSpec,
  RegistrySpec,
} from "./spec.js";
export { defaultAuthFile } from "./registry-source.js";
export { resolveBundleInput, PARTS_SUFFIX } from "./parts.js";
export type { PartInfo, PartsManifest, BundleInput, ArrivingBundle } from "./parts.js";
export { readTar, encodeHeader, endOfArchive, paddingFor, indexTarFile } from "./tar.js";
export type { TarEntry, TarReadEntry } from "./tar.js";
export * from "./format.js";
export { mirror } from "./mirror.js";
export { storeSource, bundleSource } from "./mirror-sources.js";
export type {
  MirrorImage,
  MirrorOptions,
  MirrorResult,
  MirroredImage,
  MirrorSource,
  UploadJournal,
} from "./mirror.js";
export { MirrorStateFile } from "./mirror-state.js";
export type { InFlightUpload } from "./mirror-state.js";
export { mirrorClientConfig } from "./mirror-config.js";
export type { MirrorConfigOptions } from "./mirror-config.js";
