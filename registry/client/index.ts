export { RegistryClient, MANIFEST_ACCEPT } from "./client.js";
export type {
  RegistryClientOptions,
  BlobBody,
  BlobProgress,
  ManifestResponse,
  PushOutcome,
} from "./client.js";
export { parseChallenge, basicAuthorization, credentialsFromAuthFile, parseCredentials } from "./auth.js";
export type { Challenge, Credentials } from "./auth.js";
