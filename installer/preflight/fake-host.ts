import { GiB } from "./bundle-facts.js";
import type { FsStats, HostView, PortProbe } from "./host.js";

export interface FakeFilesystem {
  /** Its mount point: a path belongs to the filesystem with the longest mount point above it. */
  mount: string;
  type: number;
  freeBytes: number;
  totalBytes?: number;
  readOnly?: boolean;
}

/** A host described as data: files and directories, mounts, CPUs, memory, ports, the time. */
export interface FakeHostSpec {
  files: Record<string, string>;
  dirs: string[];
  filesystems: FakeFilesystem[];
  cpus: number;
  memory: { totalBytes: number; availableBytes: number };
  platform: { os: string; architecture: string };
  /** By `host:port`; a port not listed is free. */
  ports: Record<string, PortProbe>;
  now: Date;
}

export const EXT4 = 0xef53;

/**
 * A host every check passes on: Linux amd64, 4 CPUs, 8 GiB, cgroup v2 with the controllers k3s uses,
 * overlay and br_netfilter loaded, IP forwarding on, no swap, one roomy ext4 root.
 */
export function healthyHostSpec(): FakeHostSpec {
  return {
    files: {
      "/proc/swaps": "Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority\n",
      "/proc/sys/net/ipv4/ip_forward": "1\n",
      "/proc/sys/kernel/osrelease": "6.1.0-28-amd64\n",
      "/proc/filesystems": "nodev\tsysfs\nnodev\tproc\n\text4\nnodev\toverlay\n",
      "/proc/cgroups": "#subsys_name\thierarchy\tnum_cgroups\tenabled\ncpu\t0\t1\t1\n",
      "/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc\n",
      "/lib/modules/6.1.0-28-amd64/modules.dep":
        "kernel/fs/overlayfs/overlay.ko:\nkernel/net/bridge/br_netfilter.ko: kernel/net/bridge/bridge.ko\n",
      "/lib/modules/6.1.0-28-amd64/modules.builtin": "kernel/fs/ext4/ext4.ko\n",
    },
    dirs: ["/sys/module/overlay", "/sys/module/br_netfilter", "/var/lib", "/usr/local/bin", "/etc"],
    filesystems: [{ mount: "/", type: EXT4, freeBytes: 100 * GiB, totalBytes: 200 * GiB }],
    cpus: 4,
    memory: { totalBytes: 8 * GiB, availableBytes: 6 * GiB },
    platform: { os: "linux", architecture: "amd64" },
    ports: {},
    now: new Date("2026-12-03T12:00:00Z"),
  };
}

function under(path: string, dir: string): boolean {
  return dir === "/" || path === dir || path.startsWith(`${dir}/`);
}

/** A HostView over a spec: what tests hand to preflight instead of the real host. */
export function fakeHostView(spec: FakeHostSpec): HostView {
  const filesystemOf = (path: string): FakeFilesystem => {
    const matches = spec.filesystems.filter((fs) => under(path, fs.mount));
    const fs = matches.sort((a, b) => b.mount.length - a.mount.length)[0];
    if (fs === undefined) throw new Error(`the fake host has no filesystem for ${path}`);
    return fs;
  };
  const exists = (path: string): boolean =>
    path === "/" ||
    path in spec.files ||
    [...Object.keys(spec.files), ...spec.dirs, ...spec.filesystems.map((fs) => fs.mount)].some((known) =>
      under(known, path),
    );
  const existing = (path: string): void => {
    if (!exists(path)) throw Object.assign(new Error(`ENOENT: ${path}`), { code: "ENOENT" });
  };
  return {
    readFile: (path) => Promise.resolve(spec.files[path]),
    exists: (path) => Promise.resolve(exists(path)),
    statfs: (path): Promise<FsStats> => {
      existing(path);
      const fs = filesystemOf(path);
      const bsize = 4096;
      return Promise.resolve({
        type: fs.type,
        bsize,
        blocks: Math.floor((fs.totalBytes ?? fs.freeBytes * 2) / bsize),
        bavail: Math.floor(fs.freeBytes / bsize),
      });
    },
    device: (path) => {
      existing(path);
      return Promise.resolve(spec.filesystems.indexOf(filesystemOf(path)) + 1);
    },
    writable: (path) => Promise.resolve(exists(path) && filesystemOf(path).readOnly !== true),
    cpuCount: () => spec.cpus,
    memory: () => Promise.resolve(spec.memory),
    platform: () => spec.platform,
    probePort: (host, port) => Promise.resolve(spec.ports[`${host}:${port}`] ?? { state: "free" }),
    now: () => spec.now,
  };
}
