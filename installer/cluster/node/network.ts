import { randomBytes } from "node:crypto";
import { AirlockError } from "../../../registry/oci/index.js";
import { CommandFailedError, runCommand, type CommandRunner } from "../../host/index.js";
import {
  BENCHMARK_RANGE,
  contains,
  formatCidr,
  formatIpv4,
  networksInUse,
  overlaps,
  parseCidr,
  size,
  subnetsFor,
  type Cidr,
} from "./subnet.js";

export interface PodNetworkOptions {
  /** Names everything the network creates; 1–6 lowercase letters and digits, starting with a letter. */
  prefix: string;
  /** A network inside 198.18.0.0/15 on no host interface; by default a free /24 picked from the prefix. */
  subnet?: string;
  run?: CommandRunner;
}

export interface PodAddress {
  podKey: string;
  netnsName: string;
  /** For runc's `linux.namespaces` entry of type network. */
  netnsPath: string;
  ip: string;
  hostname: string;
}

export interface PodNetwork {
  readonly prefix: string;
  readonly bridge: string;
  /** The bridge's address: how the host (tests, probes) is seen from the pods. */
  readonly gateway: string;
  readonly subnet: string;
  /** A network namespace with `lo` up and a veth on the bridge as `eth0` holding the pod's address. */
  attach(podKey: string, hostname: string): Promise<PodAddress>;
  /** Removes the pod's veth and namespace; a pod not attached is a no-op. */
  detach(podKey: string): Promise<void>;
  addressOf(podKey: string): PodAddress | undefined;
  /** Removes every pod's veth and namespace and the bridge, by the names recorded when they were made. */
  close(): Promise<void>;
}

/** The interface a pod sees, as under a CNI plugin. */
export const POD_INTERFACE = "eth0";
const NETNS_DIR = "/run/netns";
const PREFIX_PATTERN = /^[a-z][a-z0-9]{0,5}$/;

/** A fresh per-run prefix, `al` and 4 hex digits: short enough that every interface name fits 15 characters. */
export function newRunPrefix(): string {
  return `al${randomBytes(2).toString("hex")}`;
}

/** The names a network with `prefix` gives its bridge, host-side veths and namespaces, and nothing else. */
function names(prefix: string) {
  return {
    bridge: `${prefix}br`,
    hostVeth: (offset: number) => `${prefix}v${offset}`,
    netns: (offset: number) => `${prefix}-${offset}`,
    isLink: (name: string) => name === `${prefix}br` || new RegExp(`^${prefix}v\\d+$`).test(name),
    isNetns: (name: string) => new RegExp(`^${prefix}-\\d+$`).test(name),
  };
}

function checkPrefix(prefix: string): void {
  if (!PREFIX_PATTERN.test(prefix)) {
    throw new AirlockError(
      "NODE_PREFIX_INVALID",
      `the run prefix ${JSON.stringify(prefix)} is not 1–6 lowercase letters and digits`,
      {
        where: prefix,
        hint: "use newRunPrefix(): interface names must fit 15 characters",
      },
    );
  }
}

/** Whether a failed delete failed because the thing is already gone. */
function alreadyGone(error: unknown): boolean {
  return (
    error instanceof CommandFailedError && /Cannot find device|No such file or directory/.test(error.stderr)
  );
}

async function linkNames(run: CommandRunner): Promise<string[]> {
  const { stdout } = await run("ip", ["-o", "link", "show"]);
  return [...stdout.matchAll(/^\d+:\s+([^:@\s]+)/gm)].map((match) => match[1]!);
}

async function netnsNames(run: CommandRunner): Promise<string[]> {
  const { stdout } = await run("ip", ["netns", "list"]);
  return stdout
    .split("\n")
    .map((line) => line.trim().split(/\s+/)[0] ?? "")
    .filter((name) => name !== "");
}

/** Deletes a link or namespace by name; one already gone counts as deleted. */
async function remove(run: CommandRunner, kind: "link" | "netns", name: string): Promise<void> {
  try {
    await run("ip", kind === "link" ? ["link", "del", name] : ["netns", "del", name]);
  } catch (error) {
    if (!alreadyGone(error)) throw error;
  }
}

/**
 * Deletes whatever a network with `prefix` left behind (a test run that was killed): its veths (which
 * takes their pod ends along), its bridge and its namespaces, matched by the exact names it gives them.
 * Returns the names removed.
 */
export async function removeLeftovers(prefix: string, run: CommandRunner = runCommand): Promise<string[]> {
  checkPrefix(prefix);
  const ours = names(prefix);
  const links = (await linkNames(run)).filter(ours.isLink);
  // Veths before the bridge, so that none is left detached from it if a delete fails midway.
  links.sort((a, b) => Number(a === ours.bridge) - Number(b === ours.bridge));
  for (const link of links) await remove(run, "link", link);
  const namespaces = (await netnsNames(run)).filter(ours.isNetns);
  for (const netns of namespaces) await remove(run, "netns", netns);
  return [...links, ...namespaces];
}

