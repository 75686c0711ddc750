/**
 * k3s from the bundle, air-gapped: the binary and its image archives placed under a host root,
 * registries.yaml sending every pull to Airlock's registry, config.yaml, the service unit; the wait
 * until the node is Ready; join tokens for more nodes; the binary replaced by a newer bundle's.
 */
export { installK3s } from "./install.js";
export type { K3sInstallOptions, K3sInstallResult } from "./install.js";
export { waitForK3sServer } from "./wait.js";
export type { K3sWaitOptions } from "./wait.js";
export { registriesYaml } from "./registries.js";
export type { RegistryMirrorOptions } from "./registries.js";
export { k3sConfigYaml, DEFAULT_DISABLED } from "./config.js";
export type { K3sSettings } from "./config.js";
export { k3sUnit, k3sEnvFile } from "./units.js";
export {
  K3S_BINARY,
  K3S_CONFIG,
  K3S_CONFIG_DIR,
  K3S_DEFAULT_DATA_DIR,
  K3S_KUBECONFIG,
  K3S_REGISTRIES,
  K3S_REGISTRY_CA,
  k3sPaths,
} from "./layout.js";
export type { K3sPaths, K3sRole } from "./layout.js";
export { caHashOf, createJoinToken, decodeJoinToken, encodeJoinToken, verifyServerCa } from "./join.js";
export type { JoinToken, JoinTokenSource } from "./join.js";
export { agentRegistries, joinNode, serverJoinToken, serverRegistry } from "./node-join.js";
export type { JoinNodeOptions, JoinNodeResult } from "./node-join.js";
export { BUNDLE_K3S_BINARY, extractK3sFiles, k3sEntries } from "./bundle-files.js";
export {
  installedK3s,
  k3sSkewProblem,
  k3sVersionAt,
  parseK3sVersion,
  restoreK3s,
  stageK3s,
  swapK3s,
  K3S_PREVIOUS,
  K3S_STAGED,
} from "./upgrade.js";
export type { K3sVersion } from "./upgrade.js";
export type { K3sBundleFiles } from "./bundle-files.js";
