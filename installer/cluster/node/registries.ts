import { parse as parseYaml } from "yaml";
import { z } from "zod";
import { AirlockError, parseReference } from "../../../registry/oci/index.js";

/**
 * k3s's `registries.yaml` turned into containerd `certs.d/<host>/hosts.toml` files, as k3s's agent
 * writes them: one directory per mirrored registry (`_default` for `*`), one `[host]` per endpoint
 * with `override_path` and the endpoint's TLS files from `configs`. Auth is not in hosts.toml (k3s
 * gives it to the CRI plugin): the node hands it to `ctr images pull --user`.
 */

const tlsSchema = z
  .object({
    ca_file: z.string().optional(),
    cert_file: z.string().optional(),
    key_file: z.string().optional(),
    insecure_skip_verify: z.boolean().optional(),
  })
  .strict();
const authSchema = z
  .object({
    username: z.string().optional(),
    password: z.string().optional(),
    auth: z.string().optional(),
    identitytoken: z.string().optional(),
  })
  .strict();
const registriesSchema = z
  .object({
    mirrors: z
      .record(
        z.string(),
        z
          .object({
            endpoint: z.array(z.string().url()).default([]),
            rewrite: z.record(z.string(), z.string()).optional(),
          })
          .strict(),
      )
      .default({}),
    configs: z
      .record(z.string(), z.object({ auth: authSchema.optional(), tls: tlsSchema.optional() }).strict())
      .default({}),
  })
  .strict();

export type RegistriesConfig = z.infer<typeof registriesSchema>;

export function parseRegistriesYaml(text: string, where = "registries.yaml"): RegistriesConfig {
  const parsed = registriesSchema.safeParse(parseYaml(text) ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new AirlockError("NODE_REGISTRIES_INVALID", `${issue.path.join(".")}: ${issue.message}`, {
      where,
      hint: "write registries.yaml as k3s documents it: mirrors (endpoint, rewrite) and configs (auth, tls)",
    });
  }
  return parsed.data;
}

/** `host[:port]` of an endpoint URL, the key `configs` uses for it. */
function hostOf(endpoint: string): string {
  return new URL(endpoint).host;
}

/**
 * A rewrite as containerd 1.6 (Debian's) can follow it: `^(.*)$` → `PREFIX/$1`, which is a path
 * prefix on the endpoint (what `airlock registry mirror` writes). k3s's own containerd also takes
 * other rewrites; this one has no place for them, so they are refused rather than ignored.
 */
function rewritePrefix(registry: string, rewrite: Record<string, string> | undefined): string {
  const entries = Object.entries(rewrite ?? {});
  if (entries.length === 0) return "";
  const [pattern, replacement] = entries[0]!;
  const prefix = /^(.+)\/\$1$/.exec(replacement)?.[1];
  if (entries.length > 1 || pattern !== "^(.*)$" || prefix === undefined) {
    throw new AirlockError(
      "NODE_REWRITE_UNSUPPORTED",
      `the rewrite ${JSON.stringify(Object.fromEntries(entries))} of ${registry} is not a repository prefix`,
      {
        where: `registries.yaml mirrors.${registry}.rewrite`,
        hint: 'containerd 1.6 follows only "^(.*)$": "PREFIX/$1" (a prefix on the endpoint path)',
      },
    );
  }
  return prefix;
}

function tlsLines(config: RegistriesConfig["configs"][string] | undefined, indent: string): string[] {
  const tls = config?.tls;
  if (tls === undefined) return [];
  return [
    ...(tls.ca_file === undefined ? [] : [`${indent}ca = [${JSON.stringify(tls.ca_file)}]`]),
    ...(tls.cert_file === undefined || tls.key_file === undefined
      ? []
      : [`${indent}client = [[${JSON.stringify(tls.cert_file)}, ${JSON.stringify(tls.key_file)}]]`]),
    ...(tls.insecure_skip_verify === true ? [`${indent}skip_verify = true`] : []),
  ];
}

/**
 * `hosts.toml` per registry directory name. The root `server` is the registry itself where it is
 * one of its endpoints or has a config of its own; otherwise the last mirror endpoint, since an
 * air-gapped node has no upstream to fall back to (k3s's `--disable-default-registry-endpoint`) and
 * the upstream's name must not even be looked up.
 */
export function hostsTomlFiles(config: RegistriesConfig): Map<string, string> {
  const files = new Map<string, string>();
  const header = "# Written by Airlock's containerd node from registries.yaml, as k3s's agent writes it.";
  for (const [registry, mirror] of Object.entries(config.mirrors)) {
    const prefix = rewritePrefix(registry, mirror.rewrite);
    const path = prefix === "" ? "/v2" : `/v2/${prefix}`;
    const lines = [header];
    const endpointUrl = (endpoint: string): string =>
      `${endpoint.replace(/\/+$/, "").replace(/\/v2$/, "")}${path}`;
    const ownEndpoint = mirror.endpoint.some((endpoint) => hostOf(endpoint) === registry);
    const direct =
      registry !== "*" &&
      (ownEndpoint || config.configs[registry] !== undefined || mirror.endpoint.length === 0);
    const last = mirror.endpoint.at(-1);
    if (direct) {
      lines.push(
        `server = ${JSON.stringify(`https://${registry}`)}`,
        ...tlsLines(config.configs[registry], ""),
      );
    } else if (last !== undefined) {
      lines.push(
        `server = ${JSON.stringify(endpointUrl(last))}`,
        "override_path = true",
        ...tlsLines(config.configs[hostOf(last)], ""),
      );
    }
    for (const endpoint of mirror.endpoint) {
      lines.push(
        "",
        `[host.${JSON.stringify(endpointUrl(endpoint))}]`,
        '  capabilities = ["pull", "resolve"]',
        "  override_path = true",
        ...tlsLines(config.configs[hostOf(endpoint)], "  "),
      );
    }
    files.set(registry === "*" ? "_default" : registry, `${lines.join("\n")}\n`);
  }
  // A registry with a config and no mirror is pulled from directly, with that config's TLS files.
  for (const [host, hostConfig] of Object.entries(config.configs)) {
    if (files.has(host) || host === "*") continue;
    const lines = [header, `server = ${JSON.stringify(`https://${host}`)}`, ...tlsLines(hostConfig, "")];
    files.set(host, `${lines.join("\n")}\n`);
  }
  return files;
}

/**
 * The `user:password` for pulling `image`: the config of the first endpoint its registry's mirror
 * names that has auth, else the registry's own. `auth` is base64 of `user:password`, as in k3s.
 */
export function pullCredentials(config: RegistriesConfig, image: string): string | undefined {
  const registry = parseReference(image).registry ?? "docker.io";
  const mirror = config.mirrors[registry] ?? config.mirrors["*"];
  const hosts = [...(mirror?.endpoint ?? []).map(hostOf), registry];
  for (const host of hosts) {
    const auth = config.configs[host]?.auth;
    if (auth?.username !== undefined) return `${auth.username}:${auth.password ?? ""}`;
    if (auth?.auth !== undefined) return Buffer.from(auth.auth, "base64").toString("utf8");
  }
  return undefined;
}
