import type { SiteSummary } from "../state/index.js";
import type { HostView } from "./host.js";

export type CheckStatus = "pass" | "warn" | "fail";

export interface CheckResult {
  /** Stable, for scripts: `cpu`, `port:registry`, `module:overlay`, `disk:data-dir`, … */
  id: string;
  title: string;
  status: CheckStatus;
  /** What was found. */
  detail: string;
  /** What to do about it: set on warn and fail. */
  hint?: string;
}

export interface Sizing {
  cpus: number;
  memoryBytes: number;
  /** Where the figures came from: the bundle's `sizing`, or Airlock's defaults. */
  source: "bundle" | "default";
}

/** What preflight needs to know of a bundle, from its head only. */
export interface BundleFacts {
  name: string;
  version: string;
  digest: string;
  created: string;
  /** Each runnable image of the plane with the platforms it carries (packs are data, not run). */
  images: { ref: string; platforms: string[] }[];
  sizing: Sizing;
  /** Bytes the import adds to the store: every file the bundle lists. */
  storeBytes: number;
  /** Bytes of `bin/k3s`, which goes to /usr/local/bin. */
  k3sBinaryBytes: number;
  /** Bytes of the other bin/ files (the air-gap images archive), which go under /var/lib/rancher/k3s. */
  k3sArchiveBytes: number;
  /** Bytes of the plane's images, which the cluster's containerd pulls and unpacks. */
  imageBytes: number;
}

export interface PortSpec {
  /** `registry`, `k3s-api`, `kubelet`. */
  name: string;
  host: string;
  port: number;
}

/** Everything a check reads: the host view, where things go, and what the bundle and site say. */
export interface PreflightContext {
  host: HostView;
  /** Where install paths (k3s binary, config, data) live: `/` on a real host. */
  hostRoot: string;
  dataDir: string;
  bundle: BundleFacts | undefined;
  sizing: Sizing;
  ports: PortSpec[];
  site: SiteSummary;
  /** An existing cluster's kubeconfig; without one, k3s from the bundle. */
  kubeconfig: string | undefined;
  /** The clock must not read earlier than this: this airlock was built after it. */
  clockFloor: Date;
}

export type Check = (
  context: PreflightContext,
) => CheckResult | CheckResult[] | Promise<CheckResult | CheckResult[]>;
