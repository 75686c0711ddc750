import { Readable, Transform } from "node:stream";
import type { Dispatcher } from "undici";
import { AirlockError, isAirlockError, type Descriptor, type Digest } from "../oci/index.js";
import type { Scope, SendOptions } from "./transport.js";

export interface BlobProgress {
  digest: Digest;
  done: number;
  total: number;
  /** A chunked upload's session (its Location, absolute): where a later run can resume it. */
  location?: string | undefined;
  /** Bytes a session of an earlier run already held when this push took it over: not sent again. */
  resumedFrom?: number | undefined;
}

/** Where a chunked upload stood: its session's Location and the bytes handed to the socket by then. */
export interface UploadCheckpoint {
  location: string;
  offset: number;
}

export interface PushBlobOptions {
  /** A repository of the same registry that holds the blob: mounted from there instead of uploaded. */
  mountFrom?: string | undefined;
  onProgress?: ((p: BlobProgress) => void) | undefined;
  /**
   * An upload an earlier run left (it was killed): resumed from the offset the registry reports for
   * it, or started afresh when the registry no longer has it or reports more than the blob holds.
   */
  resume?: UploadCheckpoint | undefined;
}

/** An upload session and the offset it stands at; `resumed` when it is an earlier run's. */
interface Session {
  location: string;
  offset: number;
  resumed: boolean;
}

/**
 * A blob's bytes from `offset` on, for an upload and for each resumption of it. An async iterable goes
 * to the socket as it is: the next chunk is asked for only once the socket took the previous one, so
 * a source may reuse its buffers (bundle/mirror.ts's ring).
 */
export type BlobBody = (offset: number) => Readable | Uint8Array | AsyncIterable<Uint8Array>;

export type PushOutcome = "present" | "mounted" | "uploaded";

const STREAM_HIGH_WATER_MARK = 4 * 1024 * 1024;

/** Counts an iterable body's bytes for progress, passing each chunk on untouched and unbuffered. */
async function* countingChunks(
  source: AsyncIterable<Uint8Array>,
  onBytes: (n: number) => void,
): AsyncGenerator<Uint8Array> {
  for await (const chunk of source) {
    yield chunk;
    onBytes(chunk.byteLength);
  }
}

/** Counts bytes on their way out, for progress, without holding any. */
function counting(source: Readable, onBytes: (n: number) => void): Readable {
  const counter = new Transform({
    highWaterMark: STREAM_HIGH_WATER_MARK,
    transform(chunk: Buffer, _encoding, done) {
      onBytes(chunk.byteLength);
      done(null, chunk);
    },
  });
  source.on("error", (error) => counter.destroy(error));
  return source.pipe(counter);
}

/** What pushing a blob needs of the client: its requests (authenticated, retried) and its settings. */
export interface UploadRequests {
  readonly host: string;
  readonly base: string;
  readonly retries: number;
  /** Blobs up to this size go up in one PUT; larger ones in a PATCH that resumes after a reset. */
  readonly monolithicMaxBytes: number;
  send(options: SendOptions): Promise<Dispatcher.ResponseData>;
  location(response: Dispatcher.ResponseData, what: string): string;
  retryable(error: unknown): boolean;
  backoff(attempt: number, retryAfter: string | string[] | undefined): Promise<void>;
  headBlob(repository: string, digest: Digest): Promise<number | undefined>;
}

/** Blob pushes: HEAD, mount, one PUT or a resumable PATCH, and sessions an earlier run left. */
export class BlobUploader {
  constructor(private readonly requests: UploadRequests) {}

  /** See RegistryClient.pushBlob. */
  async pushBlob(
    repository: string,
    descriptor: Descriptor,
    body: BlobBody,
    options: PushBlobOptions = {},
  ): Promise<PushOutcome> {
    let resume =
      descriptor.size > this.requests.monolithicMaxBytes && options.mountFrom === undefined
        ? options.resume
        : undefined;
    for (let restart = 0; ; restart++) {
      if ((await this.requests.headBlob(repository, descriptor.digest)) === descriptor.size) return "present";
      try {
        const session =
          resume === undefined ? undefined : await this.resumable(repository, descriptor, resume);
        resume = undefined;
        return await this.upload(repository, descriptor, body, options, session);
      } catch (error) {
        const lost = error instanceof AirlockError && error.code === "REGISTRY_UPLOAD_LOST";
        if (!(lost || this.requests.retryable(error)) || restart >= this.requests.retries) throw error;
        await this.requests.backoff(restart, undefined);
      }
    }
  }

  /**
   * An earlier run's upload session, where the registry says it stands; undefined when it is no URL
   * or on another host, the registry lost or refuses it, or it claims more bytes than the blob has.
   */
  private async resumable(
    repository: string,
    descriptor: Descriptor,
    checkpoint: UploadCheckpoint,
  ): Promise<Session | undefined> {
    const origin = URL.canParse(checkpoint.location, this.requests.base)
      ? new URL(checkpoint.location, this.requests.base).origin
      : undefined;
    if (origin !== new URL(this.requests.base).origin) return undefined;
    const what = `${this.requests.host}/${repository}@${descriptor.digest}`;
    try {
      const status = await this.uploadStatus(checkpoint.location, `repository:${repository}:pull,push`, what);
      return status.offset <= descriptor.size ? { ...status, resumed: true } : undefined;
    } catch (error) {
      if (isAirlockError(error, ["REGISTRY_UPLOAD_LOST", "REGISTRY_REFUSED"])) return undefined;
      throw error;
    }
  }

