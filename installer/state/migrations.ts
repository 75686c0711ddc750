/**
 * The installer's schema, tracked as component `installer` in `schema_migrations`. Append only: a
 * released migration never changes.
 */
export const INSTALLER_MIGRATIONS: string[] = [
  `
  CREATE TABLE installs (
    id INTEGER PRIMARY KEY,
    bundle_digest TEXT NOT NULL,
    bundle_name TEXT NOT NULL,
    version TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'done', 'failed')),
    started_at TEXT NOT NULL,
    ended_at TEXT
  );
  CREATE TABLE install_steps (
    install_id INTEGER NOT NULL REFERENCES installs(id),
    name TEXT NOT NULL,
    position INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
    started_at TEXT,
    ended_at TEXT,
    error_code TEXT,
    error_message TEXT,
    detail TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (install_id, name)
  );
  CREATE TABLE releases (
    id INTEGER PRIMARY KEY,
    install_id INTEGER REFERENCES installs(id),
    -- the upgrade run that made it; its table comes with the upgrade migrations
    upgrade_id INTEGER,
    bundle_digest TEXT NOT NULL,
    bundle_name TEXT NOT NULL,
    version TEXT NOT NULL,
    values_given TEXT NOT NULL,
    values_effective TEXT NOT NULL,
    objects TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'deployed', 'superseded', 'failed', 'rolled-back')),
    is_current INTEGER NOT NULL DEFAULT 0 CHECK (is_current IN (0, 1)),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
  );
  CREATE UNIQUE INDEX releases_one_current ON releases (is_current) WHERE is_current = 1;
  CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    time TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    object TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '{}'
  );
  CREATE INDEX events_by_time ON events (time);
  CREATE INDEX events_by_action ON events (action, object);
  CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
  CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'the event log is append-only'); END;
  CREATE TABLE writer_lock (
    name TEXT PRIMARY KEY,
    pid INTEGER NOT NULL,
    start_ticks INTEGER,
    command TEXT NOT NULL,
    acquired_at TEXT NOT NULL
  );
  `,
  // Upgrade plans, their schedules and runs (issue 14).
  `
  CREATE TABLE upgrade_plans (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    from_release_id INTEGER NOT NULL REFERENCES releases(id),
    from_version TEXT NOT NULL,
    to_bundle_digest TEXT NOT NULL,
    to_version TEXT NOT NULL,
    values_given TEXT NOT NULL,
    plan TEXT NOT NULL,
    inputs_digest TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
      ('planned', 'scheduled', 'running', 'done', 'rolled-back', 'cancelled', 'stale')),
    updated_at TEXT NOT NULL
  );
  CREATE TABLE upgrade_schedules (
    id INTEGER PRIMARY KEY,
    plan_id INTEGER NOT NULL REFERENCES upgrade_plans(id),
    windows TEXT NOT NULL,
    freezes TEXT NOT NULL,
    at TEXT,
    now INTEGER NOT NULL DEFAULT 0 CHECK (now IN (0, 1)),
    hard_deadline INTEGER NOT NULL DEFAULT 0 CHECK (hard_deadline IN (0, 1)),
    created_at TEXT NOT NULL,
    cancelled_at TEXT
  );
  CREATE UNIQUE INDEX upgrade_schedules_one_active ON upgrade_schedules (plan_id) WHERE cancelled_at IS NULL;
  CREATE TABLE upgrade_runs (
    id INTEGER PRIMARY KEY,
    plan_id INTEGER NOT NULL REFERENCES upgrade_plans(id),
    started_at TEXT NOT NULL,
    ended_at TEXT,
    state TEXT NOT NULL CHECK (state IN ('running', 'done', 'rolled-back', 'failed', 'interrupted')),
    current_step TEXT,
    gates TEXT NOT NULL DEFAULT '[]',
    rollback_reason TEXT,
    window_start TEXT,
    window_end TEXT
  );
  CREATE INDEX upgrade_runs_by_plan ON upgrade_runs (plan_id);
  `,
  // Runs carried out (issue 14 points 5, 7, 10): what a run is (an upgrade, or a rollback by hand),
  // the releases it moves between, every step with its times, the StatefulSet partition last applied
  // (the safe point a resume starts from), how often it was resumed, and why a run failed without a
  // rollback. A schedule remembers the run it started, so it is not due again.
  `
  ALTER TABLE upgrade_runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'upgrade' CHECK (kind IN ('upgrade', 'rollback'));
  ALTER TABLE upgrade_runs ADD COLUMN from_release_id INTEGER REFERENCES releases(id);
  ALTER TABLE upgrade_runs ADD COLUMN to_release_id INTEGER REFERENCES releases(id);
  ALTER TABLE upgrade_runs ADD COLUMN steps TEXT NOT NULL DEFAULT '[]';
  ALTER TABLE upgrade_runs ADD COLUMN partition INTEGER;
  ALTER TABLE upgrade_runs ADD COLUMN resumed INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE upgrade_runs ADD COLUMN failure TEXT;
  ALTER TABLE upgrade_schedules ADD COLUMN run_id INTEGER REFERENCES upgrade_runs(id);
  `,
  // A scheduled run refused before it changed anything (a stale or spent plan, a pre-gate) uses up
  // its schedule, which keeps why (issue 14 point 2); a refused schedule no longer holds its plan's
  // one active slot, so the plan may be scheduled again once the cause is fixed.
  `
  ALTER TABLE upgrade_schedules ADD COLUMN refused_at TEXT;
  ALTER TABLE upgrade_schedules ADD COLUMN refused_reason TEXT;
  DROP INDEX upgrade_schedules_one_active;
  CREATE UNIQUE INDEX upgrade_schedules_one_active ON upgrade_schedules (plan_id)
    WHERE cancelled_at IS NULL AND refused_at IS NULL;
  `,
];
