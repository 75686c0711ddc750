import type { IncomingMessage } from "node:http";
import { isDigest, type Digest } from "../oci/index.js";
import { giveBack, takeBuffer, type Store, type UploadSession } from "../store/index.js";
import { commitFailure, RegistryError } from "./errors.js";

/** An open session and the tail of its queue: requests on one upload run one at a time. */
interface OpenUpload {
  session: UploadSession;
  queue: Promise<unknown>;
}

const UPLOAD_ID = /^[a-f0-9]{32}$/;
const WRITE_BATCH_BYTES = 1024 * 1024;

/** A chunk whose Content-Range does not start where the upload stands: the spec's 416. */
export class ChunkOutOfOrder extends Error {
  constructor(readonly offset: number) {
    super(`chunk out of order: the upload is at ${offset}`);
    this.name = "ChunkOutOfOrder";
  }
}

/**
 * Blob upload sessions: each a file under the store's `uploads/` and a row, hashed as it grows, made
 * visible only by a final PUT whose digest matches. Sessions outlive the server: after a restart the
 * first request on one reopens it (re-hashing what it holds) and the client goes on where it stood.
 * Abandoned ones are collected by gc.
 */
export class Uploads {
  private readonly open = new Map<string, Promise<OpenUpload | undefined>>();

  constructor(private readonly store: Store) {}

  async start(repository: string): Promise<string> {
    const session = await this.store.startUpload(repository);
    this.open.set(session.id, Promise.resolve({ session, queue: Promise.resolve() }));
    return session.id;
  }

  /** The open session, reopened from the store after a restart. */
  private async session(
    repository: string,
    id: string,
  ): Promise<{ upload: OpenUpload; opening: Promise<OpenUpload | undefined> }> {
    let opening = this.open.get(id);
    if (opening === undefined && UPLOAD_ID.test(id)) {
      opening = this.store
        .resumeUpload(id)
        .then((session) => (session === undefined ? undefined : { session, queue: Promise.resolve() }));
      this.open.set(id, opening);
      void opening.then((upload) => upload ?? this.open.delete(id)).catch(() => this.open.delete(id));
    }
    const upload = await opening;
    if (opening === undefined || upload === undefined || upload.session.repository !== repository) {
      throw new RegistryError("BLOB_UPLOAD_UNKNOWN", `upload ${id.slice(0, 64)} is unknown`);
    }
    return { upload, opening };
  }

  /** Runs `action` on the session once the requests before it on the same upload are done. */
  private async withSession<T>(
    repository: string,
    id: string,
    action: (session: UploadSession) => Promise<T>,
  ): Promise<T> {
    const { upload, opening } = await this.session(repository, id);
    const run = upload.queue.then(() => {
      if (this.open.get(id) !== opening) {
        throw new RegistryError("BLOB_UPLOAD_UNKNOWN", `upload ${id.slice(0, 64)} has ended`);
      }
      return action(upload.session);
    });
    upload.queue = run.catch(() => undefined);
    return run;
  }

  /** Bytes the upload holds now, without waiting for a chunk in flight. */
  async offset(repository: string, id: string): Promise<number> {
    return (await this.session(repository, id)).upload.session.ingest.size;
  }

  /**
   * Appends a request body; `start`, from Content-Range, must be where the upload stands (else the
   * spec's 416, with the offset). A failed write drops the open session, so the next request reopens
   * it from what the file really holds.
   */
  append(repository: string, id: string, body: IncomingMessage, start?: number): Promise<number> {
    return this.withSession(repository, id, (session) => this.appendTo(session, body, start));
  }

  private async appendTo(session: UploadSession, body: IncomingMessage, start?: number): Promise<number> {
    const { ingest } = session;
    if (start !== undefined && start !== ingest.size) throw new ChunkOutOfOrder(ingest.size);
    // Socket reads are 16-64 KiB: gathered into 1 MiB writes, a GiB costs a thousand writes, not 25 000.
    const batch = takeBuffer(WRITE_BATCH_BYTES);
    let filled = 0;
    let diskFailed = false;
    const flush = async (): Promise<void> => {
      if (filled === 0) return;
      diskFailed = true;
      await ingest.write(batch.subarray(0, filled));
      diskFailed = false;
      filled = 0;
    };
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        for (let offset = 0; offset < chunk.byteLength;) {
          const taken = chunk.copy(batch, filled, offset);
          filled += taken;
          offset += taken;
          if (filled === batch.byteLength) await flush();
        }
      }
      await flush();
    } catch (error) {
      // A client that went away keeps what it sent: it resumes from the offset the status reports.
      if (!diskFailed) await flush().catch(() => undefined);
      this.open.delete(session.id);
      await ingest.suspend().catch(() => undefined);
      throw error;
    } finally {
      giveBack(batch);
    }
    return ingest.size;
  }

  /**
   * Completes an upload with its last chunk (`start` as for append: out of order, the session stays):
   * the content must hash to `digest` (sha256 or sha512), or nothing becomes visible. The blob then
   * belongs to the repository.
   */
  finish(
    repository: string,
    id: string,
    digest: string | null,
    body: IncomingMessage,
    start?: number,
  ): Promise<Digest> {
    if (digest === null || !isDigest(digest)) {
      body.resume();
      return Promise.reject(
        new RegistryError("DIGEST_INVALID", "the final PUT needs ?digest=<algorithm>:<hex>"),
      );
    }
    return this.withSession(repository, id, async (session) => {
      await this.appendTo(session, body, start);
      this.forget(session);
      try {
        await session.ingest.commit({ digest });
      } catch (error) {
        throw commitFailure(error, digest);
      }
      this.store.linkBlob(repository, digest);
      return digest;
    });
  }

  cancel(repository: string, id: string): Promise<void> {
    return this.withSession(repository, id, async (session) => {
      this.forget(session);
      await session.ingest.abort();
    });
  }

  private forget(session: UploadSession): void {
    this.open.delete(session.id);
    this.store.endUpload(session.id);
  }

  /** Closes every open session's file, keeping it and its row for a later server to resume. */
  async suspendAll(): Promise<void> {
    const uploads = [...this.open.values()];
    this.open.clear();
    for (const opening of uploads) {
      const upload = await opening.catch(() => undefined);
      if (upload === undefined) continue;
      await upload.queue;
      await upload.session.ingest.suspend();
    }
  }
}
