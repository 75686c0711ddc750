/**
 * The cluster a stand-in `k3s server` hands install: a MemoryCluster (on the containerd node, or
 * simulated) behind its kube-apiserver facade over TLS, and the environment that makes the stand-in
 * write `/etc/rancher/k3s/k3s.yaml` naming it, as real k3s writes one naming its own API server.
 */
import { readFile } from "node:fs/promises";
import { serveClusterApi, type ClusterClient } from "../../../installer/cluster/index.js";
import { freePort } from "../daemons.js";
import { selfSignedCertificate } from "../fixtures.js";

export interface StandinClusterApi {
  url: string;
  /** What the stand-in k3s reads: the API's URL, token and CA, and a supervisor port of its own. */
  env: Record<string, string>;
  close(): Promise<void>;
}

/** Serves `cluster` on 127.0.0.1 with a throwaway certificate made in `dir`. */
export async function serveStandinClusterApi(
  cluster: ClusterClient,
  dir: string,
  token = "standin-k3s-token",
): Promise<StandinClusterApi> {
  const tls = await selfSignedCertificate(dir);
  const api = await serveClusterApi(cluster, {
    tls: { cert: await readFile(tls.certFile, "utf8"), key: await readFile(tls.keyFile, "utf8") },
    token,
  });
  return {
    url: api.url,
    env: {
      STANDIN_K3S_API_URL: api.url,
      STANDIN_K3S_API_TOKEN: token,
      STANDIN_K3S_API_CA_FILE: tls.certFile,
      STANDIN_K3S_SUPERVISOR_PORT: String(await freePort()),
    },
    close: () => api.close(),
  };
}