  /** GET on an upload session: its Location now and the offset the registry holds. */
  private async uploadStatus(
    location: string,
    scope: Scope,
    what: string,
  ): Promise<{ location: string; offset: number }> {
    const status = await this.requests.send({ method: "GET", path: location, scope, expect: [204], what });
    await status.body.dump();
    const range = /^(?:bytes=)?0-(\d+)$/.exec(String(status.headers.range ?? ""));
    // "0-0" is both empty and one byte; taken as empty, the worst case is one byte sent again.
    const offset = range === null || range[1] === "0" ? 0 : Number(range[1]) + 1;
    return { location: this.requests.location(status, what), offset };
  }

  private async upload(
    repository: string,
    descriptor: Descriptor,
    body: BlobBody,
    options: PushBlobOptions,
    resumed: Session | undefined,
  ): Promise<"mounted" | "uploaded"> {
    const { digest, size } = descriptor;
    const what = `${this.requests.host}/${repository}@${digest}`;
    const scope = `repository:${repository}:pull,push${
      options.mountFrom === undefined ? "" : ` repository:${options.mountFrom}:pull`
    }`;
    let session = resumed;
    if (session === undefined) {
      const mount = options.mountFrom === undefined ? "" : `?mount=${digest}&from=${options.mountFrom}`;
      const started = await this.requests.send({
        method: "POST",
        path: `/v2/${repository}/blobs/uploads/${mount}`,
        scope,
        headers: { "Content-Length": "0" },
        expect: [201, 202],
        what,
      });
      await started.body.dump();
      if (started.statusCode === 201) return "mounted";
      session = { location: this.requests.location(started, what), offset: 0, resumed: false };
    }
    const withDigest = (url: string): string => `${url}${url.includes("?") ? "&" : "?"}digest=${digest}`;

    if (size <= this.requests.monolithicMaxBytes) {
      // Not retried on the same session: a cut PUT may have left part of the body in it, which a
      // second PUT would append to. pushBlob starts a fresh session instead.
      const response = await this.requests.send({
        method: "PUT",
        path: withDigest(session.location),
        scope,
        headers: { "Content-Type": "application/octet-stream", "Content-Length": String(size) },
        body: () => body(0),
        expect: [201],
        retry: false,
        what,
      });
      await response.body.dump();
      options.onProgress?.({ digest, done: size, total: size });
      return "uploaded";
    }

    const location = await this.sendChunks(descriptor, body, options, session, scope, what);
    try {
      const done = await this.requests.send({
        method: "PUT",
        path: withDigest(location),
        scope,
        headers: { "Content-Length": "0" },
        expect: [201],
        what,
      });
      await done.body.dump();
    } catch (error) {
      // An earlier run's session holding other bytes than ours: refused, and then started afresh.
      if (session.resumed && error instanceof AirlockError && error.code === "REGISTRY_REFUSED") {
        throw new AirlockError("REGISTRY_UPLOAD_LOST", `${what}: the resumed upload was refused`, {
          where: what,
          cause: error,
        });
      }
      throw error;
    }
    return "uploaded";
  }

  /**
   * Streams the blob from the session's offset in one PATCH; after a reset, asks the registry where
   * the session stands and goes on from there. Returns the session's Location for the final PUT.
   */
  private async sendChunks(
    descriptor: Descriptor,
    body: BlobBody,
    options: PushBlobOptions,
    session: Session,
    scope: Scope,
    what: string,
  ): Promise<string> {
    const { digest, size } = descriptor;
    const resumedFrom = session.resumed ? session.offset : undefined;
    let { location, offset } = session;
    const progress = (done: number): void =>
      options.onProgress?.({ digest, done, total: size, location, resumedFrom });
    progress(offset);
    for (let attempt = 0; offset < size; attempt++) {
      let sent = offset;
      const source = body(offset);
      const iterable = !(source instanceof Readable) && Symbol.asyncIterator in source;
      const stream = iterable ? undefined : source instanceof Readable ? source : Readable.from([source]);
      try {
        const response = await this.requests.send({
          method: "PATCH",
          path: location,
          scope,
          headers: {
            "Content-Type": "application/octet-stream",
            "Content-Range": `${offset}-${size - 1}`,
            "Content-Length": String(size - offset),
          },
          body: () =>
            stream === undefined
              ? countingChunks(source as AsyncIterable<Uint8Array>, (n) => progress((sent += n)))
              : counting(stream, (n) => progress((sent += n))),
          expect: [202],
          retry: false,
          what,
        });
        await response.body.dump();
        location = this.requests.location(response, what);
        offset = size;
      } catch (error) {
        if (stream === undefined) await (source as AsyncGenerator<Uint8Array>).return?.(undefined);
        else stream.destroy();
        if (!this.requests.retryable(error) || attempt >= this.requests.retries) throw error;
        await this.requests.backoff(attempt, undefined);
        ({ location, offset } = await this.uploadStatus(location, scope, what));
      }
    }
    return location;
  }
}
