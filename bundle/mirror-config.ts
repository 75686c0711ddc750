import type { MirrorResult } from "./mirror.js";

export interface MirrorConfigOptions {
  /** The target registry, `host[:port]`, and the repository prefix mirrored into. */
  host: string;
  prefix: string;
  insecureHttp?: boolean;
  /** The CA file the nodes trust the target by, as a path on the nodes. */
  caFile?: string | undefined;
  /** Registries whose names the cluster's image references carry (unqualified names are docker.io's). */
  mirrorFor: string[];
}

function upstreamServer(host: string): string {
  return host === "docker.io" ? "https://registry-1.docker.io" : `https://${host}`;
}

/**
 * What the site's nodes need to pull the mirrored images: `mirror-map.json` (source ref → mirrored
 * ref with digest), a k3s `registries.yaml` and containerd `hosts.toml` files (one per registry
 * name, under `certs.d/<name>/`) sending those pulls to the mirror, prefix included.
 */
export function mirrorClientConfig(result: MirrorResult, options: MirrorConfigOptions): Map<string, string> {
  const scheme = options.insecureHttp === true ? "http" : "https";
  const endpoint = `${scheme}://${options.host}`;
  const files = new Map<string, string>();
  const map = Object.fromEntries(
    result.images
      .filter((image) => image.status !== "failed")
      .map((image) => [image.source, `${image.target}@${image.digest}`]),
  );
  files.set("mirror-map.json", `${JSON.stringify(map, null, 2)}\n`);

  const registries = ["mirrors:"];
  for (const name of options.mirrorFor) {
    registries.push(`  ${JSON.stringify(name)}:`, "    endpoint:", `      - ${JSON.stringify(endpoint)}`);
    if (options.prefix !== "") {
      registries.push("    rewrite:", `      "^(.*)$": ${JSON.stringify(`${options.prefix}/$1`)}`);
    }
  }
  if (options.caFile !== undefined) {
    registries.push(
      "configs:",
      `  ${JSON.stringify(options.host)}:`,
      "    tls:",
      `      ca_file: ${JSON.stringify(options.caFile)}`,
    );
  }
  files.set("registries.yaml", `${registries.join("\n")}\n`);

  for (const name of options.mirrorFor) {
    const mirrorUrl = options.prefix === "" ? endpoint : `${endpoint}/v2/${options.prefix}`;
    const lines = [
      `server = ${JSON.stringify(upstreamServer(name))}`,
      "",
      `[host.${JSON.stringify(mirrorUrl)}]`,
      '  capabilities = ["pull", "resolve"]',
      ...(options.prefix === "" ? [] : ["  override_path = true"]),
      ...(options.caFile === undefined ? [] : [`  ca = ${JSON.stringify(options.caFile)}`]),
    ];
    files.set(`certs.d/${name}/hosts.toml`, `${lines.join("\n")}\n`);
  }
  return files;
}
