import { request } from "node:http";
import type { ClusterObject } from "../cluster/index.js";

const ROUTEZ_TIMEOUT_MS = 3_000;
const MAX_ROUTEZ_BYTES = 1024 * 1024;

/** What nats-server's /routez says of one broker (the fields status reads). */
export interface Routez {
  server_id: string;
  routes: { remote_id: string; ip: string }[] | null;
}

/** One broker pod's cluster routes: the peers it routes to, by pod name, or why they could not be read. */
export type BrokerRoutes = { reachable: true; peers: string[] } | { reachable: false; detail: string };

/** The pod's address and its container port named `monitor`, where /routez is served. */
export function monitorAddress(pod: ClusterObject): { ip: string; port: number } | undefined {
  const ip = pod.status?.podIP;
  const containers = ((pod.spec as { containers?: unknown[] } | undefined)?.containers ?? []) as {
    ports?: { name?: string; containerPort: number }[];
  }[];
  const port = containers
    .flatMap((container) => container.ports ?? [])
    .find((candidate) => candidate.name === "monitor")?.containerPort;
  return typeof ip === "string" && port !== undefined ? { ip, port } : undefined;
}

/** GET http://ip:port/routez, bounded: the answer, or what went wrong. */
export function fetchRoutez(ip: string, port: number): Promise<Routez | Error> {
  return new Promise((resolve) => {
    const req = request({ host: ip, port, path: "/routez", timeout: ROUTEZ_TIMEOUT_MS }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => {
        if (body.length < MAX_ROUTEZ_BYTES) body += chunk;
      });
      res.on("error", resolve);
      res.on("end", () => {
        if (res.statusCode !== 200) return resolve(new Error(`HTTP ${res.statusCode} from /routez`));
        try {
          resolve(JSON.parse(body) as Routez);
        } catch {
          resolve(new Error("/routez did not answer JSON"));
        }
      });
    });
    req.on("timeout", () => req.destroy(new Error(`no answer within ${ROUTEZ_TIMEOUT_MS / 1000} s`)));
    req.on("error", resolve);
    req.end();
  });
}

/**
 * Each pod's routes by peer name: a route's remote is named by the pod whose own /routez carries
 * that server id, else by the pod at the route's address, else by the id itself.
 */
export function routesByPod(
  answers: { pod: string; ip: string | undefined; routez: Routez | Error | undefined }[],
): Map<string, BrokerRoutes> {
  const byId = new Map<string, string>();
  const byIp = new Map<string, string>();
  for (const answer of answers) {
    if (answer.ip !== undefined) byIp.set(answer.ip, answer.pod);
    if (answer.routez !== undefined && !(answer.routez instanceof Error))
      byId.set(answer.routez.server_id, answer.pod);
  }
  const routes = new Map<string, BrokerRoutes>();
  for (const { pod, routez } of answers) {
    if (routez === undefined) routes.set(pod, { reachable: false, detail: "no pod IP" });
    else if (routez instanceof Error) routes.set(pod, { reachable: false, detail: routez.message });
    else {
      const peers = (routez.routes ?? []).map(
        (route) => byId.get(route.remote_id) ?? byIp.get(route.ip) ?? route.remote_id,
      );
      routes.set(pod, { reachable: true, peers: [...new Set(peers)].sort() });
    }
  }
  return routes;
}

/** Every pod's /routez, asked at once. */
export async function readBrokerRoutes(pods: ClusterObject[]): Promise<Map<string, BrokerRoutes>> {
  const answers = await Promise.all(
    pods.map(async (pod) => {
      const address = monitorAddress(pod);
      return {
        pod: pod.metadata.name,
        ip: address?.ip,
        routez: address === undefined ? undefined : await fetchRoutez(address.ip, address.port),
      };
    }),
  );
  return routesByPod(answers);
}

/**
 * Ready brokers whose routes could be read and that lack a route to another such broker: the
 * cluster is split. Brokers that could not be asked (no route to pod IPs here) say nothing.
 */
export function missingRoutes(ready: string[], routes: Map<string, BrokerRoutes>): string[] {
  const asked = ready.filter((pod) => routes.get(pod)?.reachable === true);
  const problems: string[] = [];
  for (const pod of asked) {
    const peers = (routes.get(pod) as { peers: string[] }).peers;
    const missing = asked.filter((other) => other !== pod && !peers.includes(other));
    if (missing.length > 0) problems.push(`broker ${pod} has no cluster route to ${missing.join(", ")}`);
  }
  return problems;
}
