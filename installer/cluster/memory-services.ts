import type { ClusterObject } from "./client.js";
import type { ClusterNode, NodeReport } from "./node-api.js";

/** The cluster's DNS names for Services and its Node object, as CoreDNS and a kubelet would give them. */

export const CLUSTER_DOMAIN = "cluster.local";

interface ServiceSpec {
  clusterIP?: string;
  selector?: Record<string, string>;
  publishNotReadyAddresses?: boolean;
}

function isReady(pod: ClusterObject): boolean {
  const conditions = (pod.status?.conditions ?? []) as { type?: string; status?: string }[];
  return conditions.some((condition) => condition.type === "Ready" && condition.status === "True");
}

function selects(selector: Record<string, string>, pod: ClusterObject): boolean {
  const labels = pod.metadata.labels ?? {};
  return Object.entries(selector).every(([key, value]) => labels[key] === value);
}

/**
 * Each Service's names (`<svc>.<ns>.svc` and `….svc.cluster.local`) → the IPs of the pods it
 * selects, in pod-name order, as DNS A records: a terminating pod drops out, and so does an unready
 * one unless the Service publishes not-ready addresses (the broker's headless Service does, so peers
 * find each other before they are Ready). A ClusterIP Service gets its endpoints' IPs too: there is
 * no kube-proxy here, so a client connects to a pod directly, as it would after DNS round-robin —
 * enough for NATS clients, which reconnect. A Service without a selector has no endpoints.
 */
export function serviceNames(objects: Iterable<ClusterObject>): Map<string, string[]> {
  const all = [...objects];
  const pods = all
    .filter((object) => object.kind === "Pod" && object.metadata.deletionTimestamp === undefined)
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  const names = new Map<string, string[]>();
  for (const service of all.filter((object) => object.kind === "Service")) {
    const spec = (service.spec ?? {}) as ServiceSpec;
    const selector = spec.selector ?? {};
    if (Object.keys(selector).length === 0) continue;
    const ips = pods
      .filter((pod) => pod.metadata.namespace === service.metadata.namespace && selects(selector, pod))
      .filter((pod) => spec.publishNotReadyAddresses === true || isReady(pod))
      .flatMap((pod) => (typeof pod.status?.podIP === "string" ? [pod.status.podIP] : []));
    const base = `${service.metadata.name}.${service.metadata.namespace}.svc`;
    names.set(base, ips);
    names.set(`${base}.${CLUSTER_DOMAIN}`, ips);
  }
  return names;
}

/** Tells the node the Services' names and endpoints whenever they change (CoreDNS's part). */
export class ServiceNamesFeed {
  /** What the node was last told, as JSON. */
  private sent = "{}";

  constructor(private readonly node: ClusterNode | undefined) {}

  update(entries: Iterable<{ object: ClusterObject }>): void {
    if (this.node?.setServiceNames === undefined) return;
    const names = serviceNames([...entries].map((entry) => entry.object));
    const json = JSON.stringify(Object.fromEntries(names));
    if (json === this.sent) return;
    this.sent = json;
    this.node.setServiceNames(names);
  }
}

/** Node.js's names for CPU architectures → Kubernetes's (GOARCH). */
const KUBE_ARCH: Partial<Record<string, string>> = { x64: "amd64", arm64: "arm64", arm: "arm" };

/** The Node object a kubelet registers for its node: Ready, with what the node reports of itself. */
export function nodeObject(name: string, report: NodeReport | undefined): ClusterObject {
  const now = new Date().toISOString();
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: {
      name,
      labels: {
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "node-role.kubernetes.io/control-plane": "true",
      },
    },
    spec: {},
    status: {
      conditions: [
        {
          type: "Ready",
          status: "True",
          reason: "KubeletReady",
          message: "kubelet is posting ready status",
          lastHeartbeatTime: now,
          lastTransitionTime: now,
        },
      ],
      addresses: [...(report?.addresses ?? []), { type: "Hostname", address: name }],
      nodeInfo: {
        operatingSystem: "linux",
        architecture: KUBE_ARCH[process.arch] ?? process.arch,
        ...report?.nodeInfo,
      },
    },
  };
}
