import { createHash } from "node:crypto";

/** An IPv4 network: its address as an unsigned 32-bit number and its prefix length. */
export interface Cidr {
  network: number;
  length: number;
}

export function parseIpv4(text: string): number | undefined {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => /^(0|[1-9]\d{0,2})$/.test(part) && Number(part) <= 255)) {
    return undefined;
  }
  return parts.reduce((value, part) => value * 256 + Number(part), 0);
}

export function formatIpv4(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 255).join(".");
}

function mask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/** `A.B.C.D/N`, or a bare address as a /32; `aligned` refuses host bits set (`10.0.0.1/24`). */
export function parseCidr(text: string, options: { aligned?: boolean } = {}): Cidr | undefined {
  const [address, lengthText, ...rest] = text.split("/");
  if (address === undefined || rest.length > 0) return undefined;
  const value = parseIpv4(address);
  const length = lengthText === undefined ? 32 : /^\d{1,2}$/.test(lengthText) ? Number(lengthText) : NaN;
  if (value === undefined || !(length >= 0 && length <= 32)) return undefined;
  const network = (value & mask(length)) >>> 0;
  if (options.aligned === true && network !== value) return undefined;
  return { network, length };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIpv4(cidr.network)}/${cidr.length}`;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const shorter = mask(Math.min(a.length, b.length));
  return (a.network & shorter) >>> 0 === (b.network & shorter) >>> 0;
}

export function contains(outer: Cidr, inner: Cidr): boolean {
  return inner.length >= outer.length && overlaps(outer, inner);
}

/** How many addresses the network spans. */
export function size(cidr: Cidr): number {
  return 2 ** (32 - cidr.length);
}

/** RFC 2544's benchmarking range: never routed on a real network, so no pod address can be mistaken for one. */
export const BENCHMARK_RANGE: Cidr = { network: parseIpv4("198.18.0.0")!, length: 15 };

/**
 * The /24s of the benchmarking range in the order a run with `prefix` tries them: a start derived
 * from the prefix (so runs with different prefixes mostly start apart), then every other /24 in turn.
 */
export function* subnetsFor(prefix: string): Generator<Cidr> {
  const count = size(BENCHMARK_RANGE) / 256;
  const start = createHash("sha256").update(prefix).digest().readUInt16BE(0) % count;
  for (let step = 0; step < count; step++) {
    yield { network: BENCHMARK_RANGE.network + ((start + step) % count) * 256, length: 24 };
  }
}

const ROUTE_TYPES = new Set([
  "unicast",
  "local",
  "broadcast",
  "multicast",
  "throw",
  "unreachable",
  "prohibit",
  "blackhole",
  "nat",
  "anycast",
]);

/** The networks named in `ip -o -4 addr show` and `ip -4 route show` output (the default route aside). */
export function networksInUse(addrOutput: string, routeOutput: string): Cidr[] {
  const found: Cidr[] = [];
  for (const match of addrOutput.matchAll(/\binet (\S+)/g)) {
    const cidr = parseCidr(match[1]!);
    if (cidr !== undefined) found.push(cidr);
  }
  for (const line of routeOutput.split("\n")) {
    const words = line.trim().split(/\s+/);
    const destination = ROUTE_TYPES.has(words[0] ?? "") ? words[1] : words[0];
    const cidr = destination === undefined || destination === "default" ? undefined : parseCidr(destination);
    if (cidr !== undefined) found.push(cidr);
  }
  return found;
}
