/**
 * The installer's state in `<dataDir>/airlock.db`: installs and their steps, releases, the append-only
 * event log, upgrade plans with their schedules and runs, and the site's one writer lock. Its own migration track (component `installer` in
 * `schema_migrations`), beside the store's `user_version`.
 */
export { openState, State, STATE_FILE } from "./state.js";
export type { StateOptions } from "./state.js";
export { INSTALLER_SCHEMA_VERSION, migrateComponent } from "./db.js";
export type { StateDb } from "./db.js";
export { InstallRecords } from "./installs.js";
export type { Install, InstallState, InstallStep, NewInstall, StepState } from "./installs.js";
export { ReleaseRecords } from "./releases.js";
export type { NewRelease, Release, ReleaseStatus } from "./releases.js";
export { PlanRecords } from "./plans.js";
export type { NewUpgradePlan, PlanStatus, UpgradePlanRecord, UpgradePlanSummary } from "./plans.js";
export { ScheduleRecords } from "./schedules.js";
export type { NewUpgradeSchedule, UpgradeSchedule } from "./schedules.js";
export { RunRecords } from "./runs.js";
export { resumeDecision } from "./runs.js";
export type { NewRun, ResumeDecision, RunGate, RunKind, RunState, RunStep, UpgradeRun } from "./runs.js";
export { EventLog } from "./events.js";
export type { EventFilter, EventOutcome, NewEvent, StateEvent } from "./events.js";
export { processStartTicks, holderAlive } from "./lock.js";
export type { LockHolder, LockName, WriterLock } from "./lock.js";
export { readSiteSummary, CLUSTER_STEP } from "./site.js";
export type { SiteSummary } from "./site.js";
