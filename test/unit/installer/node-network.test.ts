import { describe, expect, it } from "vitest";
import { createPodNetwork, removeLeftovers } from "../../../installer/cluster/node/network.js";
import { CommandFailedError, type CommandRunner } from "../../../installer/host/index.js";
import { formatCidr, subnetsFor } from "../../../installer/cluster/node/subnet.js";
import { expectAirlockError } from "../../helpers/fixtures.js";

const P = "al1f2e";
const LO = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536\\    link/loopback 00:00:00:00:00:00\n";
const ETH0 = "4: eth0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400\\    link/ether 02:fc:00:00:00:01\n";

interface HostOutputs {
  links?: string;
  netns?: string;
  addrs?: string;
  routes?: string;
}

/** A runner that records every command line, answers the listings from `outputs`, and fails what `fail` names. */
function recorder(outputs: HostOutputs = {}, fail: (line: string) => string | undefined = () => undefined) {
  const calls: string[] = [];
  let delayed = false;
  const run: CommandRunner = async (command, args) => {
    const line = [command, ...args].join(" ");
    calls.push(line);
    // Yield to the event loop between commands, so that unserialised attaches would interleave.
    if (delayed) await new Promise((resolve) => setImmediate(resolve));
    const stderr = fail(line);
    if (stderr !== undefined) throw new CommandFailedError(command, args, 2, stderr);
    const listing: Record<string, string | undefined> = {
      "ip -o link show": outputs.links ?? LO + ETH0,
      "ip netns list": outputs.netns ?? "",
      "ip -o -4 addr show":
        outputs.addrs ?? "4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\n",
      "ip -4 route show":
        outputs.routes ?? "default via 192.0.2.1 dev eth0\n192.0.2.0/24 dev eth0 proto kernel\n",
    };
    return { stdout: listing[line] ?? "", stderr: "", code: 0 };
  };
  return { calls, run, slow: () => (delayed = true) };
}

const PICKED = [...subnetsFor(P)][0]!;
const BASE = formatCidr(PICKED).replace(/0\/24$/, "");

describe("createPodNetwork", () => {
  it("checks for leftovers and free addresses, then makes the bridge with the gateway, and nothing else", async () => {
    const host = recorder();
    const network = await createPodNetwork({ prefix: P, run: host.run });
    expect(network.subnet).toBe(formatCidr(PICKED));
    expect(network.gateway).toBe(`${BASE}1`);
    expect(network.bridge).toBe(`${P}br`);
    expect(host.calls).toEqual([
      "ip -o link show",
      "ip netns list",
      "ip -o -4 addr show",
      "ip -4 route show",
      `ip link add ${P}br type bridge`,
      `ip addr add ${BASE}1/24 dev ${P}br`,
      `ip link set ${P}br up`,
    ]);
  });

  it("skips a /24 already on the host when picking", async () => {
    const second = [...subnetsFor(P)][1]!;
    const host = recorder({ routes: `${formatCidr(PICKED)} dev other scope link\n` });
    expect((await createPodNetwork({ prefix: P, run: host.run })).subnet).toBe(formatCidr(second));
  });

  it("refuses a bad prefix before running anything", async () => {
    for (const prefix of ["", "AL12", "al12345", "1abc", "al-1"]) {
      const host = recorder();
      await expectAirlockError(createPodNetwork({ prefix, run: host.run }), "NODE_PREFIX_INVALID");
      expect(host.calls).toEqual([]);
    }
  });

  it("refuses a prefix that already names links or namespaces", async () => {
    const host = recorder({ links: `${LO}9: ${P}v3@if2: <BROADCAST> mtu 1500\n`, netns: `${P}-3 (id: 0)\n` });
    const error = await expectAirlockError(
      createPodNetwork({ prefix: P, run: host.run }),
      "NODE_NETWORK_IN_USE",
    );
    expect(error.message).toContain(`${P}v3, ${P}-3`);
    expect(error.hint).toContain("removeLeftovers");
  });

  it("refuses subnets outside 198.18.0.0/15, malformed ones and ones on the host", async () => {
    const cases: [string, string, HostOutputs?][] = [
      ["10.0.0.0/24", "NODE_SUBNET_OUTSIDE_RANGE"],
      ["198.20.0.0/24", "NODE_SUBNET_OUTSIDE_RANGE"],
      ["198.16.0.0/14", "NODE_SUBNET_OUTSIDE_RANGE"],
      ["198.18.0.1/24", "NODE_SUBNET_INVALID"],
      ["198.18.0.0/31", "NODE_SUBNET_INVALID"],
      ["198.18.0.0", "NODE_SUBNET_INVALID"],
      ["banana", "NODE_SUBNET_INVALID"],
      ["198.18.4.0/25", "NODE_SUBNET_IN_USE", { addrs: "7: x    inet 198.18.4.1/24 scope global x\n" }],
      ["198.19.0.0/16", "NODE_SUBNET_IN_USE", { routes: "198.19.200.7 dev y scope link\n" }],
    ];
    for (const [subnet, code, outputs] of cases) {
      const host = recorder(outputs);
      await expectAirlockError(createPodNetwork({ prefix: P, subnet, run: host.run }), code, subnet);
      expect(host.calls.some((line) => line.includes(" add "))).toBe(false);
    }
  });

  it("removes a half-made bridge when making it fails", async () => {
    const host = recorder({}, (line) =>
      line.startsWith("ip addr add") ? "RTNETLINK answers: Permission denied" : undefined,
    );
    const error = await expectAirlockError(
      createPodNetwork({ prefix: P, run: host.run }),
      "NODE_NETWORK_FAILED",
      `${P}br`,
    );
    expect(error.message).toContain("Permission denied");
    expect(host.calls.at(-1)).toBe(`ip link del ${P}br`);
  });
});

