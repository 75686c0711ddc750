export { RegistryClient, MANIFEST_ACCEPT } from "./client.js";
export type {
  RegistryClientOptions,
  BlobBody,
  BlobProgress,
  ManifestResponse,
  PushBlobOptions,
  PushOutcome,
  UploadCheckpoint,
} from "./client.js";
export { parseChallenge, basicAuthorization, credentialsFromAuthFile, parseCredentials } from "./auth.js";
export type { Challenge, Credentials } from "./auth.js";
