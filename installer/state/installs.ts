import { AirlockError } from "../../registry/oci/index.js";
import type { StateDb } from "./db.js";
import type { EventLog } from "./events.js";

export type InstallState = "running" | "done" | "failed";
export type StepState = "pending" | "running" | "done" | "failed";

export interface Install {
  id: number;
  bundleDigest: string;
  bundleName: string;
  version: string;
  state: InstallState;
  startedAt: string;
  endedAt: string | undefined;
}

export interface InstallStep {
  installId: number;
  name: string;
  position: number;
  state: StepState;
  startedAt: string | undefined;
  endedAt: string | undefined;
  errorCode: string | undefined;
  errorMessage: string | undefined;
  /** What the step recorded for a re-run to re-check cheaply (digests, paths, the cluster kind). */
  detail: Record<string, unknown>;
}

export interface NewInstall {
  bundleDigest: string;
  bundleName: string;
  version: string;
  /** The step names, in the order they run. */
  steps: string[];
}

interface InstallRow {
  id: number;
  bundle_digest: string;
  bundle_name: string;
  version: string;
  state: InstallState;
  started_at: string;
  ended_at: string | null;
}

interface StepRow {
  install_id: number;
  name: string;
  position: number;
  state: StepState;
  started_at: string | null;
  ended_at: string | null;
  error_code: string | null;
  error_message: string | null;
  detail: string;
}

function toInstall(row: InstallRow): Install {
  return {
    id: row.id,
    bundleDigest: row.bundle_digest,
    bundleName: row.bundle_name,
    version: row.version,
    state: row.state,
    startedAt: row.started_at,
    endedAt: row.ended_at ?? undefined,
  };
}

function toStep(row: StepRow): InstallStep {
  return {
    installId: row.install_id,
    name: row.name,
    position: row.position,
    state: row.state,
    startedAt: row.started_at ?? undefined,
    endedAt: row.ended_at ?? undefined,
    errorCode: row.error_code ?? undefined,
    errorMessage: row.error_message ?? undefined,
    detail: JSON.parse(row.detail) as Record<string, unknown>,
  };
}

function notFound(what: string): AirlockError {
  return new AirlockError("STATE_NOT_FOUND", `no ${what} in the state database`, {
    hint: "this is a bug in the caller: it named an install or step that was never recorded",
  });
}

/** Installs and their steps. Every change is one transaction together with its event. */
export class InstallRecords {
  constructor(
    private readonly db: StateDb,
    private readonly events: EventLog,
    private readonly clock: () => Date,
  ) {}

  start(install: NewInstall): Install {
    return this.db.transaction(() => {
      const now = this.clock().toISOString();
      const { lastInsertRowid } = this.db
        .prepare(
          "INSERT INTO installs (bundle_digest, bundle_name, version, state, started_at) VALUES (?, ?, ?, 'running', ?)",
        )
        .run(install.bundleDigest, install.bundleName, install.version, now);
      const id = Number(lastInsertRowid);
      const insertStep = this.db.prepare(
        "INSERT INTO install_steps (install_id, name, position, state) VALUES (?, ?, ?, 'pending')",
      );
      install.steps.forEach((name, position) => insertStep.run(id, name, position));
      this.events.append({
        action: "install.start",
        object: `install/${id}`,
        outcome: "started",
        detail: { bundle: install.bundleName, version: install.version, digest: install.bundleDigest },
      });
      return this.get(id);
    })();
  }

  get(id: number): Install {
    const row = this.db.prepare("SELECT * FROM installs WHERE id = ?").get(id) as InstallRow | undefined;
    if (row === undefined) throw notFound(`install ${id}`);
    return toInstall(row);
  }

  /** The most recent install, finished or not: what a re-run resumes. */
  latest(): Install | undefined {
    const row = this.db.prepare("SELECT * FROM installs ORDER BY id DESC LIMIT 1").get() as
      InstallRow | undefined;
    return row === undefined ? undefined : toInstall(row);
  }

  list(): Install[] {
    return (this.db.prepare("SELECT * FROM installs ORDER BY id").all() as InstallRow[]).map(toInstall);
  }

  finish(id: number, state: Exclude<InstallState, "running">): Install {
    return this.db.transaction(() => {
      const { changes } = this.db
        .prepare("UPDATE installs SET state = ?, ended_at = ? WHERE id = ?")
        .run(state, this.clock().toISOString(), id);
      if (changes === 0) throw notFound(`install ${id}`);
      this.events.append({
        action: "install.finish",
        object: `install/${id}`,
        outcome: state === "done" ? "ok" : "failed",
      });
      return this.get(id);
    })();
  }

  steps(installId: number): InstallStep[] {
    const rows = this.db
      .prepare("SELECT * FROM install_steps WHERE install_id = ? ORDER BY position")
      .all(installId) as StepRow[];
    return rows.map(toStep);
  }

  step(installId: number, name: string): InstallStep {
    const row = this.db
      .prepare("SELECT * FROM install_steps WHERE install_id = ? AND name = ?")
      .get(installId, name) as StepRow | undefined;
    if (row === undefined) throw notFound(`step ${name} of install ${installId}`);
    return toStep(row);
  }

  /** Marks a step running (again, on a re-run: its earlier error is cleared). The install runs again too. */
  startStep(installId: number, name: string): InstallStep {
    return this.changeStep(installId, name, "started", () => {
      this.db
        .prepare(
          `UPDATE install_steps SET state = 'running', started_at = ?, ended_at = NULL, error_code = NULL,
             error_message = NULL WHERE install_id = ? AND name = ?`,
        )
        .run(this.clock().toISOString(), installId, name);
      this.db.prepare("UPDATE installs SET state = 'running', ended_at = NULL WHERE id = ?").run(installId);
    });
  }

  finishStep(installId: number, name: string, detail: Record<string, unknown> = {}): InstallStep {
    return this.changeStep(installId, name, "ok", () => {
      this.db
        .prepare(
          "UPDATE install_steps SET state = 'done', ended_at = ?, detail = ? WHERE install_id = ? AND name = ?",
        )
        .run(this.clock().toISOString(), JSON.stringify(detail), installId, name);
    });
  }

  /** Records why a step failed; the install is failed with it, and a re-run starts the step again. */
  failStep(installId: number, name: string, error: { code: string; message: string }): InstallStep {
    return this.changeStep(installId, name, "failed", () => {
      const now = this.clock().toISOString();
      this.db
        .prepare(
          `UPDATE install_steps SET state = 'failed', ended_at = ?, error_code = ?, error_message = ?
             WHERE install_id = ? AND name = ?`,
        )
        .run(now, error.code, error.message, installId, name);
      this.db.prepare("UPDATE installs SET state = 'failed', ended_at = ? WHERE id = ?").run(now, installId);
    });
  }

  private changeStep(
    installId: number,
    name: string,
    outcome: "started" | "ok" | "failed",
    change: () => void,
  ): InstallStep {
    return this.db.transaction(() => {
      this.step(installId, name);
      change();
      const step = this.step(installId, name);
      this.events.append({
        action: "install.step",
        object: `install/${installId}/step/${name}`,
        outcome,
        detail:
          outcome === "failed" ? { code: step.errorCode, message: step.errorMessage } : { state: step.state },
      });
      return step;
    })();
  }
}
