/**
 * The host Airlock installs on: its files under a host root (`/`, or a folder in tests), written
 * atomically; systemd units; the host tools every part runs through one injectable runner.
 */
export { HostRoot } from "./files.js";
export { Systemd, renderUnit, UNIT_DIR } from "./systemd.js";
export type { UnitSections } from "./systemd.js";
export { CommandFailedError, runCommand } from "./run.js";
export type { CommandResult, CommandRunner } from "./run.js";
