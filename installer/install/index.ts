/**
 * `airlock install` as a resumable state machine: preflight → verify and import → PKI → registry
 * service → cluster → render → apply → wait → record release, each step's state in the installer's
 * records, and `airlock status`'s view of the site it leaves.
 */
export { runInstall, INSTALL_STEPS } from "./install.js";
export { runMachine } from "./machine.js";
export type {
  MachineIdentity,
  MachineOptions,
  MachineResult,
  StepDefinition,
  StepDetail,
  StepEvent,
  StepOutcome,
  StepPhase,
  StepReport,
} from "./machine.js";
export type {
  ClusterSetup,
  ClusterTarget,
  InstallContext,
  InstallOptions,
  InstallResult,
  NewAccount,
  RegistryAccess,
} from "./types.js";
export { SITE_UNIT, LEGACY_REGISTRY_UNIT, siteUnit, probeRegistry } from "./registry-service.js";
export { ADMIN_USER, PULL_USER } from "./accounts.js";
export { VENDOR_KEY_FILE } from "./bundle-key.js";
export { readOperatorValues } from "./plane-values.js";
export { NODE_CONFIG_DIR } from "./node-config.js";
export { readSiteStatus } from "./status.js";
export { k3sHostRootOf, siteAccess } from "./site-access.js";
export type { SiteAccess } from "./site-access.js";
export type { PodHealth, SiteStatus } from "./status.js";
export { routesByPod, missingRoutes } from "./broker-routes.js";
export type { BrokerRoutes, Routez } from "./broker-routes.js";
