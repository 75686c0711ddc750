import { hostname, networkInterfaces } from "node:os";
import { AirlockError, type Logger } from "../../registry/oci/index.js";
import type { Store } from "../../registry/store/index.js";
import {
  Authenticator,
  loadHtpasswd,
  startRegistryServer,
  type RunningRegistry,
} from "../../registry/server/index.js";
import { openPki, registryServerCertificate } from "../pki/index.js";

/** Where the registry's certificate comes from: given files, the site CA (issued for hosts), or none. */
export type RegistryTls =
  | { kind: "files"; certFile: string; keyFile: string }
  | { kind: "site-ca"; hosts: string[] }
  | { kind: "plain-http" };

export interface RegistryConfig {
  /** `host:port`; port 0 picks a free one. */
  listen: string;
  tls: RegistryTls;
  /** The accounts file and how clients present them; undefined for anonymous pulls only. */
  auth: { mode: "basic" | "token"; file: string } | undefined;
  pushUsers: string[];
  anonymousPull: boolean;
  readOnly: boolean;
}

/** Airlock's registry as a part of a running process: reloadable, closable. */
export interface SiteRegistry {
  url: string;
  /** The CA clients trust, when the certificate is the site CA's. */
  caFile: string | undefined;
  /**
   * The certificate read again (a site-CA one re-issued if it no longer holds, and after `airlock pki
   * rotate`) and the accounts file read again. What fails to load is reported and the old stays in
   * service; connections already open stay open.
   */
  reload(): Promise<void>;
  /** Stops accepting, lets pulls in flight finish for up to `drainMs`, then cuts what is left. */
  close(drainMs: number): Promise<void>;
}

/** The host's own addresses, for a registry or console listening on all of them. */
export function hostAddresses(): string[] {
  const addresses = Object.values(networkInterfaces())
    .flat()
    .filter((info) => info !== undefined && !info.internal)
    .map((info) => info!.address);
  return [hostname(), ...addresses];
}

/** The hosts a certificate for a listener on `listen` must name: its host, or every address for a wildcard. */
export function listenHosts(listen: string): string[] {
  const host = listen.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  return ["0.0.0.0", "::", ""].includes(host) ? hostAddresses() : [host];
}

interface TlsFiles {
  certFile: string;
  keyFile: string;
  caFile?: string;
}

async function tlsFiles(
  config: RegistryConfig,
  dataDir: string,
  logger: Logger,
): Promise<TlsFiles | undefined> {
  const { tls } = config;
  if (tls.kind === "plain-http") return undefined;
  if (tls.kind === "files") return { certFile: tls.certFile, keyFile: tls.keyFile };
  const certificate = await registryServerCertificate(openPki(dataDir, { logger }), {
    hosts: [...listenHosts(config.listen), ...tls.hosts],
  });
  return { certFile: certificate.certFile, keyFile: certificate.keyFile, caFile: certificate.caFile };
}

/** The accounts of the auth file, checked against the push users. */
async function loadAccounts(config: RegistryConfig, file: string): Promise<Map<string, string>> {
  const users = await loadHtpasswd(file);
  const unknown = config.pushUsers.filter((name) => !users.has(name));
  if (unknown.length > 0) {
    throw new AirlockError("USAGE", `--push-user ${unknown.join(", ")}: no such account in ${file}`);
  }
  return users;
}

function reasonOf(error: unknown): string {
  return error instanceof AirlockError ? `${error.code}: ${error.message}` : String(error);
}

/** Starts Airlock's registry over the store, TLS and accounts as configured. */
export async function startSiteRegistry(
  store: Store,
  dataDir: string,
  config: RegistryConfig,
  logger: Logger,
): Promise<SiteRegistry> {
  const authenticator =
    config.auth === undefined
      ? undefined
      : new Authenticator({
          mode: config.auth.mode,
          users: await loadAccounts(config, config.auth.file),
          pushUsers: new Set(config.pushUsers),
          anonymousPull: config.anonymousPull,
        });
  const tls = await tlsFiles(config, dataDir, logger);
  const server: RunningRegistry = await startRegistryServer(store, {
    listen: config.listen,
    tls,
    auth: authenticator,
    allowPush: authenticator !== undefined && !config.readOnly && config.pushUsers.length > 0,
    logger,
  });
  const reload = async (): Promise<void> => {
    const done: string[] = [];
    try {
      const files = await tlsFiles(config, dataDir, logger);
      if (files !== undefined) {
        await server.reloadTls(files);
        done.push(`certificate ${files.certFile}`);
      }
      if (authenticator !== undefined && config.auth !== undefined) {
        authenticator.replaceAccounts(
          await loadAccounts(config, config.auth.file),
          new Set(config.pushUsers),
        );
        done.push(`accounts ${config.auth.file}`);
      }
      logger.info({}, `registry: reloaded ${done.length === 0 ? "nothing" : done.join(" and ")}`);
    } catch (error) {
      logger.warn(
        { err: error },
        `registry: reload failed, still serving the previous ${done.length > 0 ? "accounts" : "certificate and accounts"}: ${reasonOf(error)}`,
      );
    }
  };
  return { url: server.url, caFile: tls?.caFile, reload, close: (drainMs) => server.close(drainMs) };
}
