import { readFile } from "node:fs/promises";
import type { Digest } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { installK3s, k3sEntries, registriesYaml, waitForK3sServer, K3S_REGISTRY_CA } from "../k3s/index.js";
import type { ClusterSetup } from "./types.js";

/** How long a started k3s may take to write its kubeconfig, serve its API and report its node Ready. */
const K3S_READY_TIMEOUT_MS = 5 * 60_000;

/**
 * k3s from the bundle on this host: its binary and image archives straight from the store the
 * import filled (no second copy of the bundle), registries.yaml sending every pull of the plane's
 * images to Airlock's registry with the site CA and the cluster's pull account, then started and
 * waited on until the node is Ready.
 */
export const k3sClusterSetup: ClusterSetup = async (context) => {
  const { binary, imageArchives } = k3sEntries(context.head.metadata.files, context.head.input.label);
  const store = await Store.open(context.dataDir);
  try {
    const blob = (sha256: string): string => store.blobs.path(`sha256:${sha256}` as Digest);
    const installed = await installK3s({
      host: context.host,
      systemd: context.systemd,
      role: "server",
      binary: blob(binary.sha256),
      imageArchives: imageArchives.map((file) => ({ name: file.path, source: blob(file.sha256) })),
      registries: registriesYaml({
        registry: context.registry.endpoint,
        mirrorFor: [context.imageRegistry],
        caFile: K3S_REGISTRY_CA,
        username: context.registry.username,
        password: context.registry.password,
      }),
      registryCaPem: await readFile(context.registry.caFile, "utf8"),
      settings: { nodeName: context.nodeName },
      signal: context.signal,
    });
    const kubeconfig = await waitForK3sServer({
      host: context.host,
      nodeName: installed.nodeName,
      timeoutMs: K3S_READY_TIMEOUT_MS,
      signal: context.signal,
    });
    return {
      kubeconfig,
      detail: { nodeName: installed.nodeName, unit: installed.unit, changed: installed.changed },
      summary: `k3s (${installed.unit}) serves on node ${installed.nodeName}, Ready; it pulls from ${context.registry.endpoint}`,
    };
  } finally {
    store.close();
  }
};
