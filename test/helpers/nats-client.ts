/**
 * A small NATS client for tests that run real nats-server processes: the text protocol over
 * `node:tls` (INFO in the clear, then the TLS handshake, as nats-server 2.9 expects), CONNECT,
 * SUB/PUB/MSG, PING/PONG, and reconnection through a server list that re-subscribes, as a real
 * client does when the broker it was on dies; with `discover`, the list grows by the brokers the
 * cluster announces in INFO `connect_urls`, as real clients' does.
 */
import { createHash } from "node:crypto";
import { connect as netConnect, type Socket } from "node:net";
import { connect as tlsConnect, type TLSSocket } from "node:tls";

export interface NatsServerAddress {
  host: string;
  port: number;
  /** The name the server certificate is checked for, when `host` is an address it does not name (a pod IP). */
  servername?: string;
}

/** What the client trusts and presents: PEM text. */
export interface NatsTls {
  ca: string;
  cert?: string;
  key?: string;
}

/** The fields of nats-server's INFO the tests read (it sends more). */
export interface NatsInfo {
  server_id: string;
  server_name?: string;
  version?: string;
  tls_required?: boolean;
  tls_verify?: boolean;
  connect_urls?: string[];
}

export interface NatsMessage {
  subject: string;
  sid: number;
  replyTo?: string;
  payload: Buffer;
}

export interface NatsClientOptions {
  servers: NatsServerAddress[];
  tls: NatsTls;
  /** Each connection attempt (TCP, INFO, TLS, CONNECT, PONG) must finish within this; default 5 s. */
  connectTimeoutMs?: number;
  /** How long to keep trying the server list after a connection drops; default 10 s. */
  reconnectTimeMs?: number;
  /** Adds the servers INFO's `connect_urls` announce (by name, their certificate checked for it) to the list. */
  discover?: boolean;
  /** Where a server's name is dialled (the cluster's resolve, for names the host's resolver does not know); the name itself when it gives none. */
  resolve?: (host: string) => string[];
}

interface Subscription {
  subject: string;
  queue: NatsMessage[];
  waiters: Array<{ resolve: (message: NatsMessage) => void; reject: (error: Error) => void }>;
}

/** A TLS connection to one server that has completed CONNECT and a PING/PONG round. */
interface Connection {
  server: NatsServerAddress;
  socket: TLSSocket;
  info: NatsInfo;
}

const CRLF = "\r\n";

function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Reads nats-server's first line, `INFO {...}\r\n`, in the clear; leaves nothing else consumed. */
function readPlainInfo(socket: Socket): Promise<NatsInfo> {
  return new Promise((resolve, reject) => {
    let buffer = Buffer.alloc(0);
    const cleanup = (): void => {
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(error);
    };
    const onClose = (): void => {
      cleanup();
      reject(new Error("the server closed the connection before its INFO"));
    };
    const onData = (chunk: Buffer): void => {
      buffer = Buffer.concat([buffer, chunk]);
      const end = buffer.indexOf(CRLF);
      if (end === -1) return;
      cleanup();
      socket.pause();
      const line = buffer.subarray(0, end).toString("utf8");
      if (end + 2 !== buffer.length) {
        reject(
          new Error(`the server sent more than its INFO before the TLS handshake: ${buffer.toString()}`),
        );
        return;
      }
      if (!line.startsWith("INFO ")) {
        reject(new Error(`expected INFO from the server, got: ${line}`));
        return;
      }
      resolve(JSON.parse(line.slice(5)) as NatsInfo);
    };
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
  });
}

/** sha256 over the DER certificate as installer/pki writes it: `sha256:<hex>`. */
export function certificateFingerprint(der: Buffer): string {
  return `sha256:${createHash("sha256").update(der).digest("hex")}`;
}

