import { hostname } from "node:os";
import { parseListen } from "../preflight/index.js";

const ANY_V4 = "0.0.0.0";
const ANY_V6 = "::";

function formatAddress(host: string, port: number): string {
  return `${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/** Where the cluster's nodes pull Airlock's registry from: the listen address, or this host's name when it listens on every address. */
export function pullEndpoint(listen: string): string {
  const { host, port } = parseListen(listen);
  return formatAddress(host === ANY_V4 || host === ANY_V6 ? hostname() : host, port);
}

/** Where this host reaches its own registry to check that it answers. */
export function localAddress(listen: string): string {
  const { host, port } = parseListen(listen);
  return formatAddress(host === ANY_V4 ? "127.0.0.1" : host === ANY_V6 ? "::1" : host, port);
}
