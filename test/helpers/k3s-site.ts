/**
 * A host where install left k3s: the stand-in k3s (v1.32.3+k3s1) under a temporary host root,
 * started by the stand-in systemctl from the unit install writes, its kubeconfig naming a
 * MemoryCluster behind the stand-in API server, and a kubelet that posts the running server's
 * version on its Node — what a k3s upgrade swaps, restarts and gates on.
 */
import { execFile } from "node:child_process";
import { mkdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { MemoryCluster } from "../../installer/cluster/index.js";
import { HostRoot, Systemd, type CommandRunner } from "../../installer/host/index.js";
import { K3S_BINARY, K3S_CONFIG, k3sConfigYaml, k3sPaths, k3sUnit } from "../../installer/k3s/index.js";
import type { K3sUpgradeOptions } from "../../installer/upgrade/index.js";
import { serveStandinClusterApi, type StandinClusterApi } from "./standin/cluster-api.js";
import {
  STANDIN_K3S,
  standinBin,
  standinCalls,
  standinEnv,
  stopStandinServices,
  type StandinCall,
} from "./standin/index.js";

export const K3S_NODE = "server-1";

/**
 * The kubelet of the stand-in k3s: whenever a `k3s server` is running, its Node reports Ready with
 * that binary's version as kubeletVersion — except versions made to fail, which never get Ready.
 */
export class StandinKubelet {
  readonly broken = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  private reported = "";

  constructor(cluster: MemoryCluster, log: string) {
    this.timer = setInterval(() => {
      void runningK3sVersion(log).then((version) => {
        if (version === undefined || version === this.reported) return;
        this.reported = version;
        cluster.postNodeStatus(K3S_NODE, {
          ready: !this.broken.has(version),
          nodeInfo: { kubeletVersion: version },
        });
      });
    }, 25);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}

export interface K3sSite {
  root: string;
  log: string;
  host: HostRoot;
  systemd: Systemd;
  /** `k3s --version` and systemctl with the stand-ins' environment. */
  run: CommandRunner;
  cluster: MemoryCluster;
  api: StandinClusterApi;
  kubelet: StandinKubelet;
  /** runUpgrade's k3s option for the new bundle's `binary`. */
  k3s: (binary: string, readyTimeoutMs?: number) => K3sUpgradeOptions;
  stop: () => Promise<void>;
}

/** Sets the site up in `dir` (made here): k3s installed and started, its node Ready on v1.32.3+k3s1. */
export async function standinK3sSite(dir: string): Promise<K3sSite> {
  await mkdir(dir, { recursive: true });
  const root = join(dir, "root");
  const log = join(dir, "standin.log");
  const cluster = new MemoryCluster({ podReadyMs: 10, nodeName: K3S_NODE });
  const api = await serveStandinClusterApi(cluster, dir);
  const env = standinEnv(await standinBin(dir), root, log, api.env);
  const run: CommandRunner = async (command, args) => {
    const { stdout, stderr } = await promisify(execFile)(command, [...args], { env });
    return { stdout, stderr, code: 0 };
  };
  const host = new HostRoot(root);
  const systemd = new Systemd(host, run);
  await host.installFile(STANDIN_K3S, K3S_BINARY, 0o755);
  await host.writeFile(K3S_CONFIG, k3sConfigYaml("server", {}, K3S_NODE), 0o600);
  await systemd.installUnit("k3s.service", k3sUnit("server", k3sPaths("server").envFile));
  await systemd.enableAndStart("k3s.service", false);
  const kubelet = new StandinKubelet(cluster, log);
  return {
    root,
    log,
    host,
    systemd,
    run,
    cluster,
    api,
    kubelet,
    k3s: (binary, readyTimeoutMs = 10_000) => ({ host, systemd, binary, run, readyTimeoutMs }),
    async stop() {
      kubelet.stop();
      await stopStandinServices(root);
      await api.close();
      cluster.close();
    },
  };
}

/** The version of the `k3s server` that started last, as the stand-in recorded it. */
export async function runningK3sVersion(log: string): Promise<string | undefined> {
  const servers = (await standinCalls(log)).filter((call) => call.version !== undefined);
  return servers.at(-1)?.version as string | undefined;
}

/** What the stand-in systemctl was asked, as `restart k3s.service`. */
export async function systemctlCalls(log: string): Promise<string[]> {
  return (await standinCalls(log))
    .filter((call: StandinCall) => call.program === "systemctl")
    .map((call) => call.args.join(" "));
}

export const sameBytes = async (a: string, b: string): Promise<boolean> =>
  (await readFile(a)).equals(await readFile(b));
