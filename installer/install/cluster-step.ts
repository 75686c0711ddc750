import type { ClusterClient } from "../cluster/index.js";
import { CLUSTER_STEP } from "../state/index.js";
import type { StepDefinition } from "./machine.js";
import { k3sClusterSetup } from "./k3s-setup.js";
import { writeNodeConfig, type NodeConfig } from "./node-config.js";
import { planeValues } from "./plane-values.js";
import { registryAccessOf, type RegistryDetail } from "./registry-service.js";
import type { InstallContext, RegistryAccess } from "./types.js";

/** The cluster step's detail: how later steps and `airlock status` reach the cluster. */
export interface ClusterDetail {
  kind: "kubeconfig" | "k3s";
  kubeconfig: string;
  nodeConfig?: NodeConfig;
  /**
   * k3s from the bundle: the host root it was installed under (an upgrade swaps its binary there),
   * its node and unit. Absent for an existing cluster: an upgrade never touches its Kubernetes.
   */
  hostRoot?: string;
  nodeName?: string;
  unit?: string;
}

/** Asks the API server for something every cluster has: an answer, even "not found", means it serves. */
export async function checkApiAnswers(client: ClusterClient): Promise<void> {
  await client.get({ apiVersion: "v1", kind: "Namespace", name: "default" });
}

/**
 * The registry step's pull account and the registry the plane's images name: what nodes need, for
 * a cluster install writes (k3s) and for one it is given (the node files).
 */
async function nodePullSetup(
  context: InstallContext,
): Promise<{ access: RegistryAccess; imageRegistry: string }> {
  const registry = context.details.get("registry") as unknown as RegistryDetail;
  const access = await registryAccessOf(registry);
  const { values } = await planeValues(
    context.dataDir,
    context.head,
    context.options.valuesFile,
    access.endpoint,
  );
  return { access, imageRegistry: values.registry };
}

async function existingCluster(
  context: InstallContext,
  kubeconfig: string,
): Promise<{ detail: ClusterDetail; summary: string }> {
  await checkApiAnswers(context.connect(kubeconfig));
  const { access, imageRegistry } = await nodePullSetup(context);
  const nodeConfig = await writeNodeConfig(context.dataDir, access, imageRegistry);
  return {
    detail: { kind: "kubeconfig", kubeconfig, nodeConfig },
    summary: `the cluster answers; nodes pull from ${access.endpoint} with the files in ${nodeConfig.dir}`,
  };
}

async function k3sCluster(context: InstallContext): Promise<{ detail: ClusterDetail; summary: string }> {
  const { access, imageRegistry } = await nodePullSetup(context);
  const setup = context.options.clusterSetup ?? k3sClusterSetup;
  const set = await setup({
    host: context.host,
    systemd: context.systemd,
    head: context.head,
    dataDir: context.dataDir,
    registry: access,
    imageRegistry,
    nodeName: context.options.nodeName,
    signal: context.options.signal,
  });
  await checkApiAnswers(context.connect(set.kubeconfig));
  return {
    detail: { kind: "k3s", kubeconfig: set.kubeconfig, hostRoot: context.host.root, ...set.detail },
    summary: set.summary,
  };
}

export const clusterStep: StepDefinition<InstallContext> = {
  name: CLUSTER_STEP,
  title: "Cluster",
  async stillDone(context, detail) {
    await checkApiAnswers(context.connect((detail as unknown as ClusterDetail).kubeconfig));
    return true;
  },
  async run(context) {
    const target = context.options.cluster;
    const { detail, summary } =
      target.kind === "kubeconfig"
        ? await existingCluster(context, target.kubeconfig)
        : await k3sCluster(context);
    return { detail: { ...detail }, summary };
  },
};
