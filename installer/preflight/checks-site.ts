import { join } from "node:path";
import { parse } from "yaml";
import type { Check, CheckResult, PortSpec, PreflightContext } from "./types.js";

/** The site daemon's listeners (`airlock serve`), by port name, with the install flag that moves each. */
const DAEMON_PORTS: Record<string, string> = {
  registry: "--registry-listen",
  console: "--console-listen",
  health: "--health-listen",
};

/** Ports a site's own earlier install may hold: busy then is expected, not a conflict. */
function ownedByThisSite(port: PortSpec, { site }: PreflightContext): boolean {
  return port.name in DAEMON_PORTS ? site.latestInstall !== undefined : site.clusterStepStarted;
}

async function checkPort(port: PortSpec, context: PreflightContext): Promise<CheckResult> {
  const address = `${port.host.includes(":") ? `[${port.host}]` : port.host}:${port.port}`;
  const base = { id: `port:${port.name}`, title: `Port ${port.port} (${port.name})` };
  const probe = await context.host.probePort(port.host, port.port);
  if (probe.state === "free") return { ...base, status: "pass", detail: `${address} is free` };
  if (probe.state === "unavailable") {
    return {
      ...base,
      status: "fail",
      detail: `${address} cannot be bound: ${probe.reason}`,
      hint:
        probe.reason === "EADDRNOTAVAIL"
          ? `${port.host} is not an address of this host: name one it has`
          : "run as root, or choose another address",
    };
  }
  if (ownedByThisSite(port, context)) {
    return {
      ...base,
      status: "warn",
      detail: `${address} is in use, likely by this site's own ${port.name in DAEMON_PORTS ? "site daemon" : "k3s"} from an earlier install`,
      hint: `check with \`ss -ltnp 'sport = :${port.port}'\` that it is Airlock's`,
    };
  }
  return {
    ...base,
    status: "fail",
    detail: `${address} is in use by another program`,
    hint: `find it with \`ss -ltnp 'sport = :${port.port}'\` and stop it${port.name in DAEMON_PORTS ? `, or choose another ${DAEMON_PORTS[port.name]}` : ""}`,
  };
}

export const checkPorts: Check = async (context) => {
  const results: CheckResult[] = [];
  for (const port of context.ports) results.push(await checkPort(port, context));
  return results;
};

export const checkExistingInstall: Check = ({ site, bundle }) => {
  const base = { id: "existing-install", title: "Another install in the data dir" };
  const release = site.release;
  if (release === undefined) {
    const latest = site.latestInstall;
    if (latest !== undefined && bundle !== undefined && latest.bundleName !== bundle.name) {
      return {
        ...base,
        status: "fail",
        detail: `an unfinished install of ${latest.bundleName} ${latest.version} is here, not of ${bundle.name}`,
        hint: `finish it with that bundle (\`airlock install\`), or use another --data-dir`,
      };
    }
    return {
      ...base,
      status: "pass",
      detail:
        latest === undefined
          ? "none"
          : `an unfinished install of ${latest.bundleName} ${latest.version} (a re-run finishes it)`,
    };
  }
  const installed = `${release.bundleName} ${release.version} is installed`;
  if (bundle !== undefined && release.bundleName !== bundle.name) {
    return {
      ...base,
      status: "fail",
      detail: `${installed}; this bundle is ${bundle.name}`,
      hint: "one data dir holds one plane: use another --data-dir (and host) for a different one",
    };
  }
  return { ...base, status: "pass", detail: `${installed} (re-running install re-checks it)` };
};

/** Files a k3s install leaves under the host root. */
const K3S_PATHS = ["usr/local/bin/k3s", "etc/rancher/k3s/k3s.yaml"];

export const checkExistingK3s: Check = async ({ host, hostRoot, site }) => {
  const base = { id: "existing-k3s", title: "An existing k3s" };
  const found: string[] = [];
  for (const path of K3S_PATHS) {
    const full = join(hostRoot, path);
    if (await host.exists(full)) found.push(full);
  }
  if (found.length === 0) return { ...base, status: "pass", detail: "none under the host root" };
  if (site.clusterStepStarted) {
    return {
      ...base,
      status: "pass",
      detail: `${found.join(", ")}: installed by this site's earlier install`,
    };
  }
  return {
    ...base,
    status: "fail",
    detail: `${found.join(", ")} present, not installed by Airlock`,
    hint: "install into that cluster with --kubeconfig, or remove it first (`/usr/local/bin/k3s-uninstall.sh`)",
  };
};

function isKubeconfig(text: string): boolean {
  try {
    const document = parse(text) as { kind?: unknown; clusters?: unknown } | null;
    return document?.kind === "Config" && Array.isArray(document.clusters);
  } catch {
    return false;
  }
}

/** With an existing cluster, its kubeconfig must be there; whether the cluster answers is install's to find. */
export const checkKubeconfig: Check = async ({ host, kubeconfig }) => {
  const base = { id: "kubeconfig", title: "Kubeconfig" };
  const path = kubeconfig ?? "";
  const text = await host.readFile(path);
  const hint = "pass the kubeconfig of the cluster to install into (`kubectl config view --raw` writes one)";
  if (text === undefined) return { ...base, status: "fail", detail: `${path} cannot be read`, hint };
  if (!isKubeconfig(text)) {
    return {
      ...base,
      status: "fail",
      detail: `${path} is not a kubeconfig (no kind: Config with clusters)`,
      hint,
    };
  }
  return { ...base, status: "pass", detail: `${path} is readable` };
};
