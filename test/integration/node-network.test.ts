/**
 * The containerd node's pod network with the real `ip` (root): namespaces, veths and a bridge in
 * 198.18.0.0/15, a hosts file that resolves cluster names inside a pod's namespace, nothing left after
 * close and nothing outside the run's prefix touched. Traffic goes only to the namespaces made here,
 * their bridge's address and loopback.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { connect, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createClusterHosts } from "../../installer/cluster/node/hosts.js";
import {
  createPodNetwork,
  newRunPrefix,
  removeLeftovers,
  type PodAddress,
  type PodNetwork,
} from "../../installer/cluster/node/network.js";
import { startDaemon, type Daemon } from "../helpers/daemons.js";
import { expectAirlockError, runTool, waitFor } from "../helpers/fixtures.js";

const PORT = 4222;

interface HostState {
  links: string[];
  namespaces: string[];
  ipForward: string;
}

async function ip(...args: string[]): Promise<string> {
  const result = await runTool("ip", args);
  if (result.code !== 0) throw new Error(`ip ${args.join(" ")} failed: ${result.stderr}`);
  return result.stdout.toString();
}

async function hostState(): Promise<HostState> {
  const links = [...(await ip("-o", "link", "show")).matchAll(/^\d+:\s+([^:@\s]+)/gm)].map((m) => m[1]!);
  const namespaces = (await ip("netns", "list"))
    .split("\n")
    .map((line) => line.split(" ")[0]!)
    .filter((name) => name !== "");
  const ipForward = (await readFile("/proc/sys/net/ipv4/ip_forward", "utf8")).trim();
  return { links: links.sort(), namespaces: namespaces.sort(), ipForward };
}

/** Names a pod network of any run gives (another test may be running one): the rest must stay untouched. */
const ANY_RUN = /^al[a-z0-9]{0,4}(br|v\d+|-\d+)$/;

function outsideAnyRun(state: HostState): HostState {
  const keep = (name: string) => !ANY_RUN.test(name);
  return { ...state, links: state.links.filter(keep), namespaces: state.namespaces.filter(keep) };
}

function withPrefix(state: HostState, prefix: string): string[] {
  return [...state.links, ...state.namespaces].filter((name) => name.startsWith(prefix));
}

/**
 * A Node one-liner in a pod's namespace. `hostsFile`, when given, is bind-mounted over /etc/hosts as in a
 * container, with an nsswitch.conf that looks names up in files only: a miss sends no DNS query.
 */
function inPod(pod: PodAddress, script: string, hostsFile?: string): string[] {
  const node = `${process.execPath} -e ${shellQuote(script)}`;
  const command =
    hostsFile === undefined
      ? node
      : `mount --bind ${hostsFile} /etc/hosts && mount --bind ${hostsFile}.nsswitch /etc/nsswitch.conf && exec ${node}`;
  return ["netns", "exec", pod.netnsName, "unshare", "-m", "--propagation", "private", "sh", "-c", command];
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/** Connects to host:port with a 5 s bound, prints what the peer sent or the error's code, exits 0 or 1. */
function clientScript(host: string, port: number): string {
  return `const s = require("net").connect(${port}, ${JSON.stringify(host)}); let d = "";
s.setTimeout(5000, () => { console.log("TIMEOUT"); process.exit(1); });
s.on("data", (c) => (d += c)); s.on("end", () => { console.log(d); process.exit(0); });
s.on("error", (e) => { console.log(e.code); process.exit(1); });`;
}

function readFromHost(host: string, port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, host);
    let data = "";
    socket.setTimeout(5000, () => socket.destroy(new Error(`timed out reaching ${host}:${port}`)));
    socket.on("data", (chunk: Buffer) => (data += chunk.toString()));
    socket.on("end", () => resolve(data));
    socket.on("error", reject);
  });
}

function podRoutes(pod: PodAddress, family: "-4" | "-6"): Promise<string> {
  return ip("-n", pod.netnsName, family, "route", "show");
}

