import { AirlockError } from "../../registry/oci/index.js";
import type { StateDb } from "./db.js";
import type { EventLog } from "./events.js";

/**
 * planned: computed, not scheduled; scheduled: a schedule waits for a window; running: a run is on;
 * done / rolled-back: its run ended so; cancelled: the operator dropped it; stale: its inputs changed.
 */
export type PlanStatus = "planned" | "scheduled" | "running" | "done" | "rolled-back" | "cancelled" | "stale";

export interface UpgradePlanRecord {
  id: number;
  createdAt: string;
  updatedAt: string;
  fromReleaseId: number;
  fromVersion: string;
  toBundleDigest: string;
  toVersion: string;
  /** The operator's values the new release is rendered with (carried over, plus any given now). */
  valuesGiven: Record<string, unknown>;
  /** The plan as computed: what `upgrade plan --json` prints and the run follows. */
  plan: Record<string, unknown>;
  /** The digest of what the plan was computed from: a run refuses the plan once it differs. */
  inputsDigest: string;
  status: PlanStatus;
}

/** A plan without its body and values: what a list of plans shows. */
export type UpgradePlanSummary = Omit<UpgradePlanRecord, "plan" | "valuesGiven">;

export type NewUpgradePlan = Pick<
  UpgradePlanRecord,
  "fromReleaseId" | "fromVersion" | "toBundleDigest" | "toVersion" | "valuesGiven" | "plan" | "inputsDigest"
>;

interface PlanRow {
  id: number;
  created_at: string;
  updated_at: string;
  from_release_id: number;
  from_version: string;
  to_bundle_digest: string;
  to_version: string;
  values_given: string;
  plan: string;
  inputs_digest: string;
  status: PlanStatus;
}

function toPlan(row: PlanRow): UpgradePlanRecord {
  return {
    id: row.id,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    fromReleaseId: row.from_release_id,
    fromVersion: row.from_version,
    toBundleDigest: row.to_bundle_digest,
    toVersion: row.to_version,
    valuesGiven: JSON.parse(row.values_given) as Record<string, unknown>,
    plan: JSON.parse(row.plan) as Record<string, unknown>,
    inputsDigest: row.inputs_digest,
    status: row.status,
  };
}

const SUMMARY_COLUMNS = `id, created_at, updated_at, from_release_id, from_version, to_bundle_digest,
  to_version, inputs_digest, status`;
type SummaryRow = Omit<PlanRow, "plan" | "values_given">;

function toSummary(row: SummaryRow): UpgradePlanSummary {
  const {
    plan: _plan,
    valuesGiven: _values,
    ...summary
  } = toPlan({ ...row, plan: "{}", values_given: "{}" });
  return summary;
}

function planNotFound(id: number): AirlockError {
  return new AirlockError("PLAN_NOT_FOUND", `no upgrade plan ${id}`, {
    where: `plan/${id}`,
    hint: "make one with `airlock upgrade plan`; `airlock upgrade windows` lists the scheduled ones",
  });
}

/** Upgrade plans: each change one transaction with its event. */
export class PlanRecords {
  constructor(
    private readonly db: StateDb,
    private readonly events: EventLog,
    private readonly clock: () => Date,
  ) {}

  create(plan: NewUpgradePlan): UpgradePlanRecord {
    return this.db.transaction(() => {
      const now = this.clock().toISOString();
      const { lastInsertRowid } = this.db
        .prepare(
          `INSERT INTO upgrade_plans (created_at, updated_at, from_release_id, from_version, to_bundle_digest,
             to_version, values_given, plan, inputs_digest, status)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned')`,
        )
        .run(
          now,
          now,
          plan.fromReleaseId,
          plan.fromVersion,
          plan.toBundleDigest,
          plan.toVersion,
          JSON.stringify(plan.valuesGiven),
          JSON.stringify(plan.plan),
          plan.inputsDigest,
        );
      const id = Number(lastInsertRowid);
      this.events.append({
        action: "upgrade.plan",
        object: `plan/${id}`,
        outcome: "ok",
        detail: { from: plan.fromVersion, to: plan.toVersion, bundle: plan.toBundleDigest },
      });
      return this.get(id);
    })();
  }

  get(id: number): UpgradePlanRecord {
    const row = this.db.prepare("SELECT * FROM upgrade_plans WHERE id = ?").get(id) as PlanRow | undefined;
    if (row === undefined) throw planNotFound(id);
    return toPlan(row);
  }

  /** Newest first. */
  list(): UpgradePlanRecord[] {
    return (this.db.prepare("SELECT * FROM upgrade_plans ORDER BY id DESC").all() as PlanRow[]).map(toPlan);
  }

  /** The newest `limit` plans, newest first, without parsing their bodies (a rendered release each). */
  summaries(limit: number): UpgradePlanSummary[] {
    const rows = this.db
      .prepare(`SELECT ${SUMMARY_COLUMNS} FROM upgrade_plans ORDER BY id DESC LIMIT ?`)
      .all(limit) as SummaryRow[];
    return rows.map(toSummary);
  }

  /** One plan without its body, as `summaries` lists it: for pages that name a plan, not show it. */
  summary(id: number): UpgradePlanSummary {
    const row = this.db.prepare(`SELECT ${SUMMARY_COLUMNS} FROM upgrade_plans WHERE id = ?`).get(id) as
      SummaryRow | undefined;
    if (row === undefined) throw planNotFound(id);
    return toSummary(row);
  }

  /** Moves a plan to `status`, recording `action` (`upgrade.schedule`, `upgrade.cancel`…) with it. */
  setStatus(id: number, status: PlanStatus, detail: Record<string, unknown> = {}): UpgradePlanRecord {
    return this.db.transaction(() => {
      const before = this.get(id);
      this.db
        .prepare("UPDATE upgrade_plans SET status = ?, updated_at = ? WHERE id = ?")
        .run(status, this.clock().toISOString(), id);
      this.events.append({
        action: "upgrade.plan.status",
        object: `plan/${id}`,
        outcome: "ok",
        detail: { from: before.status, to: status, ...detail },
      });
      return this.get(id);
    })();
  }
}
