import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { mkdir, open, rm } from "node:fs/promises";
import { join } from "node:path";
import { AirlockError, errnoCode } from "../../../registry/oci/index.js";
import { parseIpv4 } from "./subnet.js";

/**
 * The cluster DNS names as the pods' `/etc/hosts`: one file per pod, bind-mounted into its containers,
 * rewritten whenever a name changes so that pods resolve each other as they come and go.
 */
export interface ClusterHosts {
  /** Maps `name` (a pod's FQDN under a headless service, a service name) to `ip`, or removes it; every pod's file follows. */
  set(name: string, ip: string | undefined): void;
  /** Every Service name and the IPs it resolves to, replacing the last set; every pod's file follows. */
  setServices(names: ReadonlyMap<string, readonly string[]>): void;
  /** The addresses `name` resolves to in the pods' files now: a pod name's one, a Service's endpoints. */
  resolve(name: string): string[];
  /**
   * Writes the pod's file and keeps it current; returns its path. `hostname` is the pod's short name,
   * or its FQDN; a short one is completed by the longest name set for `ip` that starts with it.
   */
  hostsFileFor(podKey: string, hostname: string, ip: string): Promise<string>;
  /** Where the pod's file is, while it is kept. */
  pathOf(podKey: string): string | undefined;
  /** Stops keeping the pod's file and deletes it (a bind mount of it keeps its inode). */
  release(podKey: string): Promise<void>;
  /** Resolves once the files reflect every `set` so far; rejects with the first write that failed since the last flush. */
  flush(): Promise<void>;
}

interface PodEntry {
  path: string;
  hostname: string;
  ip: string;
}

const NAME_PATTERN = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/;
const HEADER = [
  "# Kubernetes-managed hosts file, written by Airlock's containerd node.",
  "127.0.0.1\tlocalhost",
  "::1\tlocalhost ip6-localhost ip6-loopback",
];

function checkEntry(name: string, ip: string | undefined, where: string): void {
  if (!NAME_PATTERN.test(name) || name.length > 253) {
    throw new AirlockError("NODE_HOSTS_INVALID", `${JSON.stringify(name)} is not a DNS name`, {
      where,
      hint: "names are lowercase DNS labels joined by dots, as Kubernetes gives pods and services",
    });
  }
  if (ip !== undefined && parseIpv4(ip) === undefined) {
    throw new AirlockError("NODE_HOSTS_INVALID", `${JSON.stringify(ip)} is not an IPv4 address`, {
      where,
      hint: "give the pod's address from its PodNetwork",
    });
  }
}

/** The file's name for a pod key (`namespace/name`): readable, and distinct even where sanitising merges keys. */
function fileName(podKey: string): string {
  const hash = createHash("sha256").update(podKey).digest("hex").slice(0, 8);
  return `${podKey.replace(/[^A-Za-z0-9._-]/g, "_")}-${hash}.hosts`;
}

/**
 * The text of one pod's file: localhost, the pod's own line, every name set grouped by address, then
 * one line per address of each Service name (several lines for one name give several addresses, as
 * DNS A records do; resolvers that read hosts files return them all).
 */
export function renderHostsFile(
  names: ReadonlyMap<string, string>,
  hostname: string,
  ip: string,
  services: ReadonlyMap<string, readonly string[]> = new Map(),
): string {
  const byIp = new Map<string, string[]>();
  for (const [name, address] of [...names].sort(([a], [b]) => a.localeCompare(b))) {
    byIp.set(address, [...(byIp.get(address) ?? []), name]);
  }
  const setForOwn = byIp.get(ip) ?? [];
  byIp.delete(ip);
  const short = hostname.split(".")[0]!;
  const fqdn = hostname.includes(".")
    ? hostname
    : setForOwn.filter((name) => name.startsWith(`${hostname}.`)).sort((a, b) => b.length - a.length)[0];
  const own = [...new Set([...(fqdn === undefined ? [] : [fqdn]), short, ...setForOwn])];
  const others = [...byIp].sort(([a], [b]) => parseIpv4(a)! - parseIpv4(b)!);
  return [
    ...HEADER,
    `${ip}\t${own.join(" ")}`,
    ...others.map(([address, list]) => `${address}\t${list.join(" ")}`),
    ...[...services]
      .sort(([a], [b]) => a.localeCompare(b))
      .flatMap(([name, addresses]) => addresses.map((address) => `${address}\t${name}`)),
    "",
  ].join("\n");
}

