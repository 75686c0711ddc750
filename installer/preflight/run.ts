import { resolve } from "node:path";
import { AirlockError } from "../../registry/oci/index.js";
import { readSiteSummary, type SiteSummary } from "../state/index.js";
import { DEFAULT_SIZING, readBundleFacts } from "./bundle-facts.js";
import { checkDataDirFilesystem, checkDataDirWritable, checkDisk } from "./checks-disk.js";
import { checkBrNetfilter, checkCgroups, checkIpForward, checkOverlay } from "./checks-kernel.js";
import { checkExistingInstall, checkExistingK3s, checkKubeconfig, checkPorts } from "./checks-site.js";
import { checkClock, checkCpu, checkMemory, checkPlatform, checkSwap } from "./checks-system.js";
import { realHostView, type HostView } from "./host.js";
import type { BundleFacts, Check, CheckResult, PortSpec, PreflightContext } from "./types.js";

export const DEFAULT_REGISTRY_LISTEN = "127.0.0.1:5443";
/** The site daemon's (`airlock serve`) console and `/healthz` listeners. */
export const DEFAULT_CONSOLE_LISTEN = "0.0.0.0:8443";
export const DEFAULT_HEALTH_LISTEN = "127.0.0.1:8442";
export const DEFAULT_K3S_API_PORT = 6443;
export const DEFAULT_KUBELET_PORT = 10250;
/** No clock reads earlier than the day this check was written: such a host's time was never set. */
export const CLOCK_FLOOR = new Date("2026-12-01T00:00:00Z");

export interface PreflightOptions {
  dataDir: string;
  /** The bundle to check the host against (its first entries only); without one, defaults. */
  bundle?: string;
  /** The bundle's facts when the caller has read its head already (install); `bundle` is then only named. */
  bundleFacts?: BundleFacts;
  hostRoot?: string;
  /** Where Airlock's registry will listen, `host:port`. */
  registryListen?: string;
  /** Where the site daemon's console and `/healthz` will listen: checked when given (install gives them). */
  consoleListen?: string;
  healthListen?: string;
  k3sApiPort?: number;
  kubeletPort?: number;
  /** Install into the operator's cluster through this kubeconfig: no k3s checks, its file checked instead. */
  kubeconfig?: string;
  /** The host to look at; the real one unless a test hands a fake. */
  host?: HostView;
  /** What the data dir holds; read from it (without writing) unless given. */
  site?: SiteSummary;
  clockFloor?: Date;
}

export interface PreflightReport {
  /** No check failed: install may go on. */
  ok: boolean;
  /** null without --bundle, or when it could not be read (the `bundle` check says why). */
  bundle: { name: string; version: string; digest: string } | null;
  dataDir: string;
  hostRoot: string;
  checks: CheckResult[];
  counts: { pass: number; warn: number; fail: number };
}

/** `host:port` or `[v6]:port`, as `registry serve --listen` takes it. */
export function parseListen(listen: string, flag = "--registry-listen"): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(listen);
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || port < 1 || port > 65535) {
    throw new AirlockError("USAGE", `${flag} ${JSON.stringify(listen)} is not host:port`, {
      hint: `e.g. ${flag} ${DEFAULT_REGISTRY_LISTEN}`,
    });
  }
  return { host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port };
}

function portsOf(options: PreflightOptions): PortSpec[] {
  const registry = parseListen(options.registryListen ?? DEFAULT_REGISTRY_LISTEN);
  const ports: PortSpec[] = [{ name: "registry", ...registry }];
  if (options.consoleListen !== undefined) {
    ports.push({ name: "console", ...parseListen(options.consoleListen, "--console-listen") });
  }
  if (options.healthListen !== undefined) {
    ports.push({ name: "health", ...parseListen(options.healthListen, "--health-listen") });
  }
  if (options.kubeconfig === undefined) {
    // k3s binds its API server and the kubelet on every address.
    ports.push(
      { name: "k3s-api", host: "0.0.0.0", port: options.k3sApiPort ?? DEFAULT_K3S_API_PORT },
      { name: "kubelet", host: "0.0.0.0", port: options.kubeletPort ?? DEFAULT_KUBELET_PORT },
    );
  }
  return ports;
}

const COMMON_CHECKS: Check[] = [
  checkPlatform,
  checkCpu,
  checkMemory,
  checkDisk,
  checkDataDirFilesystem,
  checkDataDirWritable,
  checkPorts,
  checkClock,
  checkExistingInstall,
];

const K3S_CHECKS: Check[] = [
  checkCgroups,
  checkOverlay,
  checkBrNetfilter,
  checkIpForward,
  checkSwap,
  checkExistingK3s,
];

async function bundleCheck(
  path: string | undefined,
  given: BundleFacts | undefined,
): Promise<{ facts: BundleFacts | undefined; result: CheckResult | undefined }> {
  if (path === undefined && given === undefined) return { facts: undefined, result: undefined };
  const base = { id: "bundle", title: "Bundle" };
  try {
    const facts = given ?? (await readBundleFacts(path!));
    return {
      facts,
      result: {
        ...base,
        status: "pass",
        detail: `${facts.name} ${facts.version} (${facts.digest})${path === undefined ? "" : `, from ${path}`}`,
      },
    };
  } catch (error) {
    if (!(error instanceof AirlockError)) throw error;
    return {
      facts: undefined,
      result: {
        ...base,
        status: "fail",
        detail: `${path}: ${error.message}`,
        hint: error.hint ?? "pass the bundle's tar, its first part, or its .parts.json",
      },
    };
  }
}

/**
 * Looks at the host, writing nothing, and says per check whether an install may go on. Checks read
 * only through the host view; a failed bundle read is a failed check, so the report is whole.
 */
export async function runPreflight(options: PreflightOptions): Promise<PreflightReport> {
  const ports = portsOf(options);
  const dataDir = resolve(options.dataDir);
  const hostRoot = resolve(options.hostRoot ?? "/");
  const { facts, result } = await bundleCheck(options.bundle, options.bundleFacts);
  const context: PreflightContext = {
    host: options.host ?? realHostView(),
    hostRoot,
    dataDir,
    bundle: facts,
    sizing: facts?.sizing ?? DEFAULT_SIZING,
    ports,
    site: options.site ?? readSiteSummary(dataDir),
    kubeconfig: options.kubeconfig === undefined ? undefined : resolve(options.kubeconfig),
    clockFloor: options.clockFloor ?? CLOCK_FLOOR,
  };
  const checks: CheckResult[] = result === undefined ? [] : [result];
  for (const check of [
    ...COMMON_CHECKS,
    ...(options.kubeconfig === undefined ? K3S_CHECKS : [checkKubeconfig]),
  ]) {
    checks.push(...[await check(context)].flat());
  }
  const counts = { pass: 0, warn: 0, fail: 0 };
  for (const check of checks) counts[check.status]++;
  return {
    ok: counts.fail === 0,
    bundle: facts === undefined ? null : { name: facts.name, version: facts.version, digest: facts.digest },
    dataDir,
    hostRoot,
    checks,
    counts,
  };
}
