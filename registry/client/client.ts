import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request, type Dispatcher } from "undici";
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
import { basicAuthorization, parseChallenge, type Credentials } from "./auth.js";
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

export type Scope = string;

export interface SendOptions {
  method: Dispatcher.HttpMethod;
  /** A path on the registry, or an absolute URL it gave (an upload Location). */
  path: string;
  scope: Scope;
  headers?: Record<string, string>;
  /** Called for each attempt: a retry needs the body afresh. */
  body?: (() => Readable | Uint8Array | AsyncIterable<Uint8Array> | undefined) | undefined;
  /** Statuses the caller handles; anything else is an error. */
  expect: number[];
  /** Off for requests whose body cannot be sent again as it was (a resumed PATCH decides itself). */
  retry?: boolean;
  /** What the failure is about, for its message: an image or blob. */
  what: string;
  /** No credentials: a redirect to another host must not carry the registry's. */
  anonymous?: boolean;
}

export const MANIFEST_ACCEPT = [
  MediaType.OciIndex,
  MediaType.OciManifest,
  MediaType.DockerManifestList,
  MediaType.DockerManifest,
].join(", ");

const MONOLITHIC_MAX_BYTES = 16 * 1024 * 1024;
const MAX_ERROR_BODY = 64 * 1024;
/** Pulled blobs are handed out in pieces of this size (DESIGN.md: 1 MiB or more where bytes flow). */
const BLOB_BATCH_BYTES = 1024 * 1024;

const REDIRECTS = [301, 302, 303, 307, 308];
const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);
const RETRYABLE_ERRORS = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);
const TLS_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|SSL_|TLSV/;

function errorCode(error: unknown): string {
  const own = (error as { code?: unknown }).code;
  const cause = (error as { cause?: { code?: unknown } }).cause?.code;
  return typeof own === "string" ? own : typeof cause === "string" ? cause : "";
}

/**
 * The one OCI registry client: ping, auth challenges (basic, bearer token per scope), retries with
 * backoff and jitter, manifests and blobs checked against their digests while streaming, pushes
 * that HEAD first, mount across repositories, and resume a large upload where the server says it
 * stands. Every request goes to the one host it was made for.
 */
export class RegistryClient {
  readonly host: string;
  readonly base: string;
  private readonly dispatcher: Agent;
  private readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly monolithicMaxBytes: number;
  private readonly signal: AbortSignal | undefined;
  private readonly credentials: Credentials | undefined;
  /** The scheme the registry challenged with, once known: later scopes get credentials up front. */
  private challenge: { scheme: string; params: Record<string, string> } | undefined;
  private readonly tokens = new Map<Scope, Promise<string>>();
  private readonly uploader: BlobUploader;

