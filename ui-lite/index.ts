/**
 * The web console: express 5, server-rendered HTML, one stylesheet, no outside assets. Its users,
 * sessions and login counts live in `airlock.db` under their own migration track (component `ui`).
 * The pages read the same library objects the CLI does; `installer/daemon` serves it.
 */
export { createConsoleApp } from "./app.js";
export type { ConsoleLogger, ConsoleOptions } from "./app.js";
export type { ConsoleUpgradeHooks } from "./upgrade-hooks.js";
export { startConsole, consoleCertificate, DEFAULT_CONSOLE_PORT, CONSOLE_CERTIFICATE } from "./serve.js";
export type { ConsoleServer, ConsoleServerOptions } from "./serve.js";
export { UserRecords, ROLES, checkRole, checkUserName } from "./users.js";
export type { ConsoleUser, Role } from "./users.js";
export { DEFAULT_SESSION_LIMITS } from "./sessions.js";
export type { SessionLimits } from "./sessions.js";
export { FREE_FAILURES, LOCK_FAILURES, LOCK_MS } from "./throttle.js";
export { MIN_PASSWORD_LENGTH } from "./passwords.js";
export { UI_COMPONENT, UI_SCHEMA_VERSION } from "./schema.js";
