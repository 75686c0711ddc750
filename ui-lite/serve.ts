import { readFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { RequestListener } from "node:http";
import { isIP } from "node:net";
import type { EnsuredCertificate, Pki } from "../installer/pki/index.js";
import { AirlockError, errnoCode } from "../registry/oci/index.js";

export const DEFAULT_CONSOLE_PORT = 8443;
export const CONSOLE_CERTIFICATE = "console";

/** The console's TLS certificate from the site CA: every host it is reached by, and always loopback. */
export function consoleCertificate(pki: Pki, hosts: string[] = []): Promise<EnsuredCertificate> {
  const dnsNames = hosts.filter((host) => isIP(host) === 0);
  const ipAddresses = hosts.filter((host) => isIP(host) !== 0);
  return pki.ensureCertificate({
    name: CONSOLE_CERTIFICATE,
    kind: "server",
    commonName: "Airlock console",
    dnsNames: [...new Set(["localhost", ...dnsNames])],
    ipAddresses: [...new Set(["127.0.0.1", ...ipAddresses])],
  });
}

export interface ConsoleServerOptions {
  /** The console app (`createConsoleApp`). */
  app: RequestListener;
  listen?: { host?: string; port?: number };
  /** A certificate and key to serve; else one is issued from the site CA for `hosts`. */
  tls: { certFile: string; keyFile: string } | { pki: Pki; hosts?: string[] };
}

export interface ConsoleServer {
  server: Server;
  url: string;
  port: number;
  /** The certificate served, as PEM: what a client pins. */
  certificatePem: string;
  close(): Promise<void>;
}

/** Serves the console over HTTPS (default port 8443); plain HTTP is not offered: the cookies are Secure. */
export async function startConsole(options: ConsoleServerOptions): Promise<ConsoleServer> {
  const files =
    "pki" in options.tls ? await consoleCertificate(options.tls.pki, options.tls.hosts) : options.tls;
  const [cert, key] = await Promise.all([readFile(files.certFile, "utf8"), readFile(files.keyFile, "utf8")]);
  const server = createServer({ cert, key, minVersion: "TLSv1.2" }, options.app);
  const host = options.listen?.host ?? "0.0.0.0";
  const port = options.listen?.port ?? DEFAULT_CONSOLE_PORT;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) => {
      const code = errnoCode(error);
      reject(
        new AirlockError("UI_LISTEN_FAILED", `cannot listen on ${host}:${port}: ${error.message}`, {
          where: `${host}:${port}`,
          hint:
            code === "EADDRINUSE"
              ? "another process has the port: pass another port"
              : "check the address and port",
          cause: error,
        }),
      );
    });
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const shownHost = host === "0.0.0.0" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return {
    server,
    url: `https://${shownHost}:${bound}`,
    port: bound,
    certificatePem: cert,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
