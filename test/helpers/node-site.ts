/**
 * A site on the containerd node as the CLI and `airlock serve` find it: the node harness and a
 * MemoryCluster on it, served through the kube-apiserver facade (each request shown to `observe`),
 * a data dir whose install recorded its registry (the harness's) and cluster (that kubeconfig)
 * steps, and `installed`'s release deployed on real brokers. `planTo` stores plans over the deployed
 * release; `airlock` starts the built CLI on the data dir, to be killed at a point the test chooses.
 */
import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import {
  clusterApiKubeconfig,
  serveClusterApi,
  type ClusterObject,
  type MemoryCluster,
  type ObservedRequest,
  type RunningClusterApiServer,
} from "../../installer/cluster/index.js";
import type { ContainerdNode } from "../../installer/cluster/node/index.js";
import { openState, type State } from "../../installer/state/index.js";
import { issueBroker } from "../unit/manifests/plane-fixtures.js";
import { seedSite } from "../unit/installer/upgrade-fixtures.js";
import { freePorts } from "./daemons.js";
import { CLI, selfSignedCertificate, type CliResult } from "./fixtures.js";
import { startNodeHarness, type NodeHarness } from "./node-cluster.js";
import { nodeReleases, type NodeReleases } from "./node-releases.js";

const TOKEN = "node-site-token";

export interface RunningCli {
  pid: number;
  kill(signal?: NodeJS.Signals): void;
  /** Resolves once `pattern` matches what the process wrote (stdout and stderr); fails if it exits first or after `timeoutMs`. */
  printed(pattern: RegExp, timeoutMs: number): Promise<void>;
  done: Promise<CliResult>;
}

export interface NodeSite {
  harness: NodeHarness;
  node: ContainerdNode;
  cluster: MemoryCluster;
  api: RunningClusterApiServer;
  releases: NodeReleases;
  dataDir: string;
  /** The site's state, opened by the test (actor "test"). */
  state: State;
  /** Stores a plan from the deployed release to `version` (its objects rendered unless given). */
  planTo: (version: string, objects?: ClusterObject[]) => number;
  /** Set to see each request the API server facade answers (the test kills a process at one). */
  observe: ((request: ObservedRequest) => void) | undefined;
  /** Starts `airlock --data-dir DIR ARGS` (the built CLI). */
  airlock(args: string[]): RunningCli;
  /** Starts `airlock serve ARGS` on free loopback ports; resolves once it says it serves. */
  serve(args: string[]): Promise<RunningCli>;
  close(): Promise<void>;
}

/**
 * The install's registry and cluster steps as install records them: the CLI reaches both from here.
 * No htpasswd: `airlock serve`'s own registry, which no pod here pulls from, lets anyone pull.
 */
async function recordInstall(state: State, harness: NodeHarness, kubeconfig: string): Promise<void> {
  const passwordFile = join(harness.root, "pull-password");
  await writeFile(passwordFile, "unused: the node registry lets anyone pull\n");
  const install = state.installs.start({
    bundleDigest: `sha256:${"a".repeat(64)}`,
    bundleName: "mgmt",
    version: "4.4.0",
    steps: ["registry", "cluster"],
  });
  state.installs.startStep(install.id, "registry");
  state.installs.finishStep(install.id, "registry", {
    url: `https://${harness.registry.host}`,
    listen: harness.registry.host,
    unit: "airlock-registry.service",
    access: {
      endpoint: harness.registry.host,
      caFile: harness.registry.caFile,
      username: "pull",
      passwordFile,
    },
  });
  state.installs.startStep(install.id, "cluster");
  state.installs.finishStep(install.id, "cluster", { kind: "kubeconfig", kubeconfig });
}

function startCli(dataDir: string, args: string[]): RunningCli {
  const child = spawn(process.execPath, [CLI, "--data-dir", dataDir, ...args], {
    env: { ...process.env, NO_COLOR: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  const output = new EventEmitter();
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
    output.emit("data");
  });
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
    output.emit("data");
  });
  const done = new Promise<CliResult>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  const printed = (pattern: RegExp, timeoutMs: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!pattern.test(stdout + stderr)) return;
        finish();
        resolve();
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`not printed within ${timeoutMs} ms: ${pattern}\n${stderr}`));
      }, timeoutMs);
      const finish = (): void => {
        clearTimeout(timer);
        output.off("data", check);
      };
      output.on("data", check);
      void done.then(({ code, signal }) => {
        finish();
        reject(new Error(`exited (${code ?? signal}) before printing ${pattern}\n${stderr}`));
      });
      check();
    });
  return { pid: child.pid!, kill: (signal = "SIGKILL") => child.kill(signal), printed, done };
}

/** How long `airlock serve` may take to start serving. */
const SERVE_START_MS = 30_000;

async function startServe(dataDir: string, args: string[]): Promise<RunningCli> {
  const [registry, console, health] = (await freePorts(3)) as [number, number, number];
  const serve = startCli(dataDir, [
    "serve",
    ...["--registry-listen", `127.0.0.1:${registry}`, "--console-listen", `127.0.0.1:${console}`],
    ...["--health-listen", `127.0.0.1:${health}`, "--anonymous-pull", ...args],
  ]);
  await serve.printed(/^serving .* as process \d+$/m, SERVE_START_MS);
  return serve;
}

/** The site with `installed` (of `versions`, the releases the test names) deployed and Ready. */
export async function startNodeSite(versions: string[], installed: string): Promise<NodeSite> {
  const harness = await startNodeHarness();
  const node = await harness.newNode();
  const cluster = await harness.newCluster(node);
  const pkiDir = join(harness.root, "site");
  const certificates = (await issueBroker(pkiDir, { replicas: 2 })).pems;
  const releases = nodeReleases(harness, certificates, versions);
  const tls = await selfSignedCertificate(pkiDir);
  const caPem = await readFile(tls.certFile, "utf8");
  const site: Partial<NodeSite> & { observe: NodeSite["observe"] } = { observe: undefined };
  const api = await serveClusterApi(cluster, {
    tls: { cert: caPem, key: await readFile(tls.keyFile, "utf8") },
    token: TOKEN,
    observe: (request) => site.observe?.(request),
  });
  const kubeconfig = join(harness.root, "kubeconfig");
  await writeFile(kubeconfig, clusterApiKubeconfig(api.url, caPem, TOKEN));
  const dataDir = join(harness.root, "airlock");
  const state = openState(dataDir, { actor: "test" });
  await recordInstall(state, harness, kubeconfig);
  const seeded = await seedSite(state, cluster, (version) => releases.plane(version), installed, 120_000);
  return Object.assign(site, {
    harness,
    node,
    cluster,
    api,
    releases,
    dataDir,
    state,
    planTo: seeded.plan,
    airlock: (args: string[]) => startCli(dataDir, args),
    serve: (args: string[]) => startServe(dataDir, args),
    async close() {
      state.close();
      await api.close();
      await harness.close();
    },
  });
}