describe("pod network (real ip, root)", () => {
  let before: HostState;
  let prefix: string;
  let network: PodNetwork;
  let hostsDir: string;
  let a: PodAddress;
  let b: PodAddress;
  let server: Daemon | undefined;
  let loopbackServer: Server | undefined;

  beforeAll(async () => {
    before = await hostState();
    prefix = newRunPrefix();
    hostsDir = await mkdtemp(join(tmpdir(), "airlock-hosts-"));
    network = await createPodNetwork({ prefix });
    [a, b] = await Promise.all([
      network.attach("hubble-system/msgbroker-0", "msgbroker-0"),
      network.attach("hubble-system/msgbroker-1", "msgbroker-1"),
    ]);
  });

  afterAll(async () => {
    await server?.stop();
    await new Promise((resolve) =>
      loopbackServer === undefined ? resolve(undefined) : loopbackServer.close(resolve),
    );
    await network?.close();
    await removeLeftovers(prefix);
    await rm(hostsDir, { recursive: true, force: true });
  });

  it("puts the bridge in 198.18.0.0/15 with the gateway address, and each pod at its own address", async () => {
    expect(network.subnet).toMatch(/^198\.1[89]\.\d+\.0\/24$/);
    expect(await ip("-o", "-4", "addr", "show", "dev", network.bridge)).toContain(
      `inet ${network.gateway}/24`,
    );
    expect(a.ip).not.toBe(b.ip);
    for (const pod of [a, b]) {
      expect(pod.netnsPath).toBe(`/run/netns/${pod.netnsName}`);
      const links = [
        ...(await ip("-n", pod.netnsName, "-o", "link", "show")).matchAll(/^\d+:\s+([^:@\s]+)/gm),
      ];
      expect(links.map((m) => m[1])).toEqual(["lo", "eth0"]);
      expect(await ip("-n", pod.netnsName, "-o", "link", "show", "lo")).toMatch(/[<,]UP[,>]/);
      expect(await ip("-n", pod.netnsName, "-o", "-4", "addr", "show", "dev", "eth0")).toContain(
        `inet ${pod.ip}/24`,
      );
    }
  });

  it("gives pods no route beyond their subnet, and leaves host forwarding alone", async () => {
    for (const pod of [a, b]) {
      expect((await podRoutes(pod, "-4")).trim()).toBe(
        `${network.subnet} dev eth0 proto kernel scope link src ${pod.ip}`,
      );
      expect(await podRoutes(pod, "-6")).not.toMatch(/default|via/);
    }
    expect((await hostState()).ipForward).toBe(before.ipForward);
  });

  it("resolves a pod's cluster name from the generated hosts file and connects to it from the other pod and the host", async () => {
    const hosts = createClusterHosts(hostsDir);
    const fqdnA = "msgbroker-0.msgbroker-headless.hubble-system.svc.cluster.local";
    hosts.set(fqdnA, a.ip);
    hosts.set("msgbroker-0.msgbroker-headless.hubble-system.svc", a.ip);
    hosts.set("msgbroker-1.msgbroker-headless.hubble-system.svc.cluster.local", b.ip);
    const fileA = await hosts.hostsFileFor(a.podKey, a.hostname, a.ip);
    const fileB = await hosts.hostsFileFor(b.podKey, b.hostname, b.ip);
    await writeFile(`${fileB}.nsswitch`, "hosts: files\n");
    expect(await readFile(fileA, "utf8")).toContain(`${a.ip}\t${fqdnA} msgbroker-0 `);

    const serve = `require("net").createServer((s) => s.end("hello from msgbroker-0"))
      .listen(${PORT}, ${JSON.stringify(a.ip)}, () => console.log("listening"));`;
    server = startDaemon("ip", inPod(a, serve));
    await waitFor(
      () => server!.output().includes("listening") || server!.exited() !== undefined,
      10_000,
      "the pod's server",
    );
    expect(server.exited(), server.output()).toBeUndefined();

    const byName = await runTool("ip", inPod(b, clientScript(fqdnA, PORT), fileB));
    expect(byName.stdout.toString().trim(), byName.stderr).toBe("hello from msgbroker-0");
    expect(await readFromHost(a.ip, PORT)).toBe("hello from msgbroker-0");

    // The bind mount holds the inode: an update must land in the same file, not a renamed one.
    const inode = (await stat(fileB)).ino;
    hosts.set(fqdnA, undefined);
    await hosts.flush();
    expect((await stat(fileB)).ino).toBe(inode);
    expect(await readFile(fileB, "utf8")).not.toContain(fqdnA);
    const gone = await runTool("ip", inPod(b, clientScript(fqdnA, PORT), fileB));
    expect(gone.stdout.toString().trim()).toBe("ENOTFOUND");
  });

  it("keeps the host's loopback out of reach of a pod", async () => {
    loopbackServer = createServer((socket) => socket.end("host loopback"));
    await new Promise<void>((resolve) => loopbackServer!.listen(0, "127.0.0.1", resolve));
    const port = (loopbackServer.address() as { port: number }).port;
    expect(await readFromHost("127.0.0.1", port)).toBe("host loopback");
    for (const target of ["127.0.0.1", network.gateway]) {
      const result = await runTool("ip", inPod(b, clientScript(target, port)));
      expect(result.stdout.toString().trim(), `${target}:${port} from the pod`).toBe("ECONNREFUSED");
    }
  });

  it("refuses a subnet already on a host interface", async () => {
    await expectAirlockError(
      createPodNetwork({ prefix: newRunPrefix(), subnet: network.subnet }),
      "NODE_SUBNET_IN_USE",
    );
  });

  it("detach removes the pod's namespace and veth, and leaves the other pod", async () => {
    await server?.stop();
    server = undefined;
    await network.detach(a.podKey);
    const state = await hostState();
    expect(state.namespaces).not.toContain(a.netnsName);
    expect(state.namespaces).toContain(b.netnsName);
    expect(withPrefix(state, prefix).sort()).toEqual(
      [b.netnsName, network.bridge, `${prefix}v${b.ip.split(".")[3]}`].sort(),
    );
    expect(network.addressOf(a.podKey)).toBeUndefined();
  });

  it("close leaves nothing with the prefix and the host's interfaces and namespaces as they were", async () => {
    await network.close();
    const after = await hostState();
    expect(withPrefix(after, prefix)).toEqual([]);
    expect(outsideAnyRun(after)).toEqual(outsideAnyRun(before));
  });
});

describe("removeLeftovers (real ip, root)", () => {
  it("removes what a killed run left, by its prefix only", async () => {
    const before = await hostState();
    const prefix = `al${randomBytes(2).toString("hex").slice(0, 3)}`;
    const killed = await createPodNetwork({ prefix });
    const neighbour = await createPodNetwork({ prefix: `${prefix}z` });
    try {
      await killed.attach("ns/a", "a");
      await killed.attach("ns/b", "b");
      await neighbour.attach("ns/c", "c");
      const removed = await removeLeftovers(prefix);
      expect(removed).toHaveLength(5);
      const state = await hostState();
      expect(withPrefix(state, prefix).sort()).toEqual(withPrefix(state, `${prefix}z`).sort());
      expect(withPrefix(state, `${prefix}z`)).toHaveLength(3);
    } finally {
      await neighbour.close();
      await removeLeftovers(prefix);
    }
    expect(outsideAnyRun(await hostState())).toEqual(outsideAnyRun(before));
  });
});
