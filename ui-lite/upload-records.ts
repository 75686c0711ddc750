import { randomBytes } from "node:crypto";
import { mkdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import type { StateDb } from "../installer/state/index.js";
import { AirlockError, type ErrorCode } from "../registry/oci/index.js";
import { migrateUi } from "./schema.js";

export type UploadState = "receiving" | "importing" | "done" | "failed";

/** What the last event of an upload says: the import's result, or why it was refused. */
export type UploadOutcome =
  | { ok: true; name: string; version: string; digest: string; imported: boolean; signature: string }
  | { ok: false; code: ErrorCode; message: string; hint?: string };

export interface UploadSession {
  id: string;
  /** The client's file name, for display only: it never reaches a path. */
  name: string;
  size: number;
  createdBy: string;
  createdAt: string;
  state: UploadState;
  outcome: UploadOutcome | undefined;
}

interface UploadRow {
  id: string;
  name: string;
  size: number;
  created_by: string;
  created_at: string;
  state: UploadState;
  outcome: string | null;
}

/** Sessions older than this are removed with their bytes, finished or not. */
export const UPLOAD_TTL_MS = 24 * 60 * 60 * 1000;
export const UPLOAD_DIR = "console-uploads";
const ID_PATTERN = /^[a-f0-9]{32}$/;

function fromRow(row: UploadRow): UploadSession {
  return {
    id: row.id,
    name: row.name,
    size: row.size,
    createdBy: row.created_by,
    createdAt: row.created_at,
    state: row.state,
    outcome: row.outcome === null ? undefined : (JSON.parse(row.outcome) as UploadOutcome),
  };
}

/**
 * Upload sessions in `airlock.db` (so a restart keeps them) and their bytes in
 * `<dataDir>/console-uploads/<id>.partial`. The file's length is the session's offset.
 */
export class UploadRecords {
  readonly dir: string;

  constructor(
    private readonly db: StateDb,
    dataDir: string,
    private readonly clock: () => Date,
  ) {
    migrateUi(db);
    this.dir = join(dataDir, UPLOAD_DIR);
  }

  pathOf(id: string): string {
    return join(this.dir, `${id}.partial`);
  }

  async create(name: string, size: number, createdBy: string): Promise<UploadSession> {
    await mkdir(this.dir, { recursive: true });
    const id = randomBytes(16).toString("hex");
    const createdAt = this.clock().toISOString();
    this.db
      .prepare(
        "INSERT INTO ui_uploads (id, name, size, created_by, created_at, state) VALUES (?, ?, ?, ?, ?, 'receiving')",
      )
      .run(id, name, size, createdBy, createdAt);
    return { id, name, size, createdBy, createdAt, state: "receiving", outcome: undefined };
  }

  /** The session, or UI_NOT_FOUND: ids that are not ours never reach the disk. */
  get(id: string): UploadSession {
    const row = ID_PATTERN.test(id)
      ? (this.db.prepare("SELECT * FROM ui_uploads WHERE id = ?").get(id) as UploadRow | undefined)
      : undefined;
    if (row === undefined) {
      throw new AirlockError("UI_NOT_FOUND", `there is no upload ${JSON.stringify(id)}`, {
        hint: "uploads are removed a day after they start: start a new one",
      });
    }
    return fromRow(row);
  }

  /** Bytes received so far. */
  async offsetOf(id: string): Promise<number> {
    const info = await stat(this.pathOf(id)).catch(() => undefined);
    return info?.size ?? 0;
  }

  setState(id: string, state: UploadState, outcome?: UploadOutcome): void {
    this.db
      .prepare("UPDATE ui_uploads SET state = ?, outcome = ? WHERE id = ?")
      .run(state, outcome === undefined ? null : JSON.stringify(outcome), id);
  }

  async removeBytes(id: string): Promise<void> {
    await rm(this.pathOf(id), { force: true });
  }

  /** Drops sessions older than a day, with their bytes; `busy` ones (a request in flight) stay. */
  async expire(busy: ReadonlySet<string>): Promise<void> {
    const cutoff = new Date(this.clock().getTime() - UPLOAD_TTL_MS).toISOString();
    const old = this.db.prepare("SELECT id FROM ui_uploads WHERE created_at < ?").all(cutoff) as {
      id: string;
    }[];
    for (const { id } of old) {
      if (busy.has(id)) continue;
      await this.removeBytes(id);
      this.db.prepare("DELETE FROM ui_uploads WHERE id = ?").run(id);
    }
  }
}
