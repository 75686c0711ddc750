import type { AirlockError } from "../registry/oci/index.js";

/** Refusals because of what the site is doing or holds now: the request was fine, its moment not. */
const CONFLICTS = new Set([
  "LOCK_HELD",
  "NOT_INSTALLED",
  "PLAN_NOT_RUNNABLE",
  "PLAN_STALE",
  "SCHEDULE_OVERLAP",
  "STATE_CONFLICT",
  "UI_DAEMON_REQUIRED",
  "UI_NO_EARLIER_RELEASE",
  "UPGRADE_DOWNGRADE",
  "UPGRADE_PATH_SKIPPED",
  "UPGRADE_RUNNING",
]);

/**
 * The HTTP status of a typed error: a bad parameter or a usage error (exit 2) is 400, anything not
 * found 404, a conflict with the site's state 409; the rest is the console's own failure, 500.
 */
export function httpStatusOf(error: AirlockError): number {
  if (error.code === "UI_BAD_PARAMETER") return 400;
  if (error.code.endsWith("_NOT_FOUND")) return 404;
  if (CONFLICTS.has(error.code)) return 409;
  if (error.exitCode === 2) return 400;
  return 500;
}
