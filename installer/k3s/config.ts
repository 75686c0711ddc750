import { stringify } from "yaml";
import type { K3sRole } from "./layout.js";

export interface K3sSettings {
  /** The node's name in the cluster (default: the host name). */
  nodeName?: string | undefined;
  /** Extra names and addresses the API server's certificate covers. */
  tlsSans?: readonly string[] | undefined;
  dataDir?: string | undefined;
  /** Packaged components not to deploy (the plane needs none of traefik, servicelb, metrics-server). */
  disable?: readonly string[] | undefined;
}

export const DEFAULT_DISABLED = ["traefik", "servicelb", "metrics-server"];

/**
 * `/etc/rancher/k3s/config.yaml`. `disable-default-registry-endpoint` keeps containerd from falling
 * back to a registry's own address when Airlock's does not answer: in an air gap that fallback can
 * only hang.
 */
export function k3sConfigYaml(role: K3sRole, settings: K3sSettings, nodeName: string): string {
  const config: Record<string, unknown> = {
    "node-name": nodeName,
    "disable-default-registry-endpoint": true,
  };
  if (settings.dataDir !== undefined) config["data-dir"] = settings.dataDir;
  if (role === "server") {
    config["write-kubeconfig-mode"] = "0600";
    if ((settings.tlsSans ?? []).length > 0) config["tls-san"] = [...settings.tlsSans!];
    config.disable = [...(settings.disable ?? DEFAULT_DISABLED)];
  }
  return `# Written by Airlock from the install's values.\n${stringify(config)}`;
}
