import type { BundleHead } from "../../bundle/index.js";
import type { ClusterClient } from "../cluster/index.js";
import type { CommandRunner, HostRoot, Systemd } from "../host/index.js";
import type { HostView, PreflightReport } from "../preflight/index.js";
import type { State } from "../state/index.js";
import type { StepDetail, StepEvent, StepReport } from "./machine.js";

/** Where the plane goes: an existing cluster through its kubeconfig, or k3s from the bundle on this host. */
export type ClusterTarget = { kind: "kubeconfig"; kubeconfig: string } | { kind: "k3s" };

/** The cluster's pull account and how nodes reach and trust Airlock's registry. */
export interface RegistryAccess {
  /** `host:port` the nodes pull from. */
  endpoint: string;
  caFile: string;
  username: string;
  password: string;
}

/**
 * The seam for k3s from the bundle (installer/k3s): sets the cluster up on the host root, pointed at
 * Airlock's registry, and says where its kubeconfig is once the API answers and the node is Ready.
 */
export type ClusterSetup = (context: {
  host: HostRoot;
  systemd: Systemd;
  head: BundleHead;
  dataDir: string;
  registry: RegistryAccess;
  /** The registry name the rendered images carry (Airlock's, unless the values name another). */
  imageRegistry: string;
  /** The node's name in the cluster; the host name when not given. */
  nodeName?: string | undefined;
  signal?: AbortSignal | undefined;
}) => Promise<{ kubeconfig: string; detail: StepDetail; summary: string }>;

export interface InstallOptions {
  dataDir: string;
  /** The bundle file, its parts, or its .parts.json. */
  bundle: string[];
  /** The vendor's public key the bundle must be signed with; a re-run checks the one the first install kept. */
  publicKey?: string | undefined;
  /** The operator's values file (YAML), merged over the bundle's. */
  valuesFile?: string | undefined;
  cluster: ClusterTarget;
  /** Where host files go (the registry's unit, k3s): `/` on a real host. */
  hostRoot?: string | undefined;
  /** Where Airlock's registry listens, `host:port`. */
  registryListen?: string | undefined;
  /** Where the site daemon's console listens, `host:port` (default 0.0.0.0:8443). */
  consoleListen?: string | undefined;
  /** Where the site daemon answers `/healthz`, `host:port` (default 127.0.0.1:8442). */
  healthListen?: string | undefined;
  /**
   * Makes the console's first admin with a one-time password when the site has none, and returns
   * it; undefined when an admin exists (a re-run keeps it). The CLI gives ui-lite's users here.
   */
  ensureConsoleAdmin?: ((state: State) => Promise<NewAccount | undefined>) | undefined;
  /** The command line that runs this airlock (`node …/main.js`): the registry unit's ExecStart starts with it. */
  airlockCommand: string[];
  /** How long the plane may take to roll out. Default 15 minutes. */
  timeoutMs?: number | undefined;
  /** How k3s from the bundle is set up; k3sClusterSetup unless a test injects another. */
  clusterSetup?: ClusterSetup | undefined;
  /** The k3s node's name (`--node-name`); the host name when not given. */
  nodeName?: string | undefined;
  /** Host tools (systemctl): the real runner unless a test injects one. */
  runner?: CommandRunner | undefined;
  /** The host preflight looks at; the real one unless a test hands a fake. */
  hostView?: HostView | undefined;
  /** The cluster client for a kubeconfig; KubeClusterClient unless a test injects one. */
  connect?: ((kubeconfig: string) => ClusterClient) | undefined;
  signal?: AbortSignal | undefined;
  onStep?: ((event: StepEvent) => void) | undefined;
  /**
   * Told of each account the moment it is made, with its password: the only time it is shown, and
   * the install may still fail later (the result would then never be seen).
   */
  onAccountCreated?: ((account: NewAccount) => void) | undefined;
}

export interface NewAccount {
  /** The registry's accounts (htpasswd) or the console's users. */
  service: "registry" | "console";
  username: string;
  password: string;
  role: string;
}

/** What `airlock install` reports. */
export interface InstallResult {
  /** `installed` this run, or `unchanged` when the site already ran this bundle. */
  outcome: "installed" | "unchanged";
  installId: number;
  bundle: { name: string; version: string; digest: string };
  release: { id: number; name: string } | undefined;
  steps: StepReport[];
  registry: { url: string; caFile: string };
  /** Accounts made by this run, with their passwords: shown this once. */
  newAccounts: NewAccount[];
  /** Files the operator must place on each node (an existing cluster): where, and what to do. */
  nodeConfig: { dir: string; files: string[]; instructions: string } | undefined;
  preflight: { pass: number; warn: number; fail: number };
}

/** What every install step reads: the run's options and what the steps before it left. */
export interface InstallContext {
  options: InstallOptions;
  dataDir: string;
  head: BundleHead;
  state: State;
  host: HostRoot;
  systemd: Systemd;
  preflight: PreflightReport;
  registryListen: string;
  /** The vendor key the import checks the signature with (the one given, or the first install's). */
  publicKey: string | undefined;
  details: Map<string, StepDetail>;
  /** Accounts created in this run: the result shows their passwords once. */
  newAccounts: NewAccount[];
  /** The install this run records its steps under. */
  installId(): number;
  /** A client for a kubeconfig, one per file for the run. */
  connect(kubeconfig: string): ClusterClient;
  /** The client of the cluster the cluster step set up. */
  cluster(): ClusterClient;
}