export class NatsClient {
  readonly #options: Required<Omit<NatsClientOptions, "resolve">> & Pick<NatsClientOptions, "resolve">;
  /** Servers learnt from INFO `connect_urls` that are not among the configured ones. */
  #discovered: NatsServerAddress[] = [];
  readonly #subs = new Map<number, Subscription>();
  #nextSid = 1;
  #connection: Connection | undefined;
  #buffer = Buffer.alloc(0);
  #pongWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  #closed = false;
  #reconnectWaiters: Array<{ resolve: () => void; reject: (error: Error) => void }> = [];
  /** `-ERR` lines the server sent, in order. */
  readonly errors: string[] = [];
  /** How many times the client reconnected after a connection dropped. */
  reconnects = 0;

  private constructor(options: NatsClientOptions) {
    this.#options = { connectTimeoutMs: 5_000, reconnectTimeMs: 10_000, discover: false, ...options };
  }

  /** Connects to the first server of the list that takes it; rejects with every server's failure. */
  static async connect(options: NatsClientOptions): Promise<NatsClient> {
    const client = new NatsClient(options);
    await client.#connectToList(0);
    return client;
  }

  /** INFO of the server the client is on now. */
  get info(): NatsInfo {
    return this.#current().info;
  }

  get server(): NatsServerAddress {
    return this.#current().server;
  }

  /** The TLS socket of the current connection (peer certificate, authorization). */
  get socket(): TLSSocket {
    return this.#current().socket;
  }

