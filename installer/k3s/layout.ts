/**
 * Where k3s keeps what Airlock installs and reads, as the host sees it (the paths k3s's own install
 * script uses), for a node whose k3s data dir is `dataDir`.
 */
export const K3S_BINARY = "/usr/local/bin/k3s";
export const K3S_CONFIG_DIR = "/etc/rancher/k3s";
export const K3S_CONFIG = `${K3S_CONFIG_DIR}/config.yaml`;
export const K3S_REGISTRIES = `${K3S_CONFIG_DIR}/registries.yaml`;
export const K3S_KUBECONFIG = `${K3S_CONFIG_DIR}/k3s.yaml`;
/** The site CA the node's containerd trusts Airlock's registry by (registries.yaml's ca_file). */
export const K3S_REGISTRY_CA = `${K3S_CONFIG_DIR}/airlock-registry-ca.pem`;
export const K3S_DEFAULT_DATA_DIR = "/var/lib/rancher/k3s";

export type K3sRole = "server" | "agent";

export interface K3sPaths {
  /** The folder k3s imports image archives from at start (air-gap images). */
  imagesDir: string;
  /** The server's join secret, which agents present (server only). */
  nodeToken: string;
  /** The cluster's server CA, whose hash a join token pins (server only). */
  serverCa: string;
  unit: string;
  envFile: string;
}

export function k3sPaths(role: K3sRole, dataDir = K3S_DEFAULT_DATA_DIR): K3sPaths {
  const unit = role === "server" ? "k3s.service" : "k3s-agent.service";
  return {
    imagesDir: `${dataDir}/agent/images`,
    nodeToken: `${dataDir}/server/node-token`,
    serverCa: `${dataDir}/server/tls/server-ca.crt`,
    unit,
    envFile: `/etc/systemd/system/${unit}.env`,
  };
}
