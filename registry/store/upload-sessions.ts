import { randomBytes } from "node:crypto";
import { readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { errnoCode } from "../oci/index.js";
import type { FsBlobStore } from "./blobs.js";
import type { Db } from "./db.js";
import type { UploadSession } from "./types.js";

/** Registry upload sessions: a file under `store/uploads/` and a row each, both outliving the server. */
export class UploadSessions {
  constructor(
    private readonly db: Db,
    private readonly blobs: FsBlobStore,
    private readonly uploadsDir: string,
    private readonly staleUploadMs: number,
  ) {}

  async start(repository: string): Promise<UploadSession> {
    const id = randomBytes(16).toString("hex");
    const ingest = await this.blobs.namedIngest(join(this.uploadsDir, id), "create");
    this.db
      .prepare("INSERT INTO uploads (id, repository, started_at) VALUES (?, ?, ?)")
      .run(id, repository, new Date().toISOString());
    return { id, repository, ingest };
  }

  /** Reopens an upload session another server process (or an earlier run) started; undefined if none. */
  async resume(id: string): Promise<UploadSession | undefined> {
    const row = this.db.prepare("SELECT repository FROM uploads WHERE id = ?").get(id) as
      { repository: string } | undefined;
    if (row === undefined) return undefined;
    try {
      return {
        id,
        repository: row.repository,
        ingest: await this.blobs.namedIngest(join(this.uploadsDir, id), "resume"),
      };
    } catch (error) {
      if (errnoCode(error) !== "ENOENT") throw error;
      this.end(id);
      return undefined;
    }
  }

  /** Forgets an upload session; its file is the ingest's to commit or abort. */
  end(id: string): void {
    this.db.prepare("DELETE FROM uploads WHERE id = ?").run(id);
  }

  /** Upload sessions untouched for `staleUploadMs`, and files whose row is gone. */
  async removeStale(dryRun: boolean): Promise<number> {
    const known = new Set(
      (this.db.prepare("SELECT id FROM uploads").all() as { id: string }[]).map((row) => row.id),
    );
    let removed = 0;
    for (const name of await readdir(this.uploadsDir).catch(() => [] as string[])) {
      const file = await stat(join(this.uploadsDir, name)).catch(() => undefined);
      if (file === undefined || (known.has(name) && Date.now() - file.mtimeMs < this.staleUploadMs)) continue;
      removed++;
      if (dryRun) continue;
      this.end(name);
      await rm(join(this.uploadsDir, name), { force: true });
    }
    return removed;
  }
}
