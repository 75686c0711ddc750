import { readFile } from "node:fs/promises";
import type { Logger } from "../../registry/oci/index.js";
import type { Store } from "../../registry/store/index.js";
import type { Pki } from "../pki/index.js";
import type { State } from "../state/index.js";
import {
  consoleCertificate,
  createConsoleApp,
  startConsole,
  type ConsoleUpgradeHooks,
} from "../../ui-lite/index.js";
import { drainServer } from "./drain.js";
import { listenHosts } from "./registry.js";

export interface ConsoleConfig {
  /** `host:port` the console listens on (default port 8443). */
  listen: { host: string; port: number };
  /** More names or addresses the console is reached by, for its certificate. */
  hostnames: string[];
}

export interface SiteConsole {
  url: string;
  /** The certificate files served now. */
  certFile: string;
  /** Serves new connections with the console's certificate as the site CA now issues it. */
  reload(): Promise<void>;
  /** Stops accepting, lets requests in flight finish for up to `drainMs`, then cuts what is left. */
  close(drainMs: number): Promise<void>;
}

export interface SiteConsoleOptions {
  dataDir: string;
  store: Store;
  state: State;
  pki: Pki;
  config: ConsoleConfig;
  logger: Logger;
  clock?: () => Date;
  upgrades?: ConsoleUpgradeHooks;
}

function certificateHosts(config: ConsoleConfig): string[] {
  const listen = config.listen.host.includes(":") ? `[${config.listen.host}]` : config.listen.host;
  return [...listenHosts(`${listen}:${config.listen.port}`), ...config.hostnames];
}

/** The web console over HTTPS with a certificate from the site CA, on its own port. */
export async function startSiteConsole(options: SiteConsoleOptions): Promise<SiteConsole> {
  const { config, pki, logger } = options;
  const hosts = certificateHosts(config);
  const certificate = await consoleCertificate(pki, hosts);
  const app = createConsoleApp({
    dataDir: options.dataDir,
    store: options.store,
    state: options.state,
    pki,
    clock: options.clock,
    logger,
    upgrades: options.upgrades,
  });
  const running = await startConsole({
    app,
    listen: config.listen,
    tls: { certFile: certificate.certFile, keyFile: certificate.keyFile },
  });
  let certFile = certificate.certFile;
  return {
    url: running.url,
    get certFile() {
      return certFile;
    },
    async reload() {
      try {
        const renewed = await consoleCertificate(pki, hosts);
        const [cert, key] = await Promise.all([
          readFile(renewed.certFile, "utf8"),
          readFile(renewed.keyFile, "utf8"),
        ]);
        running.server.setSecureContext({ cert, key, minVersion: "TLSv1.2" });
        certFile = renewed.certFile;
        logger.info({ certificate: renewed.action }, `console: reloaded certificate ${renewed.certFile}`);
      } catch (error) {
        logger.warn({ err: error }, "console: reload failed, still serving the previous certificate");
      }
    },
    close: (drainMs) => drainServer(running.server, drainMs),
  };
}
