import {
  AirlockError,
  Digester,
  MAX_MANIFEST_BYTES,
  MediaType,
  digestOf,
  isDigest,
  parseDigest,
  type Descriptor,
  type Digest,
} from "../oci/index.js";
import type { Credentials } from "./auth.js";
import { Transport } from "./transport.js";
import {
  BlobUploader,
  type BlobBody,
  type BlobProgress,
  type PushBlobOptions,
  type PushOutcome,
} from "./upload.js";

export interface RegistryClientOptions {
  /** `host[:port]` of the registry. */
  host: string;
  /** Plain HTTP; only when asked for. */
  insecureHttp?: boolean;
  /** PEM of the CA(s) the registry's certificate chains to, beside the system's. */
  ca?: string | Buffer | undefined;
  /** Accept any certificate: an explicit opt-in, never a fallback. */
  skipTlsVerify?: boolean;
  credentials?: Credentials | undefined;
  /** Attempts after the first, for resets, 429 and 5xx. */
  retries?: number;
  /** First backoff; doubles per attempt, with jitter, capped at 10 s (or Retry-After, up to 60 s). */
  retryBaseMs?: number;
  /** Connections to the registry at once. */
  connections?: number;
  /** Blobs up to this size go up in one PUT; larger ones in a PATCH that resumes after a reset. */
  monolithicMaxBytes?: number;
  signal?: AbortSignal | undefined;
}

export interface ManifestResponse {
  bytes: Buffer;
  mediaType: string;
  digest: Digest;
}

export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
].join(", ");

const MONOLITHIC_MAX_BYTES = 16 * 1024 * 1024;
/** Pulled blobs are handed out in pieces of this size (DESIGN.md: 1 MiB or more where bytes flow). */
const BLOB_BATCH_BYTES = 1024 * 1024;

const REDIRECTS = [301, 302, 303, 307, 308];

/**
 * The one OCI registry client: ping, auth challenges (basic, bearer token per scope), retries with
 * backoff and jitter, manifests and blobs checked against their digests while streaming, pushes
 * that HEAD first, mount across repositories, and resume a large upload where the server says it
 * stands. Every request goes to the one host it was made for.
 */
export class RegistryClient {
  readonly host: string;
  readonly base: string;
  private readonly transport: Transport;
  private readonly uploader: BlobUploader;

  constructor(options: RegistryClientOptions) {
    this.host = options.host;
    this.base = `${options.insecureHttp === true ? "http" : "https"}://${options.host}`;
    const transport = new Transport({
      host: this.host,
      base: this.base,
      ca: options.ca,
      skipTlsVerify: options.skipTlsVerify,
      credentials: options.credentials,
      retries: options.retries ?? 6,
      retryBaseMs: options.retryBaseMs ?? 250,
      connections: options.connections ?? 16,
      signal: options.signal,
    });
    this.transport = transport;
    this.uploader = new BlobUploader({
      host: this.host,
      base: this.base,
      retries: transport.retries,
      monolithicMaxBytes: options.monolithicMaxBytes ?? MONOLITHIC_MAX_BYTES,
      send: (send) => transport.send(send),
      location: (response, what) => transport.location(response, what),
      retryable: (error) => transport.retryable(error),
      backoff: (attempt, retryAfter) => transport.backoff(attempt, retryAfter),
      headBlob: (repository, digest) => this.headBlob(repository, digest),
    });
  }

  async close(): Promise<void> {
    await this.transport.close();
  }

  /** GET /v2/: reachable, speaks the distribution API, and the credentials (if any) are accepted. */
  async ping(): Promise<void> {
    const response = await this.transport.send({
      method: "GET",
      path: "/v2/",
      scope: "",
      expect: [200],
      what: this.host,
    });
    await response.body.dump();
  }

  async getManifest(repository: string, reference: string): Promise<ManifestResponse> {
    const response = await this.transport.send({
      method: "GET",
      path: `/v2/${repository}/manifests/${reference}`,
      scope: `repository:${repository}:pull`,
      headers: { Accept: MANIFEST_ACCEPT },
      expect: [200],
      what: `${this.host}/${repository}:${reference}`,
    });
    const bytes = await this.transport.readLimited(
      response,
      MAX_MANIFEST_BYTES,
      `${repository}:${reference}`,
    );
    const digest = isDigest(reference) ? reference : digestOf(bytes);
    if (digestOf(bytes, parseDigest(digest).algorithm) !== digest) {
      throw new AirlockError(
        "REGISTRY_DIGEST_MISMATCH",
        `the manifest served for ${reference} is not ${digest}`,
        {
          where: `${this.host}/${repository}`,
          hint: "the registry's content is damaged, or something between rewrites it",
        },
      );
    }
    const contentType = String(response.headers["content-type"] ?? "")
      .split(";")[0]!
      .trim();
    const declared = (JSON.parse(bytes.toString("utf8")) as { mediaType?: string }).mediaType;
    return { bytes, mediaType: declared ?? contentType, digest };
  }

  /** The manifest's digest if the repository has it, else undefined. */
  async headManifest(repository: string, reference: string): Promise<Digest | undefined> {
    const response = await this.transport.send({
      method: "HEAD",
      path: `/v2/${repository}/manifests/${reference}`,
      scope: `repository:${repository}:pull`,
      headers: { Accept: MANIFEST_ACCEPT },
      expect: [200, 404],
      what: `${this.host}/${repository}:${reference}`,
    });
    await response.body.dump();
    if (response.statusCode === 404) return undefined;
    const digest = String(response.headers["docker-content-digest"] ?? "");
    return isDigest(digest) ? digest : undefined;
  }

