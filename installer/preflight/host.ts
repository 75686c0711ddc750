import { constants } from "node:fs";
import { access, readFile, stat, statfs } from "node:fs/promises";
import { createServer } from "node:net";
import { availableParallelism, freemem, totalmem } from "node:os";
import { errnoCode } from "../../registry/oci/index.js";

export interface FsStats {
  /** The filesystem's magic number (`statfs(2)` f_type): 0xEF53 ext4, 0x6969 NFS, … */
  type: number;
  bsize: number;
  blocks: number;
  /** Blocks free to an unprivileged writer. */
  bavail: number;
}

/** free: nothing listens; in-use: something does; unavailable: the address is not this host's (or is refused). */
export type PortProbe = { state: "free" } | { state: "in-use" } | { state: "unavailable"; reason: string };

/**
 * Everything preflight reads from the host, behind one seam so tests can present any host. Paths are
 * absolute paths on the host as seen by this process; callers put install paths under the host root.
 */
export interface HostView {
  /** A file's text, or undefined when it does not exist or cannot be read. */
  readFile(path: string): Promise<string | undefined>;
  exists(path: string): Promise<boolean>;
  statfs(path: string): Promise<FsStats>;
  /** The device number of the filesystem holding an existing path: equal for paths on one filesystem. */
  device(path: string): Promise<number>;
  /** Whether this process may create files in an existing directory (false on a read-only mount). */
  writable(path: string): Promise<boolean>;
  cpuCount(): number;
  memory(): Promise<{ totalBytes: number; availableBytes: number }>;
  /** As OCI names them: os `linux`, architecture `amd64`, `arm64`, … */
  platform(): { os: string; architecture: string };
  /** Binds the address briefly to see whether it is free; never connects anywhere. */
  probePort(host: string, port: number): Promise<PortProbe>;
  now(): Date;
}

const NODE_TO_OCI_ARCH: Record<string, string> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
};

/** `MemTotal` and `MemAvailable` from `/proc/meminfo`, in bytes. */
export function parseMeminfo(text: string): { totalBytes: number; availableBytes: number } | undefined {
  const field = (name: string): number | undefined => {
    const match = new RegExp(`^${name}:\\s+(\\d+) kB$`, "m").exec(text);
    return match === null ? undefined : Number(match[1]) * 1024;
  };
  const totalBytes = field("MemTotal");
  const availableBytes = field("MemAvailable") ?? field("MemFree");
  return totalBytes === undefined || availableBytes === undefined
    ? undefined
    : { totalBytes, availableBytes };
}

function probePort(host: string, port: number): Promise<PortProbe> {
  return new Promise((resolvePromise) => {
    const server = createServer();
    server.once("error", (error) => {
      const code = errnoCode(error);
      if (code === "EADDRINUSE") resolvePromise({ state: "in-use" });
      else resolvePromise({ state: "unavailable", reason: code ?? error.message });
    });
    server.listen({ host, port, exclusive: true }, () => {
      server.close(() => resolvePromise({ state: "free" }));
    });
  });
}

/** The host this process runs on. */
export function realHostView(): HostView {
  return {
    readFile: (path) => readFile(path, "utf8").catch(() => undefined),
    exists: (path) =>
      stat(path).then(
        () => true,
        () => false,
      ),
    statfs: async (path) => {
      const info = await statfs(path);
      return { type: info.type, bsize: info.bsize, blocks: info.blocks, bavail: info.bavail };
    },
    device: async (path) => (await stat(path)).dev,
    writable: (path) =>
      access(path, constants.W_OK).then(
        () => true,
        () => false,
      ),
    cpuCount: () => availableParallelism(),
    memory: async () => {
      const meminfo = await readFile("/proc/meminfo", "utf8").catch(() => "");
      return parseMeminfo(meminfo) ?? { totalBytes: totalmem(), availableBytes: freemem() };
    },
    platform: () => ({
      os: process.platform === "win32" ? "windows" : process.platform,
      architecture: NODE_TO_OCI_ARCH[process.arch] ?? process.arch,
    }),
    probePort,
    now: () => new Date(),
  };
}
