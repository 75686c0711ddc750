/**
 * `airlock serve`, the site daemon: Airlock's registry, the web console on its own port (8443, a
 * certificate from the site CA), the upgrade scheduler, and `/healthz`, in one process that SIGHUP
 * reloads and SIGTERM stops cleanly. `airlock registry serve` runs the registry part alone.
 */
export { startSiteDaemon } from "./daemon.js";
export type { SiteDaemon, SiteDaemonOptions } from "./daemon.js";
export type { DaemonUpgrades, UpgradeContext } from "./upgrades.js";
export { startSiteRegistry } from "./registry.js";
export type { RegistryConfig, RegistryTls, SiteRegistry } from "./registry.js";
export type { ConsoleConfig } from "./console.js";
export type { DaemonHealth, PartHealth } from "./health.js";
export { Scheduler } from "./scheduler.js";
export type { SchedulerOptions, SchedulerState, SchedulerStatus, UpgradeActions } from "./scheduler.js";
export { installedSite } from "./installed-site.js";
export type { InstalledSite } from "./installed-site.js";
export { wakeSiteDaemon } from "./wake.js";
export type { DaemonWake } from "./wake.js";
