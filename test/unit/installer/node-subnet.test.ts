import { describe, expect, it } from "vitest";
import {
  BENCHMARK_RANGE,
  contains,
  formatCidr,
  networksInUse,
  overlaps,
  parseCidr,
  subnetsFor,
} from "../../../installer/cluster/node/subnet.js";

const cidr = (text: string) => parseCidr(text)!;

describe("subnet arithmetic", () => {
  it("parses networks and bare addresses, and refuses malformed ones", () => {
    expect(formatCidr(cidr("198.18.7.0/24"))).toBe("198.18.7.0/24");
    expect(formatCidr(cidr("198.18.7.9/24"))).toBe("198.18.7.0/24");
    expect(formatCidr(cidr("10.1.2.3"))).toBe("10.1.2.3/32");
    expect(parseCidr("198.18.7.9/24", { aligned: true })).toBeUndefined();
    for (const bad of [
      "",
      "1.2.3",
      "1.2.3.4.5",
      "256.0.0.0/8",
      "01.2.3.4",
      "1.2.3.4/33",
      "1.2.3.4/x",
      "1.2.3.4/8/8",
    ]) {
      expect(parseCidr(bad), bad).toBeUndefined();
    }
  });

  it("tells overlap and containment apart", () => {
    expect(overlaps(cidr("198.18.0.0/15"), cidr("198.19.255.255"))).toBe(true);
    expect(overlaps(cidr("198.18.4.0/25"), cidr("198.18.4.128/25"))).toBe(false);
    expect(overlaps(cidr("0.0.0.0/0"), cidr("203.0.113.1"))).toBe(true);
    expect(contains(BENCHMARK_RANGE, cidr("198.19.3.0/24"))).toBe(true);
    expect(contains(BENCHMARK_RANGE, cidr("198.16.0.0/14"))).toBe(false);
    expect(contains(BENCHMARK_RANGE, cidr("198.20.0.0/24"))).toBe(false);
  });

  it("walks every /24 of 198.18.0.0/15 once, from a start that depends on the prefix", () => {
    const walk = [...subnetsFor("al1f2e")].map(formatCidr);
    expect(walk).toHaveLength(512);
    expect(new Set(walk).size).toBe(512);
    expect(walk.every((subnet) => contains(BENCHMARK_RANGE, cidr(subnet)) && subnet.endsWith(".0/24"))).toBe(
      true,
    );
    expect(subnetsFor("al0000").next().value).not.toEqual(subnetsFor("al0001").next().value);
  });

  it("reads the networks of `ip -o -4 addr` and `ip -4 route`, the default route aside", () => {
    const addrs =
      "1: lo    inet 127.0.0.1/8 scope host lo\\\n4: eth0    inet 192.0.2.2/24 brd 192.0.2.255 scope global eth0\\\n";
    const routes = [
      "default via 192.0.2.1 dev eth0",
      "198.18.9.0/24 dev x proto kernel scope link src 198.18.9.1",
      "blackhole 198.19.0.0/16",
      "203.0.113.7 via 192.0.2.1 dev eth0",
      "",
    ].join("\n");
    expect(networksInUse(addrs, routes).map(formatCidr)).toEqual([
      "127.0.0.0/8",
      "192.0.2.0/24",
      "198.18.9.0/24",
      "198.19.0.0/16",
      "203.0.113.7/32",
    ]);
  });
});
