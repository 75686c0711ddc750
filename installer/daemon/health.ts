import { createServer, type Server } from "node:http";
import { connect as netConnect, type AddressInfo } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { AirlockError, errnoCode } from "../../registry/oci/index.js";
import { DEFAULT_HEALTH_LISTEN } from "../preflight/index.js";
import type { SchedulerStatus } from "./scheduler.js";

const PROBE_TIMEOUT_MS = 2_000;

export interface PartHealth {
  state: "up" | "down";
  url: string;
  /** Why it is down. */
  detail?: string;
}

/** What `/healthz` answers: 200 when every part is up, 503 otherwise. */
export interface DaemonHealth {
  ok: boolean;
  pid: number;
  /** `serving`, or `stopping` once SIGTERM came. */
  daemon: "serving" | "stopping";
  registry: PartHealth;
  console: PartHealth;
  scheduler: SchedulerStatus;
}

/**
 * Connects to a listener of this process, with the TLS handshake when it serves TLS: one that
 * accepts is up. No request is sent (the registry would log every probe), and the certificate is
 * not checked: this is a liveness probe of our own socket, not a client's trust.
 */
export function probeListener(url: string): Promise<PartHealth> {
  const { hostname, port, protocol } = new URL(url);
  const host = hostname.replace(/^\[(.*)\]$/, "$1");
  return new Promise((resolve) => {
    const socket =
      protocol === "https:"
        ? tlsConnect({ host, port: Number(port), rejectUnauthorized: false })
        : netConnect({ host, port: Number(port) });
    const settle = (health: PartHealth): void => {
      socket.destroy();
      resolve(health);
    };
    socket.setTimeout(PROBE_TIMEOUT_MS, () =>
      settle({ state: "down", url, detail: `no answer within ${PROBE_TIMEOUT_MS} ms` }),
    );
    socket.once(protocol === "https:" ? "secureConnect" : "connect", () => settle({ state: "up", url }));
    socket.once("error", (error: Error) => settle({ state: "down", url, detail: error.message }));
  });
}

export function isHealthy(health: Omit<DaemonHealth, "ok">): boolean {
  return (
    health.daemon === "serving" &&
    health.registry.state === "up" &&
    health.console.state === "up" &&
    health.scheduler.state !== "failed" &&
    health.scheduler.state !== "stopped"
  );
}

export interface HealthServer {
  url: string;
  close(): Promise<void>;
}

function parseHealthListen(listen: string): { host: string; port: number } {
  const match = /^(\[[^\]]+\]|[^:[\]]+):(\d{1,5})$/.exec(listen);
  const port = match === null ? NaN : Number(match[2]);
  if (match === null || port > 65535) {
    throw new AirlockError("USAGE", `--health-listen ${JSON.stringify(listen)} is not host:port`, {
      hint: `e.g. --health-listen ${DEFAULT_HEALTH_LISTEN}`,
    });
  }
  return { host: match[1]!.replace(/^\[(.*)\]$/, "$1"), port };
}

/**
 * `/healthz` on its own plain-HTTP listener (loopback by default), apart from the registry and the
 * console: a watchdog on the host needs no CA or account, it still answers (503, naming the part)
 * when the registry's or the console's listener is down, and the console keeps no unauthenticated
 * route but login and its assets. Distribution's registry does the same with its debug address.
 */
export async function startHealthServer(
  listen: string,
  snapshot: () => Promise<DaemonHealth>,
): Promise<HealthServer> {
  const { host, port } = parseHealthListen(listen);
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (path !== "/healthz" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "content-type": "text/plain" }).end("only GET /healthz is served here\n");
      return;
    }
    void snapshot().then(
      (health) => {
        res.writeHead(health.ok ? 200 : 503, {
          "content-type": "application/json",
          "cache-control": "no-store",
        });
        res.end(req.method === "HEAD" ? undefined : `${JSON.stringify(health)}\n`);
      },
      (error: unknown) => {
        res.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`);
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) => {
      reject(
        new AirlockError("LISTEN_FAILED", `cannot listen on ${listen}: ${error.message}`, {
          where: listen,
          hint:
            errnoCode(error) === "EADDRINUSE"
              ? "another process uses that port: pick another --health-listen"
              : "check the address and port",
        }),
      );
    });
    server.listen(port, host, () => resolve());
  });
  const address = server.address() as AddressInfo;
  const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
  return {
    url: `http://${shown}:${address.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