  async putManifest(
    repository: string,
    reference: string,
    bytes: Uint8Array,
    mediaType: string,
  ): Promise<Digest> {
    const response = await this.transport.send({
      method: "PUT",
      path: `/v2/${repository}/manifests/${reference}`,
      scope: `repository:${repository}:pull,push`,
      headers: { "Content-Type": mediaType, "Content-Length": String(bytes.byteLength) },
      body: () => bytes,
      expect: [201],
      what: `${this.host}/${repository}:${reference}`,
    });
    await response.body.dump();
    return digestOf(bytes);
  }

  /** Size of the blob in the repository, or undefined. */
  async headBlob(repository: string, digest: Digest): Promise<number | undefined> {
    const response = await this.transport.send({
      method: "HEAD",
      path: `/v2/${repository}/blobs/${digest}`,
      scope: `repository:${repository}:pull`,
      expect: [200, 404],
      what: `${this.host}/${repository}@${digest}`,
    });
    await response.body.dump();
    return response.statusCode === 404 ? undefined : Number(response.headers["content-length"] ?? 0);
  }

  /**
   * The blob's bytes, checked against its digest as they pass: the last chunk is held back until the
   * digest matched, so a consumer never commits a wrong blob.
   */
  async *getBlob(
    repository: string,
    descriptor: Descriptor,
    onProgress?: (p: BlobProgress) => void,
  ): AsyncGenerator<Buffer> {
    const what = `${this.host}/${repository}@${descriptor.digest}`;
    let response = await this.transport.send({
      method: "GET",
      path: `/v2/${repository}/blobs/${descriptor.digest}`,
      scope: `repository:${repository}:pull`,
      expect: [200, ...REDIRECTS],
      what,
    });
    if (REDIRECTS.includes(response.statusCode)) {
      // Registries on object storage send blobs from elsewhere: followed without the registry's credentials.
      const location = this.transport.location(response, what);
      await response.body.dump();
      response = await this.transport.send({
        method: "GET",
        path: location,
        scope: "",
        expect: [200],
        what,
        anonymous: true,
      });
    }
    const digester = new Digester(parseDigest(descriptor.digest).algorithm);
    // The response arrives in socket-sized pieces (64 KiB): gathered into 1 MiB batches so that a
    // consumer writing each to a file pays one write per MiB. A full batch is handed out only once the
    // next one is full too, and the last two after the digest matched, so bad bytes never leave.
    let batch: Buffer | undefined;
    let filled = 0;
    let ready: Buffer | undefined;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      digester.update(chunk);
      let rest = chunk;
      while (rest.byteLength > 0) {
        batch ??= Buffer.allocUnsafeSlow(BLOB_BATCH_BYTES);
        const copied = rest.copy(batch, filled);
        filled += copied;
        rest = rest.subarray(copied);
        if (filled < batch.byteLength) continue;
        if (ready !== undefined) yield ready;
        ready = batch;
        batch = undefined;
        filled = 0;
      }
      onProgress?.({ digest: descriptor.digest, done: digester.size, total: descriptor.size });
    }
    if (digester.size !== descriptor.size || digester.digest() !== descriptor.digest) {
      throw new AirlockError(
        "REGISTRY_DIGEST_MISMATCH",
        `blob ${descriptor.digest} arrived as ${digester.size} bytes hashing to ${digester.digest()}`,
        {
          where: `${this.host}/${repository}`,
          hint: "the registry's copy is damaged: re-push it there, then retry",
        },
      );
    }
    if (ready !== undefined) yield ready;
    if (batch !== undefined) yield batch.subarray(0, filled);
  }

  /** Manifests whose subject is `digest` (the referrers API); empty where the registry has none. */
  async referrers(repository: string, digest: Digest): Promise<Descriptor[]> {
    const response = await this.transport.send({
      method: "GET",
      path: `/v2/${repository}/referrers/${digest}`,
      scope: `repository:${repository}:pull`,
      headers: { Accept: MediaType.OciIndex },
      expect: [200, 404],
      what: `${this.host}/${repository}@${digest}`,
    });
    if (response.statusCode === 404) {
      await response.body.dump();
      return [];
    }
    const bytes = await this.transport.readLimited(response, MAX_MANIFEST_BYTES, `referrers of ${digest}`);
    return (JSON.parse(bytes.toString("utf8")) as { manifests?: Descriptor[] }).manifests ?? [];
  }

  /**
   * Puts a blob into `repository` unless it is there: HEAD first, then a mount from `mountFrom` (a
   * repository of the same registry that holds it), else an upload — one PUT for a small blob, a
   * streamed PATCH for a large one that, after a reset, asks the server where it stands and goes on
   * from there. An upload session the registry lost (a restart) is started again; one an earlier run
   * left (`resume`) is taken over where the registry says it stands.
   */
  pushBlob(
    repository: string,
    descriptor: Descriptor,
    body: BlobBody,
    options: PushBlobOptions = {},
  ): Promise<PushOutcome> {
    return this.uploader.pushBlob(repository, descriptor, body, options);
  }
}
