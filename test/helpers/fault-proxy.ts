/**
 * A TCP proxy on 127.0.0.1 that misbehaves on purpose, seeded so a failure replays: per connection it
 * passes traffic through, answers `503 Service Unavailable` and closes, or forwards a random number of
 * bytes and then resets both sides. Used to show that a client finishes its job through such faults.
 */
import { createServer as createHttpServer, request as httpRequest } from "node:http";
import { createServer, connect, type Server as NetServer, type Socket } from "node:net";
import { seededRandom } from "./seeded-random.js";

export interface FaultProxy {
  host: string;
  /**
   * `bytesUp`: bytes received from clients for the target, what their uploads put on the wire;
   * `open`: client connections not yet closed (a killed client's stay open until its bytes are read).
   */
  stats: { connections: number; resets: number; unavailable: number; bytesUp: number; open: number };
  /** Changes the cap on what each connection forwards from the client; undefined lifts it. */
  throttle(bytesPerSecond: number | undefined): void;
  close(): Promise<void>;
}

export async function startFaultProxy(options: {
  target: string;
  seed: number;
  /** Share of connections reset after a random number of bytes. */
  resetRate: number;
  /** Share of connections answered with a 503. */
  unavailableRate: number;
  /** Resets come within this many bytes sent by the client. */
  resetWithinBytes?: number;
  /** Caps what each connection forwards from the client, so a test can act in the middle of a transfer. */
  bytesPerSecond?: number;
}): Promise<FaultProxy> {
  const next = seededRandom(options.seed);
  const [targetHost, targetPort] = options.target.split(":") as [string, string];
  const sockets = new Set<Socket>();
  const stats = { connections: 0, resets: 0, unavailable: 0, bytesUp: 0, open: 0 };
  let bytesPerSecond = options.bytesPerSecond;
  const server = createServer((client) => {
    stats.connections++;
    stats.open++;
    sockets.add(client);
    client.on("close", () => {
      stats.open--;
      sockets.delete(client);
    });
    client.on("error", () => undefined);
    const roll = next();
    if (roll < options.unavailableRate) {
      stats.unavailable++;
      client.end(
        "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
      );
      return;
    }
    const upstream = connect(Number(targetPort), targetHost);
    sockets.add(upstream);
    upstream.on("close", () => sockets.delete(upstream));
    upstream.on("error", () => client.destroy());
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
    let budget =
      roll < options.unavailableRate + options.resetRate
        ? Math.floor(next() * (options.resetWithinBytes ?? 4 * 1024 * 1024))
        : Number.POSITIVE_INFINITY;
    client.on("data", (chunk: Buffer) => {
      budget -= chunk.byteLength;
      if (budget < 0) {
        stats.resets++;
        client.resetAndDestroy();
        upstream.resetAndDestroy();
        return;
      }
      stats.bytesUp += chunk.byteLength;
      if (!upstream.write(chunk)) client.pause();
      if (bytesPerSecond !== undefined) {
        client.pause();
        setTimeout(() => client.resume(), (chunk.byteLength / bytesPerSecond) * 1000);
      }
    });
    upstream.on("drain", () => client.resume());
    upstream.pipe(client);
  });
  const proxy = await listening(server, stats, () => {
    for (const socket of sockets) socket.destroy();
  });
  return { ...proxy, throttle: (rate) => (bytesPerSecond = rate) };
}

/**
 * An HTTP proxy in front of a registry that refuses manifests of one media type with the spec's
 * MANIFEST_INVALID, as registries that predate OCI indexes do.
 */
export async function startPickyProxy(
  target: string,
  refusedMediaType: string,
): Promise<Omit<FaultProxy, "throttle">> {
  const stats = { connections: 0, resets: 0, unavailable: 0, bytesUp: 0, open: 0 };
  const server = createHttpServer((req, res) => {
    if (
      req.method === "PUT" &&
      /\/manifests\//.test(req.url ?? "") &&
      req.headers["content-type"] === refusedMediaType
    ) {
      req.resume();
      stats.unavailable++;
      const body = JSON.stringify({
        errors: [{ code: "MANIFEST_INVALID", message: `media type ${refusedMediaType} is not supported` }],
      });
      res.writeHead(400, { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    const [host, port] = target.split(":") as [string, string];
    const upstream = httpRequest(
      { host, port: Number(port), method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  server.on("connection", () => stats.connections++);
  return listening(server, stats, () => server.closeAllConnections());
}

/** Listens on a free loopback port; `close` cuts what is open, then stops the server. */
async function listening(
  server: NetServer,
  stats: FaultProxy["stats"],
  cut: () => void,
): Promise<Omit<FaultProxy, "throttle">> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    host: `127.0.0.1:${(server.address() as { port: number }).port}`,
    stats,
    close: () =>
      new Promise<void>((resolve) => {
        cut();
        server.close(() => resolve());
      }),
  };
}