async function chooseSubnet(
  run: CommandRunner,
  prefix: string,
  requested: string | undefined,
): Promise<Cidr> {
  const addresses = await run("ip", ["-o", "-4", "addr", "show"]);
  const routes = await run("ip", ["-4", "route", "show"]);
  const inUse = networksInUse(addresses.stdout, routes.stdout);
  const taken = (cidr: Cidr) => inUse.find((used) => overlaps(used, cidr));
  if (requested === undefined) {
    for (const candidate of subnetsFor(prefix)) if (taken(candidate) === undefined) return candidate;
    throw new AirlockError(
      "NODE_SUBNET_IN_USE",
      "every /24 of 198.18.0.0/15 is on a host interface or route",
      {
        where: prefix,
        hint: "remove networks left by killed runs: removeLeftovers(prefix)",
      },
    );
  }
  const subnet = parseCidr(requested, { aligned: true });
  if (subnet === undefined || subnet.length > 30) {
    throw new AirlockError(
      "NODE_SUBNET_INVALID",
      `${requested} is not a network address with a prefix length up to /30`,
      {
        where: requested,
        hint: "give a network such as 198.18.7.0/24",
      },
    );
  }
  if (!contains(BENCHMARK_RANGE, subnet)) {
    throw new AirlockError("NODE_SUBNET_OUTSIDE_RANGE", `${requested} is outside 198.18.0.0/15`, {
      where: requested,
      hint: "pod networks use the benchmarking range 198.18.0.0/15 only, which no real network routes",
    });
  }
  const clash = taken(subnet);
  if (clash !== undefined) {
    throw new AirlockError(
      "NODE_SUBNET_IN_USE",
      `${requested} overlaps ${formatCidr(clash)}, already on this host`,
      {
        where: requested,
        hint: "leave out the subnet to have a free one picked, or remove the network holding it",
      },
    );
  }
  return subnet;
}

/**
 * A pod network like a CNI bridge plugin's: a Linux bridge holding the gateway (first host address),
 * one namespace per pod with a veth on the bridge. Deliberately no NAT, no iptables rule, no change to
 * `ip_forward` and no default route in the pods: the subnet is reachable from the host and between
 * pods, and nothing in it can leave the machine.
 */
export async function createPodNetwork(options: PodNetworkOptions): Promise<PodNetwork> {
  const { prefix } = options;
  checkPrefix(prefix);
  const run = options.run ?? runCommand;
  const ours = names(prefix);
  const leftovers = [
    ...(await linkNames(run)).filter(ours.isLink),
    ...(await netnsNames(run)).filter(ours.isNetns),
  ];
  if (leftovers.length > 0) {
    throw new AirlockError(
      "NODE_NETWORK_IN_USE",
      `the prefix ${prefix} already names ${leftovers.join(", ")}`,
      {
        where: prefix,
        hint: "another run uses this prefix, or one was killed: use newRunPrefix(), or removeLeftovers(prefix)",
      },
    );
  }
  const subnet = await chooseSubnet(run, prefix, options.subnet);
  const gateway = formatIpv4(subnet.network + 1);
  try {
    await run("ip", ["link", "add", ours.bridge, "type", "bridge"]);
    await run("ip", ["addr", "add", `${gateway}/${subnet.length}`, "dev", ours.bridge]);
    await run("ip", ["link", "set", ours.bridge, "up"]);
  } catch (error) {
    await remove(run, "link", ours.bridge).catch(() => undefined);
    throw networkError(`creating the bridge ${ours.bridge} failed`, ours.bridge, error);
  }
  return new BridgeNetwork(run, prefix, subnet, gateway);
}

function networkError(what: string, where: string, cause: unknown): AirlockError {
  return new AirlockError("NODE_NETWORK_FAILED", `${what}: ${(cause as Error).message}`, {
    where,
    hint: "the pod network needs root and iproute2 (`ip`): run as root, after `bash scripts/setup`",
    cause,
  });
}

interface Attachment {
  address: PodAddress;
  offset: number;
  hostVeth: string;
}

