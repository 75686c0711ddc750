import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from "node:http";
import { createServer as createHttpsServer, type Server as HttpsServer } from "node:https";
import { readFile } from "node:fs/promises";
import type { AddressInfo, Socket } from "node:net";
import { createSecureContext } from "node:tls";
import { AirlockError, errnoCode, silentLogger } from "../oci/index.js";
import type { Store } from "../store/index.js";
import { createRegistryHandler, type RegistryHandlerOptions } from "./handler.js";

export interface ServeOptions extends RegistryHandlerOptions {
  /** host:port; port 0 picks a free one. */
  listen: string;
  tls?: { certFile: string; keyFile: string } | undefined;
  /**
   * A connection whose client stopped reading the answer (or sending its body) for this long is cut,
   * freeing the response's buffers and file; one that progresses, however slowly, is not. 60 s.
   */
  stalledClientTimeoutMs?: number;
}

const DEFAULT_STALLED_CLIENT_TIMEOUT_MS = 60_000;
/** Time for a request's headers; its body has no overall limit (an upload may take hours). */
const HEADERS_TIMEOUT_MS = 60_000;

export interface RunningRegistry {
  /** Base URL, e.g. https://127.0.0.1:5443 */
  url: string;
  address: AddressInfo;
  /**
   * Serves new connections with the certificate and key now in these files (after a rotation);
   * connections already open keep theirs. Leaves the old pair in place when the new one is unusable.
   */
  reloadTls(tls: { certFile: string; keyFile: string }): Promise<void>;
  /**
   * Stops accepting, lets in-flight pulls finish, cuts uploads in flight (they stay resumable). With
   * `graceMs`, connections still open after it are cut too (a pull resumes by Range elsewhere).
   */
  close(graceMs?: number): Promise<void>;
}

function parseListen(listen: string): { host: string; port: number } {
  const match = /^(.*):(\d+)$/.exec(listen);
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || port > 65535) {
    throw new AirlockError("USAGE", `--listen ${JSON.stringify(listen)} is not host:port`, {
      hint: "e.g. --listen 127.0.0.1:5443",
    });
  }
  return { host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port };
}

async function readTlsFile(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new AirlockError(
      "TLS_FILE_UNREADABLE",
      `cannot read the TLS ${what}: ${(error as Error).message}`,
      {
        where: path,
        hint: "pass a PEM certificate with --tls-cert and its key with --tls-key",
      },
    );
  }
}

/** The certificate and key in these files, checked to make a TLS context together. */
async function readTlsPair(tls: {
  certFile: string;
  keyFile: string;
}): Promise<{ cert: Buffer; key: Buffer }> {
  const pair = {
    cert: await readTlsFile(tls.certFile, "certificate"),
    key: await readTlsFile(tls.keyFile, "key"),
  };
  try {
    createSecureContext(pair);
  } catch (error) {
    throw new AirlockError(
      "TLS_INVALID",
      `the TLS certificate or key is not usable: ${(error as Error).message}`,
      {
        where: tls.certFile,
        hint: "the key must match the certificate, both PEM",
      },
    );
  }
  return pair;
}

/**
 * Node's socket timeout fires only after the timeout passed with nothing read and no write progress
 * (it checks the write queue shrank), so a slow but progressing pull or upload never reaches it. A
 * connection waiting for the server's own work (a commit hashing a large blob) is left alone; one
 * idle between requests, or whose client stopped reading or sending, is cut.
 */
function cutStalledClients(server: Server, options: ServeOptions): void {
  const logger = options.logger ?? silentLogger;
  const inFlight = new WeakMap<Socket, IncomingMessage>();
  server.requestTimeout = 0;
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.timeout = options.stalledClientTimeoutMs ?? DEFAULT_STALLED_CLIENT_TIMEOUT_MS;
  server.on("request", (req: IncomingMessage, res: ServerResponse) => {
    inFlight.set(req.socket, req);
    res.once("close", () => {
      if (inFlight.get(req.socket) === req) inFlight.delete(req.socket);
    });
  });
  server.on("timeout", (socket: Socket) => {
    const req = inFlight.get(socket);
    const stalledReader = socket.writableLength > 0;
    if (req !== undefined && req.complete && !stalledReader) return;
    if (req !== undefined) {
      logger.warn(
        { method: req.method, path: (req.url ?? "/").split("?")[0], idleMs: server.timeout },
        stalledReader ? "cut a client that stopped reading" : "cut a client that stopped sending",
      );
    }
    socket.destroy();
  });
}

/** Starts the registry on `listen`, over TLS when certificate files are given, else plain HTTP. */
export async function startRegistryServer(store: Store, options: ServeOptions): Promise<RunningRegistry> {
  const { host, port } = parseListen(options.listen);
  const handler = createRegistryHandler(store, options);
  let server: Server;
  let https: HttpsServer | undefined;
  if (options.tls === undefined) server = createHttpServer(handler);
  else server = https = createHttpsServer(await readTlsPair(options.tls), handler);
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) => {
      reject(
        new AirlockError("LISTEN_FAILED", `cannot listen on ${options.listen}: ${error.message}`, {
          where: options.listen,
          hint:
            errnoCode(error) === "EADDRINUSE"
              ? "another process uses that port: pick another --listen"
              : undefined,
        }),
      );
    });
    server.listen(port, host, () => resolve());
  });
  cutStalledClients(server, options);
  const address = server.address() as AddressInfo;
  const shownHost = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `${options.tls === undefined ? "http" : "https"}://${shownHost}:${address.port}`,
    address,
    reloadTls: async (tls) => {
      if (https === undefined) {
        throw new AirlockError(
          "TLS_NOT_SERVED",
          "this registry serves plain HTTP: there is no certificate to reload",
          {
            hint: "restart it with TLS (without --insecure-http)",
          },
        );
      }
      https.setSecureContext(await readTlsPair(tls));
    },
    close: async (graceMs) => {
      const closed = new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)));
      });
      const cut = graceMs === undefined ? undefined : setTimeout(() => server.closeAllConnections(), graceMs);
      try {
        await handler.close();
        server.closeIdleConnections();
        await closed;
      } finally {
        clearTimeout(cut);
      }
    },
  };
}
