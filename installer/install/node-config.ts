import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { HostRoot } from "../host/index.js";
import { registriesYaml, K3S_REGISTRY_CA } from "../k3s/index.js";
import type { RegistryAccess } from "./types.js";

/** Under the data dir: what the operator copies onto each node of an existing cluster. */
export const NODE_CONFIG_DIR = "node-config";
const CONTAINERD_CERTS_DIR = "/etc/containerd/certs.d";

export interface NodeConfig {
  dir: string;
  /** Paths relative to `dir`. */
  files: string[];
  instructions: string;
}

/** The registry names the plane's images carry (the rendered one, if not the endpoint) and the endpoint itself. */
function registryNames(access: RegistryAccess, imageRegistry: string): string[] {
  return imageRegistry === access.endpoint ? [access.endpoint] : [imageRegistry, access.endpoint];
}

/** k3s's registries.yaml: every name the images use goes to Airlock's registry, with the CA and pull account. */
function nodeRegistriesYaml(access: RegistryAccess, imageRegistry: string): string {
  return registriesYaml({
    registry: access.endpoint,
    mirrorFor: [imageRegistry],
    caFile: K3S_REGISTRY_CA,
    username: access.username,
    password: access.password,
  });
}

/** containerd's hosts.toml for one registry name: pulls go to Airlock's registry, trusted by the site CA. */
export function nodeHostsToml(access: RegistryAccess, name: string): string {
  return [
    `server = ${JSON.stringify(`https://${access.endpoint}`)}`,
    "",
    `[host.${JSON.stringify(`https://${access.endpoint}`)}]`,
    '  capabilities = ["pull", "resolve"]',
    `  ca = ${JSON.stringify(`${CONTAINERD_CERTS_DIR}/${name}/ca.crt`)}`,
    "",
  ].join("\n");
}

/**
 * Writes the files each node of an existing cluster needs to pull from Airlock's registry into
 * `<dataDir>/node-config/` (0600: registries.yaml holds the pull account's password).
 */
export async function writeNodeConfig(
  dataDir: string,
  access: RegistryAccess,
  imageRegistry: string,
): Promise<NodeConfig> {
  const dir = join(dataDir, NODE_CONFIG_DIR);
  const files = new HostRoot("/");
  const caPem = await readFile(access.caFile, "utf8");
  const written: [string, string, number][] = [
    ["registries.yaml", nodeRegistriesYaml(access, imageRegistry), 0o600],
    ["airlock-registry-ca.pem", caPem, 0o644],
  ];
  for (const name of registryNames(access, imageRegistry)) {
    written.push([`certs.d/${name}/hosts.toml`, nodeHostsToml(access, name), 0o644]);
    written.push([`certs.d/${name}/ca.crt`, caPem, 0o644]);
  }
  for (const [path, content, mode] of written) await files.writeFile(join(dir, path), content, mode);
  return {
    dir,
    files: written.map(([path]) => path),
    instructions:
      `on each node: k3s — copy registries.yaml to /etc/rancher/k3s/registries.yaml and airlock-registry-ca.pem to ${K3S_REGISTRY_CA}, then restart k3s; ` +
      `plain containerd — copy certs.d/ into ${CONTAINERD_CERTS_DIR}/ (config_path) and give it the pull account in registries.yaml`,
  };
}
