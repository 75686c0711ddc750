import { existsSync } from "node:fs";
import { statfs } from "node:fs/promises";
import { join } from "node:path";
import type { Request, Response, Router } from "express";
import { importBundle, type ArrivingBundle, type ImportResult } from "../bundle/index.js";
import { VENDOR_KEY_FILE } from "../installer/install/index.js";
import { AirlockError, formatBytes, type ErrorCode } from "../registry/oci/index.js";
import { sessionOf } from "./auth.js";
import type { ConsoleContext } from "./context.js";
import type { ConsoleLogger } from "./app.js";
import { httpStatusOf } from "./error-status.js";
import { ArrivalGate } from "./upload-follow.js";
import { appendBody, parseContentRange } from "./upload-receive.js";
import { UploadRecords, type UploadOutcome, type UploadSession } from "./upload-records.js";

/** What `GET /uploads/:id/events` sends, one JSON object per `data:` line. */
export type UploadEvent =
  | { phase: "upload" | "import"; done: number; total: number }
  | { phase: "done" | "failed"; outcome: UploadOutcome };

type Listener = (event: UploadEvent) => void;

/**
 * The import of an upload that runs while its bytes arrive, reading the partial file behind the
 * writes: by the last chunk most of the bundle is verified and stored, instead of all of it being
 * read again after the upload. It holds the store's writer lock meanwhile.
 */
interface Follower {
  gate: ArrivalGate;
  /** Its result; undefined when it failed or gave up: the complete upload is then imported as a file. */
  outcome: Promise<UploadOutcome | undefined>;
  progress: { done: number; total: number };
  /** The last chunk arrived: its progress is now the page's import phase. */
  uploaded: boolean;
}

/** How long a complete upload's import waits for the store's lock (another import, a follower stalling). */
export const LOCK_WAIT_MS = 20_000;

