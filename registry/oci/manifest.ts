import { AirlockError } from "./errors.js";
import { isDigest, type Digest } from "./digest.js";
import { isIndexMediaType, isManifestMediaType, MediaType } from "./mediatypes.js";

export interface Platform {
  architecture: string;
  os: string;
  variant?: string;
  "os.version"?: string;
  "os.features"?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  artifactType?: string;
  urls?: string[];
  annotations?: Record<string, string>;
  platform?: Platform;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export type ParsedManifest =
  | { kind: "manifest"; mediaType: string; manifest: ImageManifest }
  | { kind: "index"; mediaType: string; index: ImageIndex };

/** Manifests larger than this are refused, as the distribution spec allows. */
export const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;

/** The annotation an OCI layout's index.json uses to name a reference. */
export const REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name";

function invalid(message: string, where: string | undefined): AirlockError {
  return new AirlockError("MANIFEST_INVALID", message, {
    where,
    hint: "the manifest must be an OCI image manifest or index (or Docker schema 2) as JSON",
  });
}

export function validateDescriptor(value: unknown, where?: string): Descriptor {
  if (typeof value !== "object" || value === null) throw invalid("descriptor is not an object", where);
  const d = value as Record<string, unknown>;
  if (typeof d.mediaType !== "string" || d.mediaType === "")
    throw invalid("descriptor has no mediaType", where);
  if (typeof d.digest !== "string" || !isDigest(d.digest)) {
    throw invalid(`descriptor digest ${JSON.stringify(d.digest)} is not valid`, where);
  }
  if (typeof d.size !== "number" || !Number.isSafeInteger(d.size) || d.size < 0) {
    throw invalid(`descriptor size ${JSON.stringify(d.size)} is not a non-negative integer`, where);
  }
  return value as Descriptor;
}

/**
 * Parses and checks a manifest or index. The media type comes from the document, or, when the
 * document omits it, from `declaredMediaType` (the descriptor or Content-Type that named it).
 */
export function parseManifest(bytes: Uint8Array, declaredMediaType?: string, where?: string): ParsedManifest {
  if (bytes.byteLength > MAX_MANIFEST_BYTES) {
    throw invalid(`manifest is ${bytes.byteLength} bytes, over the ${MAX_MANIFEST_BYTES} byte limit`, where);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw invalid(`manifest is not valid JSON: ${(error as Error).message}`, where);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc))
    throw invalid("manifest is not an object", where);
  const m = doc as Record<string, unknown>;
  if (m.schemaVersion !== 2)
    throw invalid(`schemaVersion is ${JSON.stringify(m.schemaVersion)}, not 2`, where);
  const mediaType =
    typeof m.mediaType === "string"
      ? m.mediaType
      : (declaredMediaType ?? (Array.isArray(m.manifests) ? MediaType.OciIndex : MediaType.OciManifest));
  if (
    declaredMediaType !== undefined &&
    typeof m.mediaType === "string" &&
    m.mediaType !== declaredMediaType
  ) {
    throw invalid(`mediaType ${m.mediaType} differs from the declared ${declaredMediaType}`, where);
  }
  if (m.subject !== undefined) validateDescriptor(m.subject, where);
  if (isIndexMediaType(mediaType)) {
    if (!Array.isArray(m.manifests)) throw invalid("index has no manifests array", where);
    m.manifests.forEach((d, i) => validateDescriptor(d, `${where ?? "index"} manifests[${i}]`));
    return { kind: "index", mediaType, index: doc as ImageIndex };
  }
  if (isManifestMediaType(mediaType)) {
    validateDescriptor(m.config, `${where ?? "manifest"} config`);
    if (!Array.isArray(m.layers)) throw invalid("manifest has no layers array", where);
    m.layers.forEach((d, i) => validateDescriptor(d, `${where ?? "manifest"} layers[${i}]`));
    return { kind: "manifest", mediaType, manifest: doc as ImageManifest };
  }
  throw invalid(`unsupported manifest media type ${mediaType}`, where);
}

/** The descriptors a manifest or index contains (not its subject, which it only points at). */
export function childDescriptors(parsed: ParsedManifest): Descriptor[] {
  return parsed.kind === "index"
    ? parsed.index.manifests
    : [parsed.manifest.config, ...parsed.manifest.layers];
}

/**
 * A layer the image spec lets registries lack: a non-distributable media type, or one with `urls`
 * to fetch it from elsewhere. A manifest naming it is accepted without the blob.
 */
export function isNonDistributable(descriptor: Descriptor): boolean {
  return descriptor.mediaType.includes("nondistributable") || (descriptor.urls?.length ?? 0) > 0;
}

/** What the referrers API lists a manifest as: its artifactType, else (image manifests) its config's type. */
export function artifactTypeOf(parsed: ParsedManifest): string | undefined {
  return parsed.kind === "manifest"
    ? (parsed.manifest.artifactType ?? parsed.manifest.config.mediaType)
    : parsed.index.artifactType;
}

export function subjectOf(parsed: ParsedManifest): Descriptor | undefined {
  return parsed.kind === "manifest" ? parsed.manifest.subject : parsed.index.subject;
}

/** Canonical bytes for a manifest Airlock writes itself: compact JSON, keys in insertion order. */
export function encodeJson(value: unknown): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(value));
}
