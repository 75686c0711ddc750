import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { AirlockError } from "../../../registry/oci/index.js";
import { hostsTomlFiles, parseRegistriesYaml, type RegistriesConfig } from "./registries.js";

export interface NodeRegistriesSource {
  registriesYaml?: string | undefined;
  registriesFile?: string | undefined;
  hostRoot?: string | undefined;
}

/** A node path as this host sees it: under the node's root. */
function underRoot(root: string, path: string): string {
  return isAbsolute(path) ? join(root, path) : path;
}

/** The config with its TLS files' paths taken under the node's root. */
function rooted(config: RegistriesConfig, root: string): RegistriesConfig {
  const configs = Object.fromEntries(
    Object.entries(config.configs).map(([host, hostConfig]) => {
      const tls = hostConfig.tls;
      if (tls === undefined) return [host, hostConfig];
      const at = (path: string | undefined): string | undefined =>
        path === undefined ? undefined : underRoot(root, path);
      return [
        host,
        {
          ...hostConfig,
          tls: { ...tls, ca_file: at(tls.ca_file), cert_file: at(tls.cert_file), key_file: at(tls.key_file) },
        },
      ];
    }),
  );
  return { ...config, configs };
}

/**
 * The node's registries.yaml and the containerd `certs.d/<host>/hosts.toml` files made from it. Text
 * given up front is the config for good; a file is read as k3s's agent reads it, before a pull, and
 * its hosts.toml files are made again whenever its content changed.
 */
export class NodeRegistries {
  private text: string | undefined;
  private config: RegistriesConfig | undefined;
  private written = new Set<string>();
  /** One read-and-write at a time: pulls in parallel see one set of hosts.toml files. */
  private turn: Promise<unknown> = Promise.resolve();

  constructor(
    readonly hostsDir: string,
    private readonly source: NodeRegistriesSource,
  ) {}

  /** The config a pull starting now follows, its hosts.toml files in place. */
  current(): Promise<RegistriesConfig> {
    const next = this.turn.then(() => this.refresh());
    this.turn = next.catch(() => undefined);
    return next;
  }

  private async read(): Promise<{ text: string; where: string }> {
    if (this.source.registriesYaml !== undefined)
      return { text: this.source.registriesYaml, where: "registries.yaml" };
    const file = this.source.registriesFile;
    if (file === undefined) {
      throw new AirlockError("NODE_REGISTRIES_INVALID", "the node was given no registries.yaml", {
        where: "containerd node options",
        hint: "give the node registriesYaml (its text) or registriesFile (its path)",
      });
    }
    const path = underRoot(this.source.hostRoot ?? "/", file);
    try {
      return { text: await readFile(path, "utf8"), where: path };
    } catch (error) {
      throw new AirlockError("NODE_REGISTRIES_INVALID", `cannot read ${path}: ${(error as Error).message}`, {
        where: path,
        hint: "the installer writes registries.yaml before the node's first pull: look at the cluster step",
      });
    }
  }

  private async refresh(): Promise<RegistriesConfig> {
    const { text, where } = await this.read();
    if (text === this.text && this.config !== undefined) return this.config;
    const parsed = parseRegistriesYaml(text, where);
    const config = this.source.hostRoot === undefined ? parsed : rooted(parsed, this.source.hostRoot);
    const files = hostsTomlFiles(config);
    for (const host of this.written) {
      if (!files.has(host)) await rm(join(this.hostsDir, host), { recursive: true, force: true });
    }
    for (const [host, toml] of files) {
      await mkdir(join(this.hostsDir, host), { recursive: true });
      await writeFile(join(this.hostsDir, host, "hosts.toml"), toml);
    }
    this.written = new Set(files.keys());
    this.text = text;
    this.config = config;
    return config;
  }
}
