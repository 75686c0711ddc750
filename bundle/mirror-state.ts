import { open, readFile, rename, rm } from "node:fs/promises";
import { AirlockError, errnoCode, isDigest, type Digest } from "../registry/oci/index.js";
import type { UploadCheckpoint } from "../registry/client/index.js";
import type { UploadJournal } from "./mirror.js";

/** One upload in flight, as the state file keeps it. */
export interface InFlightUpload extends UploadCheckpoint {
  digest: Digest;
  repository: string;
}

interface StateDocument {
  version: 1;
  /** The target registry (`host[:port]`): a state file of another target is not used. */
  target: string;
  uploads: InFlightUpload[];
}

/** An upload's entry is written again once it has moved this far: every few 1 MiB chunks, not each. */
const CHECKPOINT_BYTES = 8 * 1024 * 1024;

const keyOf = (repository: string, digest: Digest): string => `${repository}@${digest}`;

function parseState(text: string, target: string): InFlightUpload[] {
  let doc: Partial<StateDocument>;
  try {
    doc = JSON.parse(text) as Partial<StateDocument>;
  } catch {
    return [];
  }
  if (doc.version !== 1 || doc.target !== target || !Array.isArray(doc.uploads)) return [];
  return doc.uploads.filter(
    (upload) =>
      isDigest(upload.digest) &&
      typeof upload.repository === "string" &&
      typeof upload.location === "string" &&
      Number.isSafeInteger(upload.offset) &&
      upload.offset >= 0,
  );
}

/**
 * The mirror's upload sessions in a small JSON file beside its output (`mirror-state.json`), so that
 * a run killed midway resumes its half-sent blobs. Each write goes to a temp file, is fsynced and
 * renamed over the old one, so a kill leaves the old state or the new, never a torn one; writes run
 * one at a time, and an entry is rewritten only every few MiB of progress. A file that cannot be read
 * (another target, damaged) counts as empty: resuming is an optimisation, a fresh upload is always right.
 */
export class MirrorStateFile implements UploadJournal {
  private readonly uploads = new Map<string, InFlightUpload>();
  /** Offsets as last written, per entry. */
  private readonly written = new Map<string, number>();
  private writing: Promise<void> = Promise.resolve();
  private pending = false;
  private failure: unknown;

  private constructor(
    readonly path: string,
    readonly target: string,
  ) {}

  /** The state a previous run against `target` left in `path`, if any. */
  static async open(path: string, target: string): Promise<MirrorStateFile> {
    const state = new MirrorStateFile(path, target);
    const text = await readFile(path, "utf8").catch((error: unknown) => {
      if (errnoCode(error) === "ENOENT") return "";
      throw error;
    });
    for (const upload of parseState(text, target)) {
      const key = keyOf(upload.repository, upload.digest);
      state.uploads.set(key, upload);
      state.written.set(key, upload.offset);
    }
    return state;
  }

  /** What the file held when opened, and what this run recorded since. */
  list(): InFlightUpload[] {
    return [...this.uploads.values()];
  }

  find(repository: string, digest: Digest): UploadCheckpoint | undefined {
    const upload = this.uploads.get(keyOf(repository, digest));
    return upload === undefined ? undefined : { location: upload.location, offset: upload.offset };
  }

  record(repository: string, digest: Digest, checkpoint: UploadCheckpoint): void {
    const key = keyOf(repository, digest);
    const previous = this.uploads.get(key);
    this.uploads.set(key, { digest, repository, ...checkpoint });
    const written = this.written.get(key);
    const moved =
      previous === undefined ||
      previous.location !== checkpoint.location ||
      written === undefined ||
      checkpoint.offset - written >= CHECKPOINT_BYTES;
    if (moved) this.schedule();
  }

  forget(repository: string, digest: Digest): void {
    const key = keyOf(repository, digest);
    if (!this.uploads.delete(key)) return;
    this.written.delete(key);
    this.schedule();
  }

  /** Drops every entry, an earlier run's included: for a run that completed, whose state is none. */
  clear(): void {
    this.uploads.clear();
    this.written.clear();
    this.schedule();
  }

  /** Resolves once the writes started so far are done (they run in the background). */
  async saved(): Promise<void> {
    await this.writing;
  }

  /**
   * Writes what is still in flight, or removes the file when nothing is (the run completed). Throws
   * when that last write fails.
   */
  async close(): Promise<void> {
    await this.writing;
    this.pending = false;
    this.failure = undefined;
    await this.save();
    if (this.failure !== undefined) {
      throw new AirlockError("MIRROR_STATE_WRITE_FAILED", `cannot write ${this.path}`, {
        where: this.path,
        hint: "check that --output-dir is writable; without it a killed mirror sends its uploads again",
        cause: this.failure,
      });
    }
  }

  /** One write at a time; a change made while one runs is written by one more after it. */
  private schedule(): void {
    if (this.pending) return;
    this.pending = true;
    this.writing = this.writing.then(() => {
      this.pending = false;
      return this.save();
    });
  }

  private async save(): Promise<void> {
    const uploads = this.list();
    try {
      if (uploads.length === 0) {
        await rm(this.path, { force: true });
      } else {
        const doc: StateDocument = { version: 1, target: this.target, uploads };
        const temp = `${this.path}.${process.pid}.tmp`;
        const handle = await open(temp, "w", 0o600);
        try {
          await handle.writeFile(`${JSON.stringify(doc, null, 2)}\n`);
          await handle.datasync();
        } finally {
          await handle.close();
        }
        await rename(temp, this.path);
      }
      for (const upload of uploads) this.written.set(keyOf(upload.repository, upload.digest), upload.offset);
    } catch (error) {
      // Resuming is an optimisation: a failed checkpoint costs a fresh upload after a kill, no more.
      this.failure = error;
    }
  }
}