describe("PodNetwork", () => {
  it("attaches a pod: its namespace, a veth onto the bridge as eth0, its address, lo and eth0 up", async () => {
    const host = recorder();
    const network = await createPodNetwork({ prefix: P, run: host.run });
    host.calls.length = 0;
    const pod = await network.attach("hubble-system/msgbroker-0", "msgbroker-0");
    expect(pod).toEqual({
      podKey: "hubble-system/msgbroker-0",
      netnsName: `${P}-2`,
      netnsPath: `/run/netns/${P}-2`,
      ip: `${BASE}2`,
      hostname: "msgbroker-0",
    });
    expect(host.calls).toEqual([
      `ip netns add ${P}-2`,
      `ip link add ${P}v2 type veth peer name eth0 netns ${P}-2`,
      `ip link set ${P}v2 master ${P}br up`,
      `ip -n ${P}-2 addr add ${BASE}2/24 dev eth0`,
      `ip -n ${P}-2 link set lo up`,
      `ip -n ${P}-2 link set eth0 up`,
    ]);
    expect(network.addressOf(pod.podKey)).toEqual(pod);
    await expectAirlockError(network.attach(pod.podKey, "msgbroker-0"), "NODE_POD_ATTACHED", pod.podKey);
  });

  it("serialises concurrent attaches: distinct addresses, each pod's commands together", async () => {
    const host = recorder();
    const network = await createPodNetwork({ prefix: P, run: host.run });
    host.calls.length = 0;
    host.slow();
    const pods = await Promise.all(["a", "b", "c"].map((name) => network.attach(`ns/${name}`, name)));
    expect(pods.map((pod) => pod.ip)).toEqual([`${BASE}2`, `${BASE}3`, `${BASE}4`]);
    const namespaceOrder = host.calls.map((line) => /al1f2e[-v](\d+)/.exec(line)?.[1]);
    expect(namespaceOrder).toEqual([
      ...Array<string>(6).fill("2"),
      ...Array<string>(6).fill("3"),
      ...Array<string>(6).fill("4"),
    ]);
  });

  it("detaches by the recorded names, and does not hand the freed address out again at once", async () => {
    const host = recorder();
    const network = await createPodNetwork({ prefix: P, run: host.run });
    await network.attach("ns/a", "a");
    await network.attach("ns/b", "b");
    host.calls.length = 0;
    await network.detach("ns/a");
    await network.detach("ns/never-attached");
    expect(host.calls).toEqual([`ip link del ${P}v2`, `ip netns del ${P}-2`]);
    expect(network.addressOf("ns/a")).toBeUndefined();
    expect((await network.attach("ns/c", "c")).ip).toBe(`${BASE}4`);
  });

  it("rolls back a failed attach and reports the command's message", async () => {
    const host = recorder({}, (line) =>
      line.includes("addr add 198.") && line.startsWith("ip -n")
        ? "Error: ipv4: Address already assigned."
        : undefined,
    );
    const network = await createPodNetwork({ prefix: P, run: host.run });
    host.calls.length = 0;
    const error = await expectAirlockError(network.attach("ns/a", "a"), "NODE_NETWORK_FAILED", "ns/a");
    expect(error.message).toContain("Address already assigned");
    expect(host.calls.slice(-2)).toEqual([`ip link del ${P}v2`, `ip netns del ${P}-2`]);
    expect(network.addressOf("ns/a")).toBeUndefined();
  });

  it("runs out of addresses with a typed error", async () => {
    const host = recorder();
    const network = await createPodNetwork({ prefix: P, subnet: "198.19.255.252/30", run: host.run });
    expect((await network.attach("ns/a", "a")).ip).toBe("198.19.255.254");
    await expectAirlockError(network.attach("ns/b", "b"), "NODE_NETWORK_FULL", "ns/b");
  });

  it("close removes every pod's veth and namespace and the bridge, once; then refuses attaches", async () => {
    const host = recorder();
    const network = await createPodNetwork({ prefix: P, run: host.run });
    await network.attach("ns/a", "a");
    await network.attach("ns/b", "b");
    host.calls.length = 0;
    await network.close();
    await network.close();
    expect(host.calls).toEqual([
      `ip link del ${P}v2`,
      `ip netns del ${P}-2`,
      `ip link del ${P}v3`,
      `ip netns del ${P}-3`,
      `ip link del ${P}br`,
    ]);
    await expectAirlockError(network.attach("ns/c", "c"), "NODE_NETWORK_CLOSED");
  });

  it("close counts what is already gone as removed, and goes on past a failure to name what is left", async () => {
    const host = recorder({}, (line) => {
      if (line === `ip link del ${P}v2`) return `Cannot find device "${P}v2"`;
      if (line === `ip link del ${P}v3`) return "RTNETLINK answers: Operation not permitted";
      return undefined;
    });
    const network = await createPodNetwork({ prefix: P, run: host.run });
    await network.attach("ns/a", "a");
    await network.attach("ns/b", "b");
    host.calls.length = 0;
    const error = await expectAirlockError(network.close(), "NODE_NETWORK_CLEANUP_FAILED", P);
    expect(error.message).toContain(`${P}v3, ${P}-3`);
    expect(error.message).not.toContain(`${P}v2`);
    expect(error.hint).toContain(`removeLeftovers("${P}")`);
    expect(host.calls).toEqual([
      `ip link del ${P}v2`,
      `ip netns del ${P}-2`,
      `ip link del ${P}v3`,
      `ip link del ${P}br`,
    ]);
  });

  it("never touches forwarding, NAT, iptables or routes beyond the subnet", async () => {
    const host = recorder();
    const network = await createPodNetwork({ prefix: P, run: host.run });
    await network.attach("ns/a", "a");
    await network.detach("ns/a");
    await network.close();
    expect(host.calls.every((line) => line.startsWith("ip "))).toBe(true);
    expect(host.calls.filter((line) => /route|sysctl|forward|nat|masquerade|default/.test(line))).toEqual([
      "ip -4 route show",
    ]);
  });
});

