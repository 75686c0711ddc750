import { dirname, join } from "node:path";
import { GiB } from "./bundle-facts.js";
import { formatBytes } from "../../registry/oci/index.js";
import type { HostView } from "./host.js";
import type { Check, CheckResult, PreflightContext } from "./types.js";

const MiB = 1024 ** 2;

/** What the store grows by beside the bundle itself: SQLite, uploads, logs; at least 512 MiB. */
export function storeGrowth(storeBytes: number): number {
  return Math.max(512 * MiB, Math.ceil(storeBytes * 0.1));
}

/** k3s's own data before the plane: its database, containerd metadata, logs. */
export const K3S_BASE_BYTES = 1 * GiB;

/** Free space short of the need by less than this share of it is a warning: the margin estimates leave. */
const HEADROOM = 0.2;

/** The deepest existing directory at or above `path`: where a directory not made yet will live. */
export async function nearestExisting(host: HostView, path: string): Promise<string> {
  let current = path;
  while (!(await host.exists(current))) {
    const parent = dirname(current);
    if (parent === current) break;
    current = parent;
  }
  return current;
}

interface DiskNeed {
  label: string;
  what: string;
  path: string;
  bytes: number;
}

function diskNeeds({ bundle, dataDir, hostRoot, kubeconfig }: PreflightContext): DiskNeed[] {
  const storeBytes = bundle?.storeBytes ?? 0;
  const needs: DiskNeed[] = [
    { label: "data-dir", what: "data dir", path: dataDir, bytes: storeBytes + storeGrowth(storeBytes) },
  ];
  if (kubeconfig === undefined) {
    needs.push(
      {
        label: "k3s-data",
        what: "k3s data",
        path: join(hostRoot, "var/lib/rancher/k3s"),
        // The pulled layers and their unpacked snapshots: about twice the images' bytes.
        bytes: K3S_BASE_BYTES + (bundle?.k3sArchiveBytes ?? 0) + 2 * (bundle?.imageBytes ?? 0),
      },
      {
        label: "k3s-bin",
        what: "k3s binary",
        path: join(hostRoot, "usr/local/bin"),
        bytes: bundle?.k3sBinaryBytes ?? 0,
      },
    );
  }
  // A bundle without bin/k3s (or no bundle) puts nothing in /usr/local/bin.
  return needs.filter((need) => need.bytes > 0);
}

function diskResult(group: DiskNeed[], freeBytes: number): CheckResult {
  const need = group.reduce((sum, item) => sum + item.bytes, 0);
  const first = group[0]!;
  const parts =
    group.length === 1
      ? first.path
      : `${group.map((item) => `${item.path} (${item.what}, ${formatBytes(item.bytes)})`).join(" and ")}, on one filesystem`;
  const detail = `${formatBytes(freeBytes)} free for ${parts}: ${formatBytes(need)} needed`;
  const base = {
    id: `disk:${first.label}`,
    title: `Free disk: ${group.map((item) => item.what).join(", ")}`,
  };
  if (freeBytes < need) {
    return {
      ...base,
      status: "fail",
      detail,
      hint: `free ${formatBytes(need - freeBytes)} on the filesystem of ${first.path}, or put the data dir elsewhere (--data-dir)`,
    };
  }
  if (freeBytes < need * (1 + HEADROOM)) {
    return {
      ...base,
      status: "warn",
      detail: `${detail}, with little to spare`,
      hint: `free more space on the filesystem of ${first.path}: the images' unpacked size is an estimate`,
    };
  }
  return { ...base, status: "pass", detail };
}

/** Free space per filesystem against what goes there: needs of paths on one filesystem add up. */
export const checkDisk: Check = async (context) => {
  const groups = new Map<number, { free: number; needs: DiskNeed[] }>();
  for (const need of diskNeeds(context)) {
    const existing = await nearestExisting(context.host, need.path);
    const device = await context.host.device(existing);
    let group = groups.get(device);
    if (group === undefined) {
      const stats = await context.host.statfs(existing);
      group = { free: stats.bavail * stats.bsize, needs: [] };
      groups.set(device, group);
    }
    group.needs.push(need);
  }
  return [...groups.values()].map((group) => diskResult(group.needs, group.free));
};

/** Filesystems by `statfs` magic, and whether the store (fsync, atomic rename, SQLite WAL locking) works on them. */
const FILESYSTEMS = new Map<number, { name: string; status: "pass" | "warn" | "fail"; why?: string }>([
  [0xef53, { name: "ext4", status: "pass" }],
  [0x58465342, { name: "xfs", status: "pass" }],
  [0x9123683e, { name: "btrfs", status: "pass" }],
  [0x2fc12fc1, { name: "zfs", status: "pass" }],
  [0xf2f52010, { name: "f2fs", status: "pass" }],
  [0x794c7630, { name: "overlay", status: "pass" }],
  [0x01021994, { name: "tmpfs", status: "warn", why: "its content is lost at reboot" }],
  [0x858458f6, { name: "ramfs", status: "warn", why: "its content is lost at reboot" }],
  [0x01021997, { name: "9p", status: "warn", why: "SQLite's locking may not hold on it" }],
  [0x65735546, { name: "fuse", status: "warn", why: "SQLite's locking may not hold on it" }],
  [
    0x6969,
    { name: "nfs", status: "fail", why: "SQLite's WAL needs shared memory a network filesystem lacks" },
  ],
  [
    0xff534d42,
    { name: "cifs", status: "fail", why: "SQLite's WAL needs shared memory a network filesystem lacks" },
  ],
  [
    0xfe534d42,
    { name: "smb2", status: "fail", why: "SQLite's WAL needs shared memory a network filesystem lacks" },
  ],
  [0x4d44, { name: "vfat", status: "fail", why: "no file modes for 0600 keys and no files over 4 GiB" }],
  [0x2011bab0, { name: "exfat", status: "fail", why: "no file modes for 0600 keys" }],
  [0x9660, { name: "iso9660", status: "fail", why: "it is read-only" }],
  [0x73717368, { name: "squashfs", status: "fail", why: "it is read-only" }],
]);

export const checkDataDirFilesystem: Check = async ({ host, dataDir }) => {
  const base = { id: "data-dir-filesystem", title: "Data dir filesystem" };
  const existing = await nearestExisting(host, dataDir);
  const { type } = await host.statfs(existing);
  const known = FILESYSTEMS.get(type);
  const hint = "put the data dir on a local ext4, xfs or btrfs filesystem (--data-dir)";
  if (known === undefined) {
    return {
      ...base,
      status: "warn",
      detail: `${existing} is on an unknown filesystem (type 0x${type.toString(16)})`,
      hint,
    };
  }
  const detail = `${existing} is on ${known.name}${known.why === undefined ? "" : `: ${known.why}`}`;
  return known.status === "pass"
    ? { ...base, status: "pass", detail }
    : { ...base, status: known.status, detail, hint };
};

export const checkDataDirWritable: Check = async ({ host, dataDir }) => {
  const base = { id: "data-dir-writable", title: "Data dir writable" };
  const existing = await nearestExisting(host, dataDir);
  const made = existing === dataDir ? "" : ` (${dataDir} will be made there)`;
  if (!(await host.writable(existing))) {
    return {
      ...base,
      status: "fail",
      detail: `${existing} is not writable${made}`,
      hint: "run as root, remount it read-write, or pass another --data-dir",
    };
  }
  return { ...base, status: "pass", detail: `${existing} is writable${made}` };
};
