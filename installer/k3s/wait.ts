import { setTimeout as delay } from "node:timers/promises";
import { KubeClusterClient, type ClusterClient } from "../cluster/index.js";
import type { HostRoot } from "../host/index.js";
import { AirlockError } from "../../registry/oci/index.js";
import { K3S_KUBECONFIG } from "./layout.js";

export interface K3sWaitOptions {
  host: HostRoot;
  nodeName: string;
  timeoutMs?: number | undefined;
  signal?: AbortSignal | undefined;
  /** How a kubeconfig file becomes a client; the real client by default. */
  connect?: ((kubeconfig: string) => ClusterClient) | undefined;
}

/** How often a starting k3s is looked at: it takes seconds, so a quarter second adds little. */
const POLL_MS = 250;

/**
 * Waits until a started k3s server has written its kubeconfig, its API answers, and this node is
 * Ready — the three things an apply needs — naming, on timeout, the one it was still waiting for.
 * Returns the kubeconfig's path on the host.
 */
export async function waitForK3sServer(options: K3sWaitOptions): Promise<string> {
  const deadline = Date.now() + (options.timeoutMs ?? 5 * 60_000);
  const connect = options.connect ?? ((path: string) => KubeClusterClient.fromKubeconfig(path));
  const kubeconfig = options.host.path(K3S_KUBECONFIG);
  let waiting = `k3s to write ${K3S_KUBECONFIG}`;
  let client: ClusterClient | undefined;
  for (;;) {
    options.signal?.throwIfAborted();
    try {
      if (client === undefined && (await options.host.exists(K3S_KUBECONFIG))) client = connect(kubeconfig);
      if (client !== undefined) {
        waiting = `the API server in ${K3S_KUBECONFIG} to answer`;
        const node = await client.get({ apiVersion: "v1", kind: "Node", name: options.nodeName });
        waiting = `node ${options.nodeName} to register`;
        if (node !== undefined) {
          const ready = readyCondition(node.status);
          waiting = `node ${options.nodeName} to be Ready (${ready?.reason ?? "no Ready condition yet"})`;
          if (ready?.status === "True") return kubeconfig;
        }
      }
    } catch (error) {
      // A kubeconfig being written, or an API server still starting: both pass by themselves.
      if (!(error instanceof AirlockError) || !/^(CLUSTER_|KUBECONFIG_)/.test(error.code)) throw error;
      waiting = `${waiting}: ${error.message}`;
    }
    if (Date.now() >= deadline) {
      throw new AirlockError("K3S_NOT_READY", `k3s did not become ready: still waiting for ${waiting}`, {
        where: "k3s.service",
        hint: "read the service's log (journalctl -u k3s), fix what it reports, then run the same command again",
      });
    }
    await delay(POLL_MS, undefined, { signal: options.signal });
  }
}

function readyCondition(
  status: Record<string, unknown> | undefined,
): { status?: string; reason?: string } | undefined {
  const conditions = (status?.conditions ?? []) as { type?: string; status?: string; reason?: string }[];
  return conditions.find((condition) => condition.type === "Ready");
}
