import { stringify } from "yaml";

export interface RegistryMirrorOptions {
  /** Airlock's registry as the nodes reach it, `host:port`: the plane's images are pinned to it. */
  registry: string;
  /** Other registries the plane's images name; their pulls go to Airlock's registry too. */
  mirrorFor?: readonly string[];
  /** The repository prefix those registries' images have in Airlock's registry ("" for none). */
  prefix?: string;
  /** The CA file the node trusts Airlock's registry by, as a path on the node. */
  caFile: string;
  /** The cluster's pull account. */
  username: string;
  password: string;
}

/**
 * k3s's `registries.yaml` for a site whose only registry is Airlock's: pulls of Airlock's registry
 * and of every registry the plane's images name go to it (with `rewrite` adding the prefix), over
 * TLS with the site CA and the cluster's pull account. k3s writes containerd's hosts.toml from it.
 */
export function registriesYaml(options: RegistryMirrorOptions): string {
  const endpoint = [`https://${options.registry}`];
  const prefix = options.prefix ?? "";
  const mirrors: Record<string, { endpoint: string[]; rewrite?: Record<string, string> }> = {
    [options.registry]: { endpoint },
  };
  for (const upstream of options.mirrorFor ?? []) {
    if (upstream === options.registry) continue;
    mirrors[upstream] = prefix === "" ? { endpoint } : { endpoint, rewrite: { "^(.*)$": `${prefix}/$1` } };
  }
  const document = {
    mirrors,
    configs: {
      [options.registry]: {
        auth: { username: options.username, password: options.password },
        tls: { ca_file: options.caFile },
      },
    },
  };
  return `# Written by Airlock: every pull goes to the site's own registry.\n${stringify(document)}`;
}
