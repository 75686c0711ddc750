/**
 * Real peers run as daemons by the integration tests: a generic launcher that keeps the daemon's output
 * and stops it by its PID, free loopback ports, and a containerd of the test's own (root, state and
 * socket in a temp dir, the CRI plugin off) that `ctr` talks to.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { get as httpGet } from "node:http";
import { get as httpsGet } from "node:https";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { dockerRegistryConfig } from "../../scripts/docker-registry.mjs";
import { runTool, waitFor } from "./fixtures.js";

export interface Daemon {
  child: ChildProcess;
  /** What it wrote to stdout and stderr so far. */
  output(): string;
  /** Set once it has exited (or failed to start, e.g. a missing program). */
  exited(): { code: number | null; signal: NodeJS.Signals | null; error?: Error } | undefined;
  /** SIGTERM to its PID, SIGKILL if it is still running after `graceMs`; resolves once it has exited. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts `command` in the background; when it exits non-zero, its output is written to `log`. */
export function startDaemon(command: string, args: string[], log?: string): Daemon {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  let exit: ReturnType<Daemon["exited"]>;
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (output += chunk));
  const done = new Promise<void>((resolve) => {
    // A program that cannot be spawned (ENOENT) gets 'error' and no 'exit'.
    child.on("error", (error) => {
      exit ??= { code: null, signal: null, error };
      resolve();
    });
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      if (log !== undefined && code !== null && code !== 0) void writeFile(log, output);
      resolve();
    });
  });
  return {
    child,
    output: () => output,
    exited: () => exit,
    async stop(graceMs = 10_000) {
      if (exit !== undefined || child.pid === undefined) return;
      child.kill("SIGTERM");
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([
        done.then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), graceMs))),
      ]);
      clearTimeout(timer);
      if (!stopped) {
        child.kill("SIGKILL");
        await done;
      }
    },
  };
}

/**
 * `--console-listen` and `--health-listen` on free loopback ports, for an install whose site daemon
 * (`airlock serve`) runs beside other tests' (the defaults, 8443 and 8442, would clash).
 */
export async function siteDaemonListenArgs(): Promise<string[]> {
  const [consolePort, healthPort] = await freePorts(2);
  return ["--console-listen", `127.0.0.1:${consolePort}`, "--health-listen", `127.0.0.1:${healthPort}`];
}

/** `count` distinct free TCP ports on 127.0.0.1, found by listening on port 0 (all held until all are known). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let n = 0; n < count; n++) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", resolve);
      });
    }
    return servers.map((server) => (server.address() as { port: number }).port);
  } finally {
    await Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
  }
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port!;
}

export interface Containerd {
  /** Its gRPC socket, for `ctr -a`. */
  socket: string;
  daemon: Daemon;
  /** Runs `ctr -a SOCKET -n NAMESPACE ...args` to completion; never throws on exit status. */
  ctr(namespace: string, ...args: string[]): ReturnType<typeof runTool>;
  /** Stops containerd by its PID and unmounts whatever it left mounted under its directory. */
  stop(): Promise<void>;
}

/**
 * containerd as root with its root, state and socket in `dir`, the CRI plugin off; resolves once its
 * socket exists, fails at once if it exits (or cannot be started) first.
 */
export async function startContainerd(dir: string): Promise<Containerd> {
  const socket = join(dir, "containerd.sock");
  const config = join(dir, "config.toml");
  await writeFile(
    config,
    [
      "version = 2",
      `root = "${join(dir, "root")}"`,
      `state = "${join(dir, "state")}"`,
      'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
      "[grpc]",
      `  address = "${socket}"`,
    ].join("\n"),
  );
  const daemon = startDaemon("containerd", ["--config", config], join(dir, "containerd.log"));
  try {
    await waitFor(
      () => {
        const exit = daemon.exited();
        if (exit !== undefined) {
          throw new Error(
            `containerd exited before serving (${exit.error?.message ?? `code ${exit.code}, signal ${exit.signal}`}): ${daemon.output()}`,
          );
        }
        return existsSync(socket);
      },
      20_000,
      "containerd's socket",
    );
  } catch (error) {
    await daemon.stop();
    throw error;
  }
  return {
    socket,
    daemon,
    ctr: (namespace, ...args) => runTool("ctr", ["-a", socket, "-n", namespace, ...args]),
    async stop() {
      await daemon.stop();
      await unmountUnder(dir);
    },
  };
}

/** Unmounts every mount point under `dir`, deepest first, so the directory can be removed. */
async function unmountUnder(dir: string): Promise<void> {
  const mountInfo = await readFile("/proc/self/mountinfo", "utf8");
  const points = mountInfo
    .split("\n")
    // Field 5 is the mount point, with spaces and the like written as octal escapes.
    .map((line) =>
      line
        .split(" ")[4]
        ?.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8))),
    )
    .filter((point): point is string => point !== undefined && point.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
  for (const point of points) await runTool("umount", ["-l", point]);
}

/** The status of a GET, any certificate accepted (a readiness probe, not a client); 0 when refused. */
function statusOf(url: string): Promise<number> {
  return new Promise((resolve) => {
    const request = (url.startsWith("https:") ? httpsGet : httpGet)(
      url,
      { rejectUnauthorized: false },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    request.on("error", () => resolve(0));
  });
}

export interface DockerRegistry {
  daemon: Daemon;
  /** host:port on 127.0.0.1 */
  host: string;
  url: string;
  storage: string;
}

/**
 * Debian's docker-registry (CNCF distribution) on a free loopback port, storage under `dir`;
 * over TLS with the given certificate, and with htpasswd auth, when asked.
 */
export async function startDockerRegistry(
  dir: string,
  options: { tls?: { certFile: string; keyFile: string }; htpasswd?: string; port?: number } = {},
): Promise<DockerRegistry> {
  const port = options.port ?? (await freePort());
  const storage = join(dir, "storage");
  const config = join(dir, "config.yml");
  await writeFile(
    config,
    dockerRegistryConfig({ storage, port, htpasswd: options.htpasswd, tls: options.tls }),
  );
  const daemon = startDaemon("docker-registry", ["serve", config], join(dir, "registry.log"));
  const url = `${options.tls === undefined ? "http" : "https"}://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (daemon.exited() !== undefined) throw new Error(`docker-registry exited: ${daemon.output()}`);
      return [200, 401].includes(await statusOf(`${url}/v2/`));
    },
    20_000,
    "docker-registry",
  );
  return { daemon, host: `127.0.0.1:${port}`, url, storage };
}
