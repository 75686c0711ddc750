export { AirlockError, isAirlockError, errnoCode } from "./errors.js";
export type { AirlockErrorDetails } from "./errors.js";
export { ERROR_CODES, OCI_ERROR_CODES, errorCodeInfo } from "./error-codes.js";
export { errorCodesMarkdown } from "./error-codes-doc.js";
export type { ErrorCode, ErrorCodeInfo, OciErrorCode } from "./error-codes.js";
export { Digester, digestOf, isDigest, parseDigest, sha256Hex } from "./digest.js";
export type { Digest, DigestAlgorithm } from "./digest.js";
export { MediaType, EMPTY_JSON, isIndexMediaType, isManifestMediaType } from "./mediatypes.js";
export {
  parseManifest,
  validateDescriptor,
  childDescriptors,
  isNonDistributable,
  artifactTypeOf,
  subjectOf,
  encodeJson,
  MAX_MANIFEST_BYTES,
  REF_NAME_ANNOTATION,
} from "./manifest.js";
export type { Descriptor, ImageManifest, ImageIndex, ParsedManifest, Platform } from "./manifest.js";
export { parsePlatform, formatPlatform, platformMatches } from "./platform.js";
export {
  parseReference,
  formatReference,
  isValidRepository,
  isValidTag,
  isRegistryHost,
  isHostPort,
  MAX_REPOSITORY_LENGTH,
} from "./reference.js";
export type { Reference } from "./reference.js";
export { fieldIssuesError, fieldIssuesOf, schemaIssueMessage } from "./field-issues.js";
export type { FieldIssue, IssueWording, SchemaIssue } from "./field-issues.js";
export { silentLogger } from "./logger.js";
export type { Logger, LogFields, LogLevel } from "./logger.js";
export { formatBytes } from "./bytes.js";
export type { OperationOptions, Progress } from "./progress.js";