/** Runs `importing`, again while the store's lock is held elsewhere, for up to LOCK_WAIT_MS. */
async function whenUnlocked<T>(importing: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    try {
      return await importing();
    } catch (error) {
      const locked = error instanceof AirlockError && error.code === "STORE_LOCKED";
      if (!locked || Date.now() >= deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

function outcomeOf(result: ImportResult): UploadOutcome {
  const { name, version, digest, imported } = result;
  return { ok: true, name, version, digest, imported, signature: result.signature.status };
}

/** The upload API answers JSON, errors as `{ error: { code, message, hint } }`. */
function api(handler: (request: Request, response: Response) => Promise<void>) {
  return async (request: Request, response: Response): Promise<void> => {
    try {
      await handler(request, response);
    } catch (error) {
      if (!(error instanceof AirlockError) || httpStatusOf(error) === 500) throw error;
      if (response.headersSent) return;
      response.status(httpStatusOf(error)).json({
        error: { code: error.code, message: error.message, hint: error.hint },
      });
    }
  };
}

function parseNewUpload(request: Request): { name: string; size: number } {
  const body = (request.body ?? {}) as Record<string, unknown>;
  const name = typeof body.name === "string" ? body.name.replace(/[\p{Cc}]/gu, "").trim() : "";
  const size = typeof body.size === "string" && /^\d{1,16}$/.test(body.size) ? Number(body.size) : 0;
  if (name === "" || name.length > 255) {
    throw new AirlockError("UI_BAD_PARAMETER", "name the file being uploaded (1–255 characters)");
  }
  if (size <= 0 || !Number.isSafeInteger(size)) {
    throw new AirlockError("UI_BAD_PARAMETER", "give the upload's size in bytes, above 0");
  }
  return { name, size };
}

/**
 * Resumable bundle uploads: offset-based sessions (as the registry's), bytes streamed to disk,
 * then one verified import whose progress and result go out over server-sent events.
 */
export class UploadService {
  readonly records: UploadRecords;
  /** Sessions with a chunk being received or an import running: one at a time each. */
  private readonly busy = new Set<string>();
  private readonly listeners = new Map<string, Set<Listener>>();
  /** At most one follower: it holds the store's writer lock. Other uploads are imported once complete. */
  private follower: { id: string; follower: Follower } | undefined;
  /** Uploads whose follower failed other than by stalling: they are imported once complete. */
  private readonly unfollowed = new Set<string>();

  constructor(
    private readonly context: ConsoleContext,
    private readonly logger: ConsoleLogger | undefined,
  ) {
    this.records = new UploadRecords(context.state.db, context.dataDir, context.clock);
  }

  private publish(id: string, event: UploadEvent): void {
    for (const listener of this.listeners.get(id) ?? []) listener(event);
  }

  private subscribe(id: string, listener: Listener): () => void {
    const set = this.listeners.get(id) ?? new Set();
    set.add(listener);
    this.listeners.set(id, set);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(id);
    };
  }

  async describe(session: UploadSession): Promise<Record<string, unknown>> {
    const offset = session.state === "receiving" ? await this.records.offsetOf(session.id) : session.size;
    return {
      id: session.id,
      name: session.name,
      size: session.size,
      offset,
      state: session.state,
      outcome: session.outcome,
    };
  }

  async currentEvent(session: UploadSession): Promise<UploadEvent> {
    if (session.state === "done" || session.state === "failed") {
      return { phase: session.state, outcome: session.outcome! };
    }
    if (session.state === "importing") return { phase: "import", done: 0, total: session.size };
    return { phase: "upload", done: await this.records.offsetOf(session.id), total: session.size };
  }

  async create(request: Request, response: Response): Promise<void> {
    await this.records.expire(this.busy);
    const { name, size } = parseNewUpload(request);
    await this.checkRoom(size);
    const session = await this.records.create(name, size, sessionOf(response).user.name);
    response
      .status(201)
      .location(`/uploads/${session.id}`)
      .set("Upload-Offset", "0")
      .json(await this.describe(session));
  }

  /** Refuses an upload the data dir's disk cannot hold, before a byte is sent. */
  private async checkRoom(size: number): Promise<void> {
    const disk = await statfs(this.context.dataDir);
    const free = disk.bavail * disk.bsize;
    if (size > free) {
      throw new AirlockError(
        "UI_UPLOAD_DISK_FULL",
        `the upload needs ${formatBytes(size)}, the data dir's disk has ${formatBytes(free)} free`,
        { hint: "free space on that disk (the import needs about as much again), then upload" },
      );
    }
  }

  async status(request: Request, response: Response): Promise<void> {
    const session = this.records.get(String(request.params.id));
    const described = await this.describe(session);
    response.set("Upload-Offset", String(described.offset)).json(described);
  }

  /** One chunk at the server's offset; the last one starts the import. */
  async receive(request: Request, response: Response): Promise<void> {
    const session = this.records.get(String(request.params.id));
    if (session.state !== "receiving") {
      throw new AirlockError("UI_UPLOAD_FINISHED", `upload ${session.id} has all its bytes already`, {
        hint: `GET /uploads/${session.id}/events tells how it ended`,
      });
    }
    if (this.busy.has(session.id)) {
      throw new AirlockError("UI_UPLOAD_BUSY", `upload ${session.id} is receiving another chunk`, {
        hint: "send the chunks one after another",
      });
    }
    const range = parseContentRange(request.get("content-range"), session.size);
    this.busy.add(session.id);
    try {
      const offset = await this.records.offsetOf(session.id);
      if (range.start !== offset) {
        response
          .status(416)
          .set({ "Upload-Offset": String(offset), Range: `bytes=0-${offset - 1}` })
          .json({
            offset,
            error: {
              code: "UI_UPLOAD_OFFSET" satisfies ErrorCode,
              message: `the upload is at byte ${offset}, not ${range.start}`,
            },
          });
        return;
      }
      const follower = await this.follow(session, offset);
      const written = (received: number): void => {
        follower?.gate.advance(offset + received);
        this.publish(session.id, { phase: "upload", done: offset + received, total: session.size });
      };
      await appendBody(request, this.records.pathOf(session.id), range.end - range.start + 1, written);
    } finally {
      this.busy.delete(session.id);
    }
    const offset = await this.records.offsetOf(session.id);
    response.set("Upload-Offset", String(offset));
    if (offset < session.size) {
      response.status(204).end();
      return;
    }
    this.records.setState(session.id, "importing");
    response.status(202).location(`/uploads/${session.id}/events`).end();
    this.startImport(session);
  }

  /** Runs the import unless it runs already (an events request after a restart picks it up again). */
  startImport(session: UploadSession): void {
    if (this.busy.has(session.id)) return;
    this.busy.add(session.id);
    void this.runImport(session).finally(() => this.busy.delete(session.id));
  }

  /**
   * The import following this upload, started with its first chunk (again after it stalled), unless
   * another upload's runs and is not idle.
   */
  private async follow(session: UploadSession, written: number): Promise<Follower | undefined> {
    const current = this.follower;
    if (current?.id === session.id) return current.follower;
    if (this.unfollowed.has(session.id)) return undefined;
    if (current !== undefined) {
      // An upload left waiting gives way (and the lock) to one whose bytes are arriving.
      if (current.follower.uploaded || !current.follower.gate.idle()) return undefined;
      current.follower.gate.giveWay();
      await current.follower.outcome;
      if (this.follower !== undefined) return undefined;
    }
    const gate = new ArrivalGate(written);
    const follower: Follower = {
      gate,
      progress: { done: 0, total: session.size },
      uploaded: false,
      outcome: Promise.resolve(undefined),
    };
    const slot = { id: session.id, follower };
    const arriving: ArrivingBundle = { size: session.size, ready: (end) => gate.ready(end) };
    follower.outcome = this.importUpload(session, arriving, (done, total) => {
      follower.progress = { done, total };
      if (follower.uploaded) this.publish(session.id, { phase: "import", done, total });
    }).then(outcomeOf, (error: unknown) => {
      // Stalled: the next chunk starts another, which finds the blobs this one stored. Any other
      // failure (a damaged bundle, the lock held elsewhere) is left to the complete file's import.
      if (!(error instanceof AirlockError && error.code === "UI_UPLOAD_STALLED"))
        this.unfollowed.add(session.id);
      if (this.follower === slot && !follower.uploaded) this.follower = undefined;
      return undefined;
    });
    this.follower = slot;
    return follower;
  }

  private importUpload(
    session: UploadSession,
    arriving: ArrivingBundle | undefined,
    onProgress: (done: number, total: number) => void,
  ): Promise<ImportResult> {
    const keyPath = join(this.context.dataDir, VENDOR_KEY_FILE);
    return importBundle(this.context.store, [this.records.pathOf(session.id)], {
      publicKey: existsSync(keyPath) ? keyPath : undefined,
      arriving,
      onProgress: (progress) => onProgress(progress.done, progress.total ?? session.size),
    });
  }

  /**
   * The follower's outcome when it succeeded, else the import of the complete file, once the follower
   * of another upload ended (or stalled) and the store's lock is free.
   */
  private async importOutcome(session: UploadSession): Promise<UploadOutcome> {
    const running = this.follower;
    if (running?.id === session.id) {
      const { follower } = running;
      follower.uploaded = true;
      this.publish(session.id, { phase: "import", ...follower.progress });
      const followed = await follower.outcome;
      if (this.follower === running) this.follower = undefined;
      if (followed !== undefined) return followed;
    } else if (running !== undefined) {
      await running.follower.outcome;
    }
    try {
      const result = await whenUnlocked(() =>
        this.importUpload(session, undefined, (done, total) =>
          this.publish(session.id, { phase: "import", done, total }),
        ),
      );
      return outcomeOf(result);
    } catch (error) {
      if (!(error instanceof AirlockError)) {
        this.logger?.error({ err: error, upload: session.id }, "console upload import failed");
      }
      return error instanceof AirlockError
        ? { ok: false, code: error.code, message: error.message, hint: error.hint }
        : {
            ok: false,
            code: "UI_IMPORT_FAILED",
            message: "the import failed; the console's log has the detail",
          };
    }
  }

  private async runImport(session: UploadSession): Promise<void> {
    const outcome = await this.importOutcome(session);
    this.unfollowed.delete(session.id);
    await this.records.removeBytes(session.id);
    this.records.setState(session.id, outcome.ok ? "done" : "failed", outcome);
    this.context.state.events.append({
      actor: session.createdBy,
      action: "bundle.import",
      object: outcome.ok ? `bundle/${outcome.name}/${outcome.version}` : `upload/${session.id}`,
      outcome: outcome.ok ? "ok" : "failed",
      detail: { upload: session.id, file: session.name, ...(outcome.ok ? {} : { code: outcome.code }) },
    });
    this.publish(session.id, { phase: outcome.ok ? "done" : "failed", outcome });
  }

  /** Server-sent events: the current state at once, then every change, closed after the outcome. */
  async events(request: Request, response: Response): Promise<void> {
    const session = this.records.get(String(request.params.id));
    response.status(200).set({ "Content-Type": "text/event-stream", "X-Accel-Buffering": "no" });
    response.flushHeaders();
    let ended = false;
    const send = (event: UploadEvent): void => {
      if (ended) return;
      response.write(`data: ${JSON.stringify(event)}\n\n`);
      if (event.phase === "done" || event.phase === "failed") {
        ended = true;
        response.end();
      }
    };
    // Subscribed before the state is read, so nothing between the two is missed.
    const unsubscribe = this.subscribe(session.id, send);
    const keepAlive = setInterval(() => response.write(": keep-alive\n\n"), 15_000);
    response.on("close", () => {
      ended = true;
      clearInterval(keepAlive);
      unsubscribe();
    });
    const current = this.records.get(session.id);
    send(await this.currentEvent(current));
    if (current.state === "importing") this.startImport(current);
  }
}

export function uploadRoutes(router: Router, uploads: UploadService): void {
  router.post(
    "/uploads",
    api((rq, rs) => uploads.create(rq, rs)),
  );
  router.get(
    "/uploads/:id",
    api((rq, rs) => uploads.status(rq, rs)),
  );
  router.patch(
    "/uploads/:id",
    api((rq, rs) => uploads.receive(rq, rs)),
  );
  router.get(
    "/uploads/:id/events",
    api((rq, rs) => uploads.events(rq, rs)),
  );
}