  /** The servers it would reconnect to: the configured ones, then those the cluster announced. */
  get servers(): NatsServerAddress[] {
    return [...this.#options.servers, ...this.#discovered];
  }

  get connected(): boolean {
    return this.#connection !== undefined;
  }

  subscribe(subject: string): number {
    const sid = this.#nextSid++;
    this.#subs.set(sid, { subject, queue: [], waiters: [] });
    if (this.#connection !== undefined) this.#write(this.#connection, `SUB ${subject} ${sid}${CRLF}`);
    return sid;
  }

  /** PUB, with `replyTo` as the subject an answer goes to (request/reply). Throws when not connected. */
  publish(subject: string, payload: string | Buffer, replyTo?: string): void {
    const body = Buffer.from(payload);
    const connection = this.#current();
    const head = `PUB ${subject}${replyTo === undefined ? "" : ` ${replyTo}`} ${body.length}${CRLF}`;
    this.#write(connection, Buffer.concat([Buffer.from(head), body, Buffer.from(CRLF)]));
  }

  /** PING, resolved by the server's PONG: everything sent before it has been processed. */
  flush(timeoutMs = 5_000): Promise<void> {
    const connection = this.#current();
    const pong = new Promise<void>((resolve, reject) => this.#pongWaiters.push({ resolve, reject }));
    this.#write(connection, `PING${CRLF}`);
    return withTimeout(pong, timeoutMs, "PONG");
  }

  /** The next message of subscription `sid`, delivered or still to come. */
  nextMessage(sid: number, timeoutMs = 10_000): Promise<NatsMessage> {
    const sub = this.#subs.get(sid);
    if (sub === undefined) return Promise.reject(new Error(`no subscription ${sid}`));
    const queued = sub.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    let waiter: Subscription["waiters"][number] | undefined;
    const next = new Promise<NatsMessage>((resolve, reject) => {
      waiter = { resolve, reject };
      sub.waiters.push(waiter);
    });
    return withTimeout(next, timeoutMs, `a message on ${sub.subject}`).catch((error: unknown) => {
      sub.waiters = sub.waiters.filter((w) => w !== waiter);
      throw error;
    });
  }

  /** Resolves once the client has reconnected `count` times in all after dropped connections (at once if it has). */
  waitForReconnect(count: number, timeoutMs = this.#options.reconnectTimeMs + 5_000): Promise<void> {
    if (this.reconnects >= count && this.#connection !== undefined) return Promise.resolve();
    const reconnected = new Promise<void>((resolve, reject) =>
      this.#reconnectWaiters.push({ resolve, reject }),
    );
    return withTimeout(reconnected, timeoutMs, "the client to reconnect");
  }

  close(): void {
    this.#closed = true;
    this.#connection?.socket.destroy();
    this.#connection = undefined;
    this.#failAll(new Error("client closed"));
  }

  #current(): Connection {
    if (this.#connection === undefined) throw new Error("the client is not connected");
    return this.#connection;
  }

  #write(connection: Connection, data: string | Buffer): void {
    connection.socket.write(data);
  }

  /** Tries each server once, starting at `start`; the first that completes the handshake wins. */
  async #connectToList(start: number): Promise<void> {
    const servers = this.servers;
    const failures: string[] = [];
    for (let n = 0; n < servers.length; n++) {
      const server = servers[(start + n) % servers.length]!;
      try {
        await this.#open(server);
        return;
      } catch (error) {
        failures.push(`${server.host}:${server.port}: ${(error as Error).message}`);
      }
    }
    throw new Error(`no server took the connection: ${failures.join("; ")}`);
  }

  /** TCP, INFO in the clear, the TLS handshake, CONNECT, re-sent subscriptions, PING → PONG. */
  async #open(server: NatsServerAddress): Promise<void> {
    const tcp = netConnect({
      host: this.#options.resolve?.(server.host)[0] ?? server.host,
      port: server.port,
    });
    let socket: TLSSocket | undefined;
    // A server that stalls anywhere in the handshake: destroying the sockets rejects whichever step waits.
    const timeoutMs = this.#options.connectTimeoutMs;
    const timer = setTimeout(() => {
      const error = new Error(`the handshake with the server did not finish within ${timeoutMs} ms`);
      socket?.destroy(error);
      tcp.destroy(error);
    }, timeoutMs);
    try {
      const info = await readPlainInfo(tcp);
      if (info.tls_required !== true) throw new Error(`${server.host}:${server.port} does not require TLS`);
      socket = tlsConnect({
        socket: tcp,
        // The name checked against the server certificate's SANs (an IP is checked as an IP SAN).
        host: server.servername ?? server.host,
        ca: this.#options.tls.ca,
        cert: this.#options.tls.cert,
        key: this.#options.tls.key,
      });
      const tls = socket;
      await new Promise<void>((resolve, reject) => {
        tls.once("secureConnect", resolve);
        tls.once("error", reject);
        tls.once("close", () => reject(new Error("the connection closed during the TLS handshake")));
      });
      const connection: Connection = { server, socket: tls, info };
      this.#learn(info);
      this.#buffer = Buffer.alloc(0);
      const ready = new Promise<void>((resolve, reject) => {
        // The server's verdict on the client certificate (TLS 1.3) comes after the client's handshake
        // completes: a refused client sees the connection close instead of the PONG.
        const onClose = (): void =>
          reject(new Error(`the server closed the connection: ${this.errors.join("; ")}`));
        tls.once("close", onClose);
        tls.once("error", reject);
        this.#pongWaiters.push({
          resolve: () => {
            tls.off("close", onClose);
            tls.off("error", reject);
            resolve();
          },
          reject,
        });
      });
      tls.on("data", (chunk: Buffer) => this.#onData(connection, chunk));
      const connect = {
        verbose: false,
        pedantic: false,
        tls_required: true,
        name: "airlock-test",
        lang: "node",
        version: "0",
        protocol: 1,
      };
      let hello = `CONNECT ${JSON.stringify(connect)}${CRLF}`;
      for (const [sid, sub] of this.#subs) hello += `SUB ${sub.subject} ${sid}${CRLF}`;
      tls.write(`${hello}PING${CRLF}`);
      await ready;
      this.#connection = connection;
      tls.on("error", () => undefined);
      tls.on("close", () => this.#onClose(connection));
    } catch (error) {
      this.#pongWaiters = [];
      socket?.destroy();
      tcp.destroy();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  #onClose(connection: Connection): void {
    if (this.#connection !== connection) return;
    this.#connection = undefined;
    const error = new Error(`connection to ${connection.server.host}:${connection.server.port} closed`);
    for (const waiter of this.#pongWaiters.splice(0)) waiter.reject(error);
    if (this.#closed) return;
    const index = this.servers.indexOf(connection.server);
    // Only the current connection's close gets here, so one reconnection runs at a time.
    void this.#reconnect(index + 1);
  }

  /** Walks the server list (the one that dropped last) until one takes the connection or time runs out. */
  async #reconnect(start: number): Promise<void> {
    const deadline = Date.now() + this.#options.reconnectTimeMs;
    let lastError: Error | undefined;
    while (!this.#closed && Date.now() < deadline) {
      try {
        await this.#connectToList(start);
        this.reconnects++;
        for (const waiter of this.#reconnectWaiters.splice(0)) waiter.resolve();
        return;
      } catch (error) {
        lastError = error as Error;
        // Every server refused: a short pause before the next round, as real clients do.
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    this.#failAll(new Error(`could not reconnect: ${lastError?.message ?? "client closed"}`));
  }

  /** With `discover`, the announced servers replace those announced before (configured ones stay). */
  #learn(info: NatsInfo): void {
    if (!this.#options.discover || info.connect_urls === undefined) return;
    const known = (host: string, port: number): NatsServerAddress | undefined =>
      this.servers.find((server) => server.host === host && server.port === port);
    this.#discovered = info.connect_urls.flatMap((url) => {
      const colon = url.lastIndexOf(":");
      const [host, port] = [url.slice(0, colon), Number(url.slice(colon + 1))];
      if (this.#options.servers.some((server) => server.host === host && server.port === port)) return [];
      // The same object as before, so that a reconnection finds its place in the list.
      return [known(host, port) ?? { host, port }];
    });
  }

  #failAll(error: Error): void {
    for (const waiter of this.#reconnectWaiters.splice(0)) waiter.reject(error);
    for (const waiter of this.#pongWaiters.splice(0)) waiter.reject(error);
    for (const sub of this.#subs.values()) for (const waiter of sub.waiters.splice(0)) waiter.reject(error);
  }

  /** Parses the server's protocol lines: MSG (with its payload), PING, PONG, +OK, -ERR, INFO. */
  #onData(connection: Connection, chunk: Buffer): void {
    this.#buffer = Buffer.concat([this.#buffer, chunk]);
    for (;;) {
      const end = this.#buffer.indexOf(CRLF);
      if (end === -1) return;
      const line = this.#buffer.subarray(0, end).toString("utf8");
      const [op = "", ...args] = line.split(" ");
      switch (op.toUpperCase()) {
        case "MSG": {
          // MSG <subject> <sid> [reply-to] <#bytes>
          const size = Number(args[args.length - 1]);
          const total = end + 2 + size + 2;
          if (this.#buffer.length < total) return;
          const payload = Buffer.from(this.#buffer.subarray(end + 2, end + 2 + size));
          this.#buffer = this.#buffer.subarray(total);
          const message: NatsMessage = {
            subject: args[0]!,
            sid: Number(args[1]),
            ...(args.length === 4 ? { replyTo: args[2]! } : {}),
            payload,
          };
          const sub = this.#subs.get(message.sid);
          if (sub === undefined) break;
          const waiter = sub.waiters.shift();
          if (waiter === undefined) sub.queue.push(message);
          else waiter.resolve(message);
          continue;
        }
        case "PING":
          this.#write(connection, `PONG${CRLF}`);
          break;
        case "PONG":
          this.#pongWaiters.shift()?.resolve();
          break;
        case "-ERR":
          this.errors.push(args.join(" "));
          break;
        case "INFO":
          connection.info = JSON.parse(line.slice(5)) as NatsInfo;
          this.#learn(connection.info);
          break;
        default:
          // +OK (verbose is off, so none come) and anything else the tests do not need.
          break;
      }
      this.#buffer = this.#buffer.subarray(end + 2);
    }
  }
}