  constructor(options: RegistryClientOptions) {
    this.host = options.host;
    this.base = `${options.insecureHttp === true ? "http" : "https"}://${options.host}`;
    this.retries = options.retries ?? 6;
    this.retryBaseMs = options.retryBaseMs ?? 250;
    this.monolithicMaxBytes = options.monolithicMaxBytes ?? MONOLITHIC_MAX_BYTES;
    this.signal = options.signal;
    this.credentials = options.credentials;
    this.dispatcher = new Agent({
      connections: options.connections ?? 16,
      connect: {
        ...(options.ca === undefined ? {} : { ca: [options.ca.toString()] }),
        rejectUnauthorized: options.skipTlsVerify !== true,
      },
      headersTimeout: 120_000,
      bodyTimeout: 300_000,
    });
    this.uploader = new BlobUploader({
      host: this.host,
      base: this.base,
      retries: this.retries,
      monolithicMaxBytes: this.monolithicMaxBytes,
      send: (send) => this.send(send),
      location: (response, what) => this.location(response, what),
      retryable: (error) => this.retryable(error),
      backoff: (attempt, retryAfter) => this.backoff(attempt, retryAfter),
      headBlob: (repository, digest) => this.headBlob(repository, digest),
    });
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** GET /v2/: reachable, speaks the distribution API, and the credentials (if any) are accepted. */
  async ping(): Promise<void> {
    const response = await this.send({
      method: "GET",
      path: "/v2/",
      scope: "",
      expect: [200],
      what: this.host,
    });
    await response.body.dump();
  }

  async getManifest(repository: string, reference: string): Promise<ManifestResponse> {
    const response = await this.send({
      method: "GET",
      path: `/v2/${repository}/manifests/${reference}`,
      scope: `repository:${repository}:pull`,
      headers: { Accept: MANIFEST_ACCEPT },
      expect: [200],
      what: `${this.host}/${repository}:${reference}`,
    });
    const bytes = await this.readLimited(response, MAX_MANIFEST_BYTES, `${repository}:${reference}`);
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
    const response = await this.send({
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
    const response = await this.send({
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
    const response = await this.send({
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
    let response = await this.send({
      method: "GET",
      path: `/v2/${repository}/blobs/${descriptor.digest}`,
      scope: `repository:${repository}:pull`,
      expect: [200, ...REDIRECTS],
      what,
    });
    if (REDIRECTS.includes(response.statusCode)) {
      // Registries on object storage send blobs from elsewhere: followed without the registry's credentials.
      const location = this.location(response, what);
      await response.body.dump();
      response = await this.send({
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
    const response = await this.send({
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
    const bytes = await this.readLimited(response, MAX_MANIFEST_BYTES, `referrers of ${digest}`);
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

  private location(response: Dispatcher.ResponseData, what: string): string {
    const location = response.headers.location;
    if (typeof location !== "string" || location === "") {
      throw new AirlockError("REGISTRY_PROTOCOL", "the registry answered an upload without a Location", {
        where: what,
      });
    }
    return new URL(location, this.base).toString();
  }

  private async readLimited(response: Dispatcher.ResponseData, max: number, what: string): Promise<Buffer> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      size += chunk.byteLength;
      if (size > max) {
        response.body.destroy();
        throw new AirlockError("REGISTRY_PROTOCOL", `${what} is over ${max} bytes`, { where: this.host });
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks);
  }

  private retryable(error: unknown): boolean {
    if (error instanceof AirlockError) return error.code === "REGISTRY_UNAVAILABLE";
    return RETRYABLE_ERRORS.has(errorCode(error));
  }

  private async backoff(attempt: number, retryAfter: string | string[] | undefined): Promise<void> {
    const seconds = Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
    const capped = Math.min(10_000, this.retryBaseMs * 2 ** attempt);
    const ms =
      Number.isFinite(seconds) && seconds >= 0
        ? Math.min(60_000, seconds * 1000)
        : capped / 2 + Math.random() * (capped / 2);
    await sleep(ms, undefined, { signal: this.signal });
  }

  /** Authorization for a scope: basic credentials, or a token from the challenge's realm. */
  private authorization(scope: Scope): Promise<string> | undefined {
    const challenge = this.challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === "basic") {
      return this.credentials === undefined
        ? undefined
        : Promise.resolve(basicAuthorization(this.credentials));
    }
    let token = this.tokens.get(scope);
    if (token === undefined) {
      token = this.fetchToken(challenge.params, scope);
      this.tokens.set(scope, token);
      token.catch(() => this.tokens.delete(scope));
    }
    return token;
  }

  private async fetchToken(params: Record<string, string>, scope: Scope): Promise<string> {
    const realm = params.realm;
    if (realm === undefined) {
      throw new AirlockError("REGISTRY_PROTOCOL", "the registry's Bearer challenge names no realm", {
        where: this.host,
      });
    }
    const url = new URL(realm);
    if (params.service !== undefined) url.searchParams.set("service", params.service);
    for (const one of scope.split(" ").filter(Boolean)) url.searchParams.append("scope", one);
    const headers: Record<string, string> =
      this.credentials === undefined ? {} : { Authorization: basicAuthorization(this.credentials) };
    const response = await this.attempt("GET", url.toString(), headers, undefined, url.host);
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new AirlockError(
        "REGISTRY_AUTH_FAILED",
        `the token service refused the credentials (${response.statusCode})`,
        {
          where: url.origin + url.pathname,
          hint:
            this.credentials === undefined
              ? "give --creds USER:PASSWORD or --authfile"
              : "check the user name and password",
        },
      );
    }
    const body = (await response.body.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (token === undefined) {
      throw new AirlockError("REGISTRY_PROTOCOL", "the token service answered without a token", {
        where: url.origin,
      });
    }
    return `Bearer ${token}`;
  }

  private async attempt(
    method: Dispatcher.HttpMethod,
    url: string,
    headers: Record<string, string>,
    body: Readable | Uint8Array | AsyncIterable<Uint8Array> | undefined,
    where: string,
  ): Promise<Dispatcher.ResponseData> {
    try {
      // undici writes an async-iterable body chunk by chunk, awaiting 'drain' after any write the socket
      // did not take whole (client-h1 writeIterable), though its types list only streams and buffers.
      const payload = body as Dispatcher.DispatchOptions["body"];
      return await request(url, {
        method,
        headers,
        body: payload,
        dispatcher: this.dispatcher,
        signal: this.signal,
      });
    } catch (error) {
      if (this.signal?.aborted === true) throw error;
      const code = errorCode(error);
      if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
        throw new AirlockError("REGISTRY_UNREACHABLE", `cannot resolve ${new URL(url).hostname}`, {
          where,
          hint: "check the registry's host name: this host must resolve and reach it",
          cause: error,
        });
      }
      if (TLS_ERRORS.test(code) || TLS_ERRORS.test(String((error as Error).message))) {
        throw new AirlockError(
          "REGISTRY_TLS_FAILED",
          `TLS with ${new URL(url).host} failed: ${(error as Error).message}`,
          {
            where,
            hint:
              code === "ERR_TLS_CERT_ALTNAME_INVALID"
                ? "the certificate does not name this host: use the name it was issued for"
                : "give the registry's CA with --ca-file (or --insecure-skip-tls-verify, knowingly)",
            cause: error,
          },
        );
      }
      throw error;
    }
  }

  /** A path on the registry, or an absolute URL it gave (an upload Location, a redirect). */
  private urlOf(path: string): string {
    return path.startsWith("http") ? path : `${this.base}${path}`;
  }

  /** The request's own headers and, unless it goes out anonymously, its Authorization. */
  private async headersFor(options: SendOptions): Promise<Record<string, string>> {
    const authorization = options.anonymous === true ? undefined : await this.authorization(options.scope);
    return { ...options.headers, ...(authorization === undefined ? {} : { Authorization: authorization }) };
  }

  /** One request with auth and retries; the response's status is one of `expect`. */
  private async send(options: SendOptions): Promise<Dispatcher.ResponseData> {
    const url = this.urlOf(options.path);
    let authorizedOnce = false;
    for (let attempt = 0; ; attempt++) {
      const headers = await this.headersFor(options);
      let response: Dispatcher.ResponseData;
      try {
        response = await this.attempt(options.method, url, headers, options.body?.(), options.what);
      } catch (error) {
        if (!this.retryable(error) || options.retry === false) throw error;
        if (attempt >= this.retries) {
          throw new AirlockError("REGISTRY_UNREACHABLE", `${this.host}: ${(error as Error).message}`, {
            where: options.what,
            hint: "the registry is down or the network between is failing: re-run to go on where this stopped",
            cause: error,
          });
        }
        await this.backoff(attempt, undefined);
        continue;
      }
      if (options.expect.includes(response.statusCode)) return response;
      if (response.statusCode === 401 && !authorizedOnce && options.anonymous !== true) {
        await response.body.dump();
        const challenge = parseChallenge(String(response.headers["www-authenticate"] ?? ""));
        if (challenge === undefined) throw await this.refused(options, response);
        this.challenge = challenge;
        this.tokens.delete(options.scope);
        authorizedOnce = true;
        attempt--;
        continue;
      }
      if (RETRYABLE_STATUS.has(response.statusCode) && options.retry !== false && attempt < this.retries) {
        await response.body.dump();
        await this.backoff(attempt, response.headers["retry-after"]);
        continue;
      }
      throw await this.refused(options, response);
    }
  }

  /** The registry's answer as an AirlockError: its OCI error code and message, and what to do. */
  private async refused(options: SendOptions, response: Dispatcher.ResponseData): Promise<AirlockError> {
    let detail = "";
    let ociCode = "";
    let answer = response;
    if (options.method === "HEAD" && response.statusCode >= 400 && response.statusCode < 500) {
      // A HEAD answer has no body to say why: the same GET does (a manifest or blob at most, once).
      await response.body.dump();
      answer = await this.attempt(
        "GET",
        this.urlOf(options.path),
        await this.headersFor(options),
        undefined,
        options.what,
      );
    }
    if (answer.statusCode === response.statusCode && answer.statusCode >= 400) {
      const text = (
        await this.readLimited(answer, MAX_ERROR_BODY, "an error body").catch(() => Buffer.alloc(0))
      ).toString("utf8");
      try {
        const first = (JSON.parse(text) as { errors?: { code?: string; message?: string }[] }).errors?.[0];
        ociCode = first?.code ?? "";
        detail = `${ociCode}: ${first?.message ?? ""}`;
      } catch {
        detail = text.slice(0, 200);
      }
    } else await answer.body.dump();
    const status = response.statusCode;
    const code =
      status === 404 && ["BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"].includes(ociCode)
        ? "REGISTRY_UPLOAD_LOST"
        : status === 401
          ? "REGISTRY_AUTH_FAILED"
          : status === 403
            ? "REGISTRY_DENIED"
            : RETRYABLE_STATUS.has(status)
              ? "REGISTRY_UNAVAILABLE"
              : "REGISTRY_REFUSED";
    const hints: Record<string, string> = {
      REGISTRY_AUTH_FAILED: "check the credentials (--creds USER:PASSWORD or --authfile)",
      REGISTRY_DENIED: "the account may not do this here: ask for push rights on the repository",
      REGISTRY_UNAVAILABLE: "the registry kept failing: re-run when it is healthy, finished work is kept",
      NAME_INVALID: "the target cannot hold this repository name: pick another --to prefix",
      MANIFEST_INVALID: "the target refuses this manifest's media type or content",
      UNSUPPORTED: "the target does not support this operation or media type",
    };
    return new AirlockError(
      code,
      `${options.method} ${options.what}: ${status}${detail === "" ? "" : ` ${detail}`}`,
      { where: options.what, hint: hints[ociCode] ?? hints[code] },
    );
  }
}
