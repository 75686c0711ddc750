import type { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { Agent, request, type Dispatcher } from "undici";
import { AirlockError } from "../oci/index.js";
import { RegistryAuth, type Credentials } from "./auth.js";
import { RETRYABLE_STATUS, isRetryable, networkFailure, refusedError, unreachable } from "./errors.js";

export type Scope = string;

export type RequestBody = Readable | Uint8Array | AsyncIterable<Uint8Array> | undefined;

export interface SendOptions {
  method: Dispatcher.HttpMethod;
  /** A path on the registry, or an absolute URL it gave (an upload Location). */
  path: string;
  scope: Scope;
  headers?: Record<string, string>;
  /** Called for each attempt: a retry needs the body afresh. */
  body?: (() => RequestBody) | undefined;
  /** Statuses the caller handles; anything else is an error. */
  expect: number[];
  /** Off for requests whose body cannot be sent again as it was (a resumed PATCH decides itself). */
  retry?: boolean;
  /** What the failure is about, for its message: an image or blob. */
  what: string;
  /** No credentials: a redirect to another host must not carry the registry's. */
  anonymous?: boolean;
}

export interface TransportOptions {
  host: string;
  /** `https://host` or, when asked for, `http://host`. */
  base: string;
  ca?: string | Buffer | undefined;
  skipTlsVerify?: boolean | undefined;
  credentials?: Credentials | undefined;
  /** Attempts after the first, for resets, 429 and 5xx. */
  retries: number;
  /** First backoff; doubles per attempt, with jitter, capped at 10 s (or Retry-After, up to 60 s). */
  retryBaseMs: number;
  connections: number;
  signal?: AbortSignal | undefined;
}

const MAX_ERROR_BODY = 64 * 1024;

/**
 * Requests to one registry: a single attempt on a pooled connection, and `send` around it — the
 * credentials the registry asked for, retries with backoff for resets, 429 and 5xx, and any other
 * unexpected answer turned into an AirlockError.
 */
export class Transport {
  readonly host: string;
  readonly base: string;
  readonly retries: number;
  private readonly retryBaseMs: number;
  private readonly signal: AbortSignal | undefined;
  private readonly dispatcher: Agent;
  private readonly auth: RegistryAuth;

  constructor(options: TransportOptions) {
    this.host = options.host;
    this.base = options.base;
    this.retries = options.retries;
    this.retryBaseMs = options.retryBaseMs;
    this.signal = options.signal;
    this.dispatcher = new Agent({
      connections: options.connections,
      connect: {
        ...(options.ca === undefined ? {} : { ca: [options.ca.toString()] }),
        rejectUnauthorized: options.skipTlsVerify !== true,
      },
      headersTimeout: 120_000,
      bodyTimeout: 300_000,
    });
    this.auth = new RegistryAuth(this.host, options.credentials, (url, headers) =>
      this.attempt("GET", url, headers, undefined, new URL(url).host),
    );
  }

  async close(): Promise<void> {
    await this.dispatcher.close();
  }

  /** One request with auth and retries; the response's status is one of `expect`. */
  async send(options: SendOptions): Promise<Dispatcher.ResponseData> {
    const url = this.urlOf(options.path);
    let authorizedOnce = false;
    for (let attempt = 0; ; attempt++) {
      const headers = await this.headersFor(options);
      let response: Dispatcher.ResponseData;
      try {
        response = await this.attempt(options.method, url, headers, options.body?.(), options.what);
      } catch (error) {
        if (!isRetryable(error) || options.retry === false) throw error;
        if (attempt >= this.retries) throw unreachable(this.host, options.what, error);
        await this.backoff(attempt, undefined);
        continue;
      }
      if (options.expect.includes(response.statusCode)) return response;
      if (response.statusCode === 401 && !authorizedOnce && options.anonymous !== true) {
        await response.body.dump();
        const header = String(response.headers["www-authenticate"] ?? "");
        if (!this.auth.challenged(header, options.scope)) throw await this.refused(options, response);
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

  /** Waits before attempt `attempt + 1`: Retry-After when the registry gave one, else jittered doubling. */
  async backoff(attempt: number, retryAfter: string | string[] | undefined): Promise<void> {
    const seconds = Number(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter);
    const capped = Math.min(10_000, this.retryBaseMs * 2 ** attempt);
    const ms =
      Number.isFinite(seconds) && seconds >= 0
        ? Math.min(60_000, seconds * 1000)
        : capped / 2 + Math.random() * (capped / 2);
    await sleep(ms, undefined, { signal: this.signal });
  }

  retryable(error: unknown): boolean {
    return isRetryable(error);
  }

  /** The absolute URL of the response's Location (an upload session, a redirect). */
  location(response: Dispatcher.ResponseData, what: string): string {
    const location = response.headers.location;
    if (typeof location !== "string" || location === "") {
      throw new AirlockError("REGISTRY_PROTOCOL", "the registry answered an upload without a Location", {
        where: what,
      });
    }
    return new URL(location, this.base).toString();
  }

  /** The whole body, refused once it passes `max` bytes (manifests, error bodies: small by definition). */
  async readLimited(response: Dispatcher.ResponseData, max: number, what: string): Promise<Buffer> {
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

  /** One attempt, no retries; a name that does not resolve or a failed TLS handshake says so. */
  private async attempt(
    method: Dispatcher.HttpMethod,
    url: string,
    headers: Record<string, string>,
    body: RequestBody,
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
      throw networkFailure(error, url, where);
    }
  }

  /** A path on the registry, or an absolute URL it gave (an upload Location, a redirect). */
  private urlOf(path: string): string {
    return path.startsWith("http") ? path : `${this.base}${path}`;
  }

  /** The request's own headers and, unless it goes out anonymously, its Authorization. */
  private async headersFor(options: SendOptions): Promise<Record<string, string>> {
    const authorization =
      options.anonymous === true ? undefined : await this.auth.authorization(options.scope);
    return { ...options.headers, ...(authorization === undefined ? {} : { Authorization: authorization }) };
  }

  /** Reads why the registry refused (a HEAD's reason from the same GET) and maps it to an AirlockError. */
  private async refused(options: SendOptions, response: Dispatcher.ResponseData): Promise<AirlockError> {
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
    let body: string | undefined;
    if (answer.statusCode === response.statusCode && answer.statusCode >= 400) {
      body = (
        await this.readLimited(answer, MAX_ERROR_BODY, "an error body").catch(() => Buffer.alloc(0))
      ).toString("utf8");
    } else await answer.body.dump();
    return refusedError({ method: options.method, what: options.what, status: response.statusCode, body });
  }
}
