/** The OCI runtime spec runc runs a container by, written for `ctr run --config`. */

export interface BindMount {
  source: string;
  destination: string;
  readOnly: boolean;
}

export interface ContainerSpecInput {
  rootfs: string;
  readOnlyRootfs: boolean;
  args: string[];
  env: ReadonlyMap<string, string>;
  cwd: string;
  uid: number;
  gid: number;
  additionalGids: number[];
  hostname: string;
  netnsPath: string;
  mounts: BindMount[];
  capabilities: string[];
  noNewPrivileges: boolean;
  /** Under the node's own cgroup parent, so that the node can remove it by name. */
  cgroupsPath: string;
}

/** Docker's and containerd's default capability set, which a pod gets unless its securityContext drops some. */
export const DEFAULT_CAPABILITIES = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

/** The capabilities after a securityContext's `drop` (ALL, or names without CAP_) and `add`. */
export function capabilitiesOf(drop: string[] = [], add: string[] = []): string[] {
  const named = (list: string[]) => list.map((name) => `CAP_${name.toUpperCase().replace(/^CAP_/, "")}`);
  const dropped = new Set(named(drop));
  const kept = dropped.has("CAP_ALL") ? [] : DEFAULT_CAPABILITIES.filter((cap) => !dropped.has(cap));
  return [...new Set([...kept, ...named(add)])];
}

const SYSTEM_MOUNTS = [
  { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
  {
    destination: "/dev",
    type: "tmpfs",
    source: "tmpfs",
    options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
  },
  {
    destination: "/dev/pts",
    type: "devpts",
    source: "devpts",
    options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
  },
  {
    destination: "/dev/shm",
    type: "tmpfs",
    source: "shm",
    options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
  },
  { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
  { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
  // containerd's default mounts: a read-only root keeps a writable /run.
  {
    destination: "/run",
    type: "tmpfs",
    source: "tmpfs",
    options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
  },
];

export function containerSpec(input: ContainerSpecInput): Record<string, unknown> {
  const caps = input.capabilities;
  return {
    ociVersion: "1.0.2-dev",
    process: {
      terminal: false,
      user: { uid: input.uid, gid: input.gid, additionalGids: input.additionalGids },
      args: input.args,
      env: [...input.env].map(([name, value]) => `${name}=${value}`),
      cwd: input.cwd,
      capabilities: { bounding: caps, effective: caps, permitted: caps, inheritable: [], ambient: [] },
      noNewPrivileges: input.noNewPrivileges,
    },
    root: { path: input.rootfs, readonly: input.readOnlyRootfs },
    hostname: input.hostname,
    mounts: [
      ...SYSTEM_MOUNTS,
      ...input.mounts.map((mount) => ({
        destination: mount.destination,
        type: "bind",
        source: mount.source,
        options: ["rbind", "rprivate", mount.readOnly ? "ro" : "rw"],
      })),
    ],
    linux: {
      // Resource requests and limits are not enforced: the node is a test double sharing the host,
      // and only the plane's behaviour (pulls, probes, restarts, routes) is under test.
      resources: { devices: [{ allow: false, access: "rwm" }] },
      cgroupsPath: input.cgroupsPath,
      namespaces: [
        { type: "pid" },
        { type: "ipc" },
        { type: "uts" },
        { type: "mount" },
        { type: "network", path: input.netnsPath },
      ],
      maskedPaths: [
        "/proc/acpi",
        "/proc/asound",
        "/proc/kcore",
        "/proc/keys",
        "/proc/latency_stats",
        "/proc/timer_list",
        "/proc/timer_stats",
        "/proc/sched_debug",
        "/sys/firmware",
        "/proc/scsi",
      ],
      readonlyPaths: ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
    },
  };
}