export function createClusterHosts(dir: string): ClusterHosts {
  return new HostsFiles(dir);
}

class HostsFiles implements ClusterHosts {
  private readonly names = new Map<string, string>();
  private services = new Map<string, readonly string[]>();
  private readonly pods = new Map<string, PodEntry>();
  /** File writes run one at a time, in order, so that the last state written is the last state set. */
  private queue: Promise<unknown> = Promise.resolve();
  private rewriteQueued = false;
  private failure: AirlockError | undefined;

  constructor(private readonly dir: string) {}

  set(name: string, ip: string | undefined): void {
    checkEntry(name, ip, name);
    if (ip === undefined) this.names.delete(name);
    else this.names.set(name, ip);
    this.rewriteAll();
  }

  setServices(names: ReadonlyMap<string, readonly string[]>): void {
    for (const [name, ips] of names) {
      checkEntry(name, undefined, name);
      for (const ip of ips) checkEntry(name, ip, name);
    }
    this.services = new Map(names);
    this.rewriteAll();
  }

  resolve(name: string): string[] {
    const ip = this.names.get(name);
    return [...(ip === undefined ? [] : [ip]), ...(this.services.get(name) ?? [])];
  }

  private rewriteAll(): void {
    // One rewrite of every file covers all the sets made before it starts.
    if (this.rewriteQueued) return;
    this.rewriteQueued = true;
    void this.serial(async () => {
      this.rewriteQueued = false;
      let first: AirlockError | undefined;
      for (const podKey of this.pods.keys())
        await this.write(podKey).catch((error: unknown) => (first ??= error as AirlockError));
      if (first !== undefined) throw first;
    }).catch((error: unknown) => {
      this.failure ??= error as AirlockError;
    });
  }

  async hostsFileFor(podKey: string, hostname: string, ip: string): Promise<string> {
    checkEntry(hostname, ip, podKey);
    const path = join(this.dir, fileName(podKey));
    const entry = { path, hostname, ip };
    this.pods.set(podKey, entry);
    try {
      await this.serial(() => this.write(podKey));
    } catch (error) {
      // A pod whose file cannot be written is not kept: later sets would only fail on it again.
      if (this.pods.get(podKey) === entry) this.pods.delete(podKey);
      throw error;
    }
    return path;
  }

  pathOf(podKey: string): string | undefined {
    return this.pods.get(podKey)?.path;
  }

  async release(podKey: string): Promise<void> {
    const pod = this.pods.get(podKey);
    if (pod === undefined) return;
    this.pods.delete(podKey);
    await this.serial(async () => {
      try {
        await rm(pod.path, { force: true });
      } catch (error) {
        // A path under something that is not a directory holds no file to remove.
        if (errnoCode(error) === "ENOTDIR") return;
        throw new AirlockError(
          "NODE_HOSTS_WRITE_FAILED",
          `removing ${pod.path} failed: ${(error as Error).message}`,
          {
            where: pod.path,
            hint: "the node's state directory must be writable",
            cause: error,
          },
        );
      }
    });
  }

  async flush(): Promise<void> {
    await this.serial(() => Promise.resolve());
    const failure = this.failure;
    this.failure = undefined;
    if (failure !== undefined) throw failure;
  }

  /**
   * Writes in place — the bind mount in the pod's containers holds this inode, not the path — the
   * new content over the old in one write, then cuts the file to its length: a truncate first would
   * leave a lookup in between an empty file.
   */
  private async write(podKey: string): Promise<void> {
    const pod = this.pods.get(podKey);
    if (pod === undefined) return;
    try {
      await mkdir(this.dir, { recursive: true });
      const content = Buffer.from(renderHostsFile(this.names, pod.hostname, pod.ip, this.services));
      // Read-write and created if missing, but neither truncated nor appending (append ignores offsets).
      const handle = await open(pod.path, constants.O_RDWR | constants.O_CREAT, 0o644);
      try {
        await handle.write(content, 0, content.byteLength, 0);
        await handle.truncate(content.byteLength);
      } finally {
        await handle.close();
      }
    } catch (error) {
      throw new AirlockError(
        "NODE_HOSTS_WRITE_FAILED",
        `writing ${pod.path} failed: ${(error as Error).message}`,
        {
          where: pod.path,
          hint: "the node's state directory must be writable",
          cause: error,
        },
      );
    }
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
