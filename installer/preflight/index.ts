/**
 * Preflight: whether this host can take an install, as pass/warn/fail checks with hints. Writes
 * nothing; reads the host only through a `HostView`, so tests present any host with the fake one.
 */
export {
  runPreflight,
  parseListen,
  CLOCK_FLOOR,
  DEFAULT_REGISTRY_LISTEN,
  DEFAULT_CONSOLE_LISTEN,
  DEFAULT_HEALTH_LISTEN,
  DEFAULT_K3S_API_PORT,
  DEFAULT_KUBELET_PORT,
} from "./run.js";
export type { PreflightOptions, PreflightReport } from "./run.js";
export { realHostView, parseMeminfo } from "./host.js";
export type { FsStats, HostView, PortProbe } from "./host.js";
export { fakeHostView, healthyHostSpec, EXT4 } from "./fake-host.js";
export type { FakeFilesystem, FakeHostSpec } from "./fake-host.js";
export { DEFAULT_SIZING, factsOf, readBundleFacts, sizingOf } from "./bundle-facts.js";
export { storeGrowth, K3S_BASE_BYTES } from "./checks-disk.js";
export type { BundleFacts, CheckResult, CheckStatus, PortSpec, Sizing } from "./types.js";
