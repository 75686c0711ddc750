import { AirlockError } from "../../registry/oci/index.js";
import type { StateDb } from "./db.js";
import type { EventLog } from "./events.js";

/**
 * pending: rendered, being applied; deployed: what runs (the current one); superseded: replaced by a
 * later deployed release; failed: never became healthy; rolled-back: undone in favour of an earlier one.
 */
export type ReleaseStatus = "pending" | "deployed" | "superseded" | "failed" | "rolled-back";

export interface Release {
  id: number;
  installId: number | undefined;
  upgradeId: number | undefined;
  bundleDigest: string;
  bundleName: string;
  version: string;
  /** The operator's values, as given: what an upgrade carries over. */
  valuesGiven: Record<string, unknown>;
  /** The bundle's defaults merged with the operator's: what was rendered. */
  valuesEffective: Record<string, unknown>;
  /** The rendered objects applied, in apply order: what an upgrade diffs against and a rollback re-applies. */
  objects: unknown[];
  status: ReleaseStatus;
  current: boolean;
  createdAt: string;
  updatedAt: string;
}

export type NewRelease = Pick<
  Release,
  "bundleDigest" | "bundleName" | "version" | "valuesGiven" | "valuesEffective" | "objects"
> & { installId?: number; upgradeId?: number };

interface ReleaseRow {
  id: number;
  install_id: number | null;
  upgrade_id: number | null;
  bundle_digest: string;
  bundle_name: string;
  version: string;
  values_given: string;
  values_effective: string;
  objects: string;
  status: ReleaseStatus;
  is_current: number;
  created_at: string;
  updated_at: string;
}

function toRelease(row: ReleaseRow): Release {
  return {
    id: row.id,
    installId: row.install_id ?? undefined,
    upgradeId: row.upgrade_id ?? undefined,
    bundleDigest: row.bundle_digest,
    bundleName: row.bundle_name,
    version: row.version,
    valuesGiven: JSON.parse(row.values_given) as Record<string, unknown>,
    valuesEffective: JSON.parse(row.values_effective) as Record<string, unknown>,
    objects: JSON.parse(row.objects) as unknown[],
    status: row.status,
    current: row.is_current === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Releases: at most one current (a unique partial index holds it), each change one transaction. */
export class ReleaseRecords {
  constructor(
    private readonly db: StateDb,
    private readonly events: EventLog,
    private readonly clock: () => Date,
  ) {}

  /** Records a rendered release as pending: it becomes current only through `deploy`. */
  record(release: NewRelease): Release {
    return this.db.transaction(() => {
      const now = this.clock().toISOString();
      const { lastInsertRowid } = this.db
        .prepare(
          `INSERT INTO releases (install_id, upgrade_id, bundle_digest, bundle_name, version, values_given,
             values_effective, objects, status, is_current, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)`,
        )
        .run(
          release.installId ?? null,
          release.upgradeId ?? null,
          release.bundleDigest,
          release.bundleName,
          release.version,
          JSON.stringify(release.valuesGiven),
          JSON.stringify(release.valuesEffective),
          JSON.stringify(release.objects),
          now,
          now,
        );
      const id = Number(lastInsertRowid);
      this.events.append({
        action: "release.record",
        object: `release/${id}`,
        outcome: "ok",
        detail: { bundle: release.bundleName, version: release.version, objects: release.objects.length },
      });
      return this.get(id);
    })();
  }

  get(id: number): Release {
    const row = this.db.prepare("SELECT * FROM releases WHERE id = ?").get(id) as ReleaseRow | undefined;
    if (row === undefined) {
      throw new AirlockError("STATE_NOT_FOUND", `no release ${id} in the state database`, {
        hint: "list the releases with `airlock status`",
      });
    }
    return toRelease(row);
  }

  current(): Release | undefined {
    const row = this.db.prepare("SELECT * FROM releases WHERE is_current = 1").get() as
      ReleaseRow | undefined;
    return row === undefined ? undefined : toRelease(row);
  }

  /** Newest first. */
  list(): Release[] {
    return (this.db.prepare("SELECT * FROM releases ORDER BY id DESC").all() as ReleaseRow[]).map(toRelease);
  }

  /**
   * Makes a release the deployed, current one; the previous current is superseded (or, with
   * `rollback`, the release being left is marked rolled-back). One transaction: there is never a
   * moment with two current releases, or none after a deploy.
   */
  deploy(id: number, options: { rollback?: boolean } = {}): Release {
    return this.db.transaction(() => {
      const now = this.clock().toISOString();
      const previous = this.current();
      this.get(id);
      if (previous !== undefined && previous.id !== id) {
        this.db
          .prepare("UPDATE releases SET status = ?, is_current = 0, updated_at = ? WHERE id = ?")
          .run(options.rollback === true ? "rolled-back" : "superseded", now, previous.id);
      }
      this.db
        .prepare("UPDATE releases SET status = 'deployed', is_current = 1, updated_at = ? WHERE id = ?")
        .run(now, id);
      this.events.append({
        action: options.rollback === true ? "release.rollback" : "release.deploy",
        object: `release/${id}`,
        outcome: "ok",
        detail: previous === undefined || previous.id === id ? {} : { previous: previous.id },
      });
      return this.get(id);
    })();
  }

  /** Marks a release that never became current as failed. */
  fail(id: number, reason: string): Release {
    return this.db.transaction(() => {
      const release = this.get(id);
      if (release.current) {
        throw new AirlockError("STATE_CONFLICT", `release ${id} is the current release`, {
          hint: "roll back to an earlier release instead (deploy it with rollback)",
        });
      }
      this.db
        .prepare("UPDATE releases SET status = 'failed', updated_at = ? WHERE id = ?")
        .run(this.clock().toISOString(), id);
      this.events.append({
        action: "release.fail",
        object: `release/${id}`,
        outcome: "failed",
        detail: { reason },
      });
      return this.get(id);
    })();
  }
}
