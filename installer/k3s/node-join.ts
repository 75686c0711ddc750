import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isDeepStrictEqual } from "node:util";
import { parse } from "yaml";
import type { VerifyResult } from "../../bundle/index.js";
import type { HostRoot, Systemd } from "../host/index.js";
import { AirlockError, type OperationOptions } from "../../registry/oci/index.js";
import { extractK3sFiles } from "./bundle-files.js";
import { installK3s, type K3sInstallResult } from "./install.js";
import { createJoinToken, verifyServerCa, type JoinToken } from "./join.js";
import { K3S_CONFIG, K3S_REGISTRIES, K3S_REGISTRY_CA } from "./layout.js";
import { registriesYaml } from "./registries.js";

interface ParsedRegistries {
  mirrors?: Record<string, { endpoint?: string[]; rewrite?: Record<string, string> }>;
  configs?: Record<string, { auth?: { username?: string; password?: string }; tls?: { ca_file?: string } }>;
}

/**
 * The registry configuration a k3s server Airlock installed uses, read back from its registries.yaml
 * and the CA that file names, so a joining node gets exactly the same one. Refused when the file is
 * not one `registriesYaml` writes (edited by hand): the agent would then pull differently.
 */
export async function serverRegistry(host: HostRoot): Promise<JoinToken["registry"]> {
  const [text, caPem] = [await host.readFile(K3S_REGISTRIES), await host.readFile(K3S_REGISTRY_CA)];
  if (text === undefined || caPem === undefined) {
    throw new AirlockError(
      "K3S_NOT_INSTALLED",
      "this host has no registry configuration Airlock wrote for k3s",
      {
        where: text === undefined ? K3S_REGISTRIES : K3S_REGISTRY_CA,
        hint: "run `airlock install` on this host first; join tokens come from the server",
      },
    );
  }
  const written = parse(text) as ParsedRegistries;
  const [address, ...others] = Object.keys(written.configs ?? {});
  const auth = address === undefined ? undefined : written.configs![address]!.auth;
  const mirrorFor = Object.keys(written.mirrors ?? {}).filter((name) => name !== address);
  const rewrite = Object.values(written.mirrors ?? {}).find(
    (mirror) => mirror.rewrite !== undefined,
  )?.rewrite;
  const prefix = /^(.+)\/\$1$/.exec(rewrite?.["^(.*)$"] ?? "")?.[1] ?? "";
  const registry = {
    address: address ?? "",
    caPem,
    username: auth?.username ?? "",
    password: auth?.password ?? "",
    mirrorFor,
    prefix,
  };
  if (others.length > 0 || !isDeepStrictEqual(parse(agentRegistries(registry)), written)) {
    throw new AirlockError(
      "K3S_REGISTRIES_UNKNOWN",
      `${K3S_REGISTRIES} is not the one Airlock writes, so a new node could not be given the same`,
      {
        where: K3S_REGISTRIES,
        hint: "run `airlock install` again on this host to restore it, then print the join token",
      },
    );
  }
  return registry;
}

/**
 * The join token of the k3s server under `host`: its node token and server CA from the data dir its
 * config.yaml names, and the registry configuration it uses.
 */
export async function serverJoinToken(host: HostRoot, server: string): Promise<string> {
  const config = await host.readFile(K3S_CONFIG);
  const dataDir = config === undefined ? undefined : (parse(config) as { "data-dir"?: string })["data-dir"];
  return createJoinToken({ host, server, dataDir, registry: await serverRegistry(host) });
}

/** registries.yaml for a node of the site the token's registry describes. */
export function agentRegistries(registry: JoinToken["registry"]): string {
  return registriesYaml({
    registry: registry.address,
    mirrorFor: registry.mirrorFor ?? [],
    prefix: registry.prefix ?? "",
    caFile: K3S_REGISTRY_CA,
    username: registry.username,
    password: registry.password,
  });
}

export interface JoinNodeOptions extends OperationOptions {
  host: HostRoot;
  systemd: Systemd;
  token: JoinToken;
  /** The bundle the server was installed from (its parts, in order). */
  bundle: string[];
  publicKey?: string | undefined;
  nodeName?: string | undefined;
  /** How long the server's /cacerts may take to answer. */
  timeoutMs?: number | undefined;
}

export interface JoinNodeResult extends K3sInstallResult {
  server: string;
  bundle: Pick<VerifyResult, "name" | "version" | "digest" | "signature">;
}

/**
 * A k3s agent joined to the token's server, from the same bundle with the same registry
 * configuration. The server's CA is checked against the token's pin first, then the bundle is
 * verified while its k3s files stream out to a temporary folder: either failing writes nothing on
 * the host. A re-run changes nothing.
 */
export async function joinNode(options: JoinNodeOptions): Promise<JoinNodeResult> {
  const { token } = options;
  await verifyServerCa(token, options.timeoutMs);
  const dir = await mkdtemp(join(tmpdir(), "airlock-join-"));
  try {
    const files = await extractK3sFiles(options.bundle, dir, options);
    const installed = await installK3s({
      host: options.host,
      systemd: options.systemd,
      role: "agent",
      binary: files.binary,
      imageArchives: files.imageArchives,
      registries: agentRegistries(token.registry),
      registryCaPem: token.registry.caPem,
      settings: { nodeName: options.nodeName },
      join: { server: token.server, token: token.k3sToken },
      signal: options.signal,
      onProgress: options.onProgress,
    });
    const { name, version, digest, signature } = files.verified;
    return { ...installed, server: token.server, bundle: { name, version, digest, signature } };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
