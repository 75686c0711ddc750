/**
 * Upgrades: maintenance windows and freezes (when a run may start), the version path a bundle
 * allows, and the plan's diff between the installed release and the next one.
 */
export { parseWindow } from "./window-spec.js";
export type { MaintenanceWindow } from "./window-spec.js";
export { parseFreeze, parseAt } from "./instant-spec.js";
export type { Freeze } from "./instant-spec.js";
export { nextOccurrences, canStartAt } from "./windows.js";
export type { FitOptions, StartDecision, WindowOccurrence } from "./windows.js";
export { checkUpgradePath } from "./path.js";
export type { BundleVersion, UpgradePath, UpgradePathOptions } from "./path.js";