describe("removeLeftovers", () => {
  it("deletes the prefix's veths, then its bridge, then its namespaces, and nothing of other prefixes", async () => {
    const host = recorder({
      links: [
        LO,
        ETH0,
        `10: ${P}br: <BROADCAST,MULTICAST,UP> mtu 1500\n`,
        `12: ${P}v7@if2: <BROADCAST,MULTICAST,UP> mtu 1500 master ${P}br\n`,
        `13: ${P}zbr: <BROADCAST> mtu 1500\n`,
        `14: ${P}v7x: <BROADCAST> mtu 1500\n`,
        "15: al1f2v2: <BROADCAST> mtu 1500\n",
      ].join(""),
      netns: `${P}-7 (id: 0)\n${P}z-1 (id: 1)\ncustomer\n${P}-x\n`,
    });
    expect(await removeLeftovers(P, host.run)).toEqual([`${P}v7`, `${P}br`, `${P}-7`]);
    expect(host.calls).toEqual([
      "ip -o link show",
      `ip link del ${P}v7`,
      `ip link del ${P}br`,
      "ip netns list",
      `ip netns del ${P}-7`,
    ]);
  });

  it("refuses a bad prefix, which could match names it does not own", async () => {
    const host = recorder();
    await expectAirlockError(removeLeftovers(".*", host.run), "NODE_PREFIX_INVALID");
    expect(host.calls).toEqual([]);
  });
});
