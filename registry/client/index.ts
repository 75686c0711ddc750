export { RegistryClient, MANIFEST_ACCEPT } from "./client.js";
export type { RegistryClientOptions, ManifestResponse } from "./client.js";
export type { BlobBody, BlobProgress, PushBlobOptions, PushOutcome, UploadCheckpoint } from "./upload.js";
export { parseChallenge, basicAuthorization, credentialsFromAuthFile, parseCredentials } from "./auth.js";
export type { Challenge, Credentials } from "./auth.js";