class BridgeNetwork implements PodNetwork {
  readonly bridge: string;
  readonly subnet: string;
  private readonly names: ReturnType<typeof names>;
  private readonly pods = new Map<string, Attachment>();
  /** Host offsets from here on are tried first: a freed address is not handed out again at once. */
  private nextOffset = 2;
  /** Network changes run one at a time, so that concurrent attaches never pick the same address. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  private bridgeExists = true;

  constructor(
    private readonly run: CommandRunner,
    readonly prefix: string,
    private readonly cidr: Cidr,
    readonly gateway: string,
  ) {
    this.names = names(prefix);
    this.bridge = this.names.bridge;
    this.subnet = formatCidr(cidr);
  }

  attach(podKey: string, hostname: string): Promise<PodAddress> {
    return this.serial(async () => {
      if (this.closed) throw this.closedError(podKey);
      if (this.pods.has(podKey)) {
        throw new AirlockError(
          "NODE_POD_ATTACHED",
          `${podKey} already has an address: ${this.pods.get(podKey)!.address.ip}`,
          {
            where: podKey,
            hint: "detach the pod before attaching it again",
          },
        );
      }
      const offset = this.allocate(podKey);
      const netnsName = this.names.netns(offset);
      const hostVeth = this.names.hostVeth(offset);
      const ip = formatIpv4(this.cidr.network + offset);
      try {
        await this.run("ip", ["netns", "add", netnsName]);
        await this.run("ip", [
          "link",
          "add",
          hostVeth,
          "type",
          "veth",
          "peer",
          "name",
          POD_INTERFACE,
          "netns",
          netnsName,
        ]);
        await this.run("ip", ["link", "set", hostVeth, "master", this.bridge, "up"]);
        await this.run("ip", [
          "-n",
          netnsName,
          "addr",
          "add",
          `${ip}/${this.cidr.length}`,
          "dev",
          POD_INTERFACE,
        ]);
        await this.run("ip", ["-n", netnsName, "link", "set", "lo", "up"]);
        await this.run("ip", ["-n", netnsName, "link", "set", POD_INTERFACE, "up"]);
      } catch (error) {
        await this.removePod(hostVeth, netnsName).catch(() => undefined);
        throw networkError(`attaching ${podKey} failed`, podKey, error);
      }
      const address = { podKey, netnsName, netnsPath: `${NETNS_DIR}/${netnsName}`, ip, hostname };
      this.pods.set(podKey, { address, offset, hostVeth });
      this.nextOffset = offset + 1;
      return { ...address };
    });
  }

  detach(podKey: string): Promise<void> {
    return this.serial(async () => {
      const pod = this.pods.get(podKey);
      if (pod === undefined) return;
      try {
        await this.removePod(pod.hostVeth, pod.address.netnsName);
      } catch (error) {
        throw networkError(`detaching ${podKey} failed`, podKey, error);
      }
      this.pods.delete(podKey);
    });
  }

  addressOf(podKey: string): PodAddress | undefined {
    const pod = this.pods.get(podKey);
    return pod === undefined ? undefined : { ...pod.address };
  }

  close(): Promise<void> {
    return this.serial(async () => {
      this.closed = true;
      const failures: string[] = [];
      for (const [podKey, pod] of this.pods) {
        try {
          await this.removePod(pod.hostVeth, pod.address.netnsName);
          this.pods.delete(podKey);
        } catch (error) {
          failures.push(`${pod.hostVeth}, ${pod.address.netnsName}: ${(error as Error).message}`);
        }
      }
      // A bridge is deleted with its remaining ports detached, so it goes even if a veth would not.
      if (this.bridgeExists) {
        try {
          await remove(this.run, "link", this.bridge);
          this.bridgeExists = false;
        } catch (error) {
          failures.push(`${this.bridge}: ${(error as Error).message}`);
        }
      }
      if (failures.length > 0) {
        throw new AirlockError(
          "NODE_NETWORK_CLEANUP_FAILED",
          `the pod network left: ${failures.join("; ")}`,
          {
            where: this.prefix,
            hint: `remove them with removeLeftovers("${this.prefix}")`,
          },
        );
      }
    });
  }

  /**
   * The host veth first: a namespace that a process still holds outlives `ip netns del`, and its veth
   * with it; deleting the host end takes the pod end along at once.
   */
  private async removePod(hostVeth: string, netnsName: string): Promise<void> {
    await remove(this.run, "link", hostVeth);
    await remove(this.run, "netns", netnsName);
  }

  private allocate(podKey: string): number {
    const hosts = size(this.cidr) - 3; // less the network, gateway and broadcast addresses
    const used = new Set([...this.pods.values()].map((pod) => pod.offset));
    for (let step = 0; step < hosts; step++) {
      const offset = 2 + ((this.nextOffset - 2 + step) % hosts);
      if (!used.has(offset)) return offset;
    }
    throw new AirlockError("NODE_NETWORK_FULL", `no address left in ${this.subnet} for ${podKey}`, {
      where: podKey,
      hint: "detach pods that are gone, or create the network with a larger subnet",
    });
  }

  private closedError(podKey: string): AirlockError {
    return new AirlockError("NODE_NETWORK_CLOSED", `the pod network ${this.prefix} is closed`, {
      where: podKey,
      hint: "create a new pod network",
    });
  }

  private serial<T>(task: () => Promise<T>): Promise<T> {
    const result = this.queue.then(task);
    this.queue = result.catch(() => undefined);
    return result;
  }
}
