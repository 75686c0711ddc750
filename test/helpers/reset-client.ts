/**
 * Clients that walk away mid-response, as `curl … | head -c 1000` does: a raw HTTP/1.1 request over
 * TCP (or TLS on top of it), read until a given offset, then the connection reset (RST) or closed.
 */
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";

export interface WalkAway {
  /** The registry's base URL, http:// or https://. */
  url: string;
  /** The CA to trust over TLS. */
  ca?: Buffer | undefined;
  method: "GET" | "HEAD";
  path: string;
  headers?: Record<string, string>;
  /** Response bytes (head included) to read before going; 0 goes as soon as the request is sent. */
  stopAt: number;
  /** "reset" sends an RST at once; "close" closes the socket as a killed client's kernel does. */
  how: "reset" | "close";
  /** The whole exchange must end within this, or the promise rejects. */
  timeoutMs: number;
}

/**
 * Resolves with the response bytes read when the client went (fewer than `stopAt` when the server
 * ended the response first); rejects on a connection that fails before the request, or a stall.
 */
export function walkAway(client: WalkAway): Promise<number> {
  const { hostname, port, protocol } = new URL(client.url);
  return new Promise((resolve, reject) => {
    const raw = tcpConnect({ host: hostname, port: Number(port) });
    let received = 0;
    let requested = false;
    const timer = setTimeout(() => {
      raw.destroy();
      reject(new Error(`${client.method} ${client.path} stalled at ${received} of ${client.stopAt} bytes`));
    }, client.timeoutMs);
    const finish = (): void => {
      clearTimeout(timer);
      resolve(received);
    };
    const leave = (): void => {
      if (client.how === "reset") raw.resetAndDestroy();
      else raw.destroy();
      finish();
    };
    raw.on("error", (error) => {
      if (requested) finish();
      else {
        clearTimeout(timer);
        reject(error);
      }
    });
    raw.on("close", finish);
    const send = (socket: Socket): void => {
      // Connection: close, so a response that ends before `stopAt` ends the exchange too.
      const headers = { Host: `${hostname}:${port}`, Connection: "close", ...client.headers };
      const head = Object.entries(headers).map(([name, value]) => `${name}: ${value}\r\n`);
      socket.write(`${client.method} ${client.path} HTTP/1.1\r\n${head.join("")}\r\n`);
      requested = true;
      if (client.stopAt === 0) leave();
      socket.on("data", (chunk: Buffer) => {
        received += chunk.byteLength;
        if (received >= client.stopAt && !raw.destroyed) leave();
      });
    };
    raw.once("connect", () => {
      if (protocol === "http:") {
        send(raw);
        return;
      }
      const secure = tlsConnect({ socket: raw, ca: client.ca, host: hostname });
      secure.on("error", () => undefined);
      secure.once("secureConnect", () => send(secure));
    });
  });
}
