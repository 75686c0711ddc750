import { readFile } from "node:fs/promises";
import { AirlockError, parseReference } from "../../registry/oci/index.js";
import { CLUSTER_STEP, type State } from "../state/index.js";
import type { ClusterDetail } from "./cluster-step.js";
import { localAddress } from "./registry-address.js";
import { registryAccessOf, registryGet, type RegistryDetail } from "./registry-service.js";

/** How a command that changes the plane reaches what the site's install set up. */
export interface SiteAccess {
  /** The kubeconfig the install's cluster step recorded. */
  kubeconfig: string;
  /**
   * Where the k3s server the install set up from the bundle lives (the host root it used), so an
   * upgrade can swap its binary; undefined for an existing cluster given with --kubeconfig.
   */
  k3sHostRoot: string | undefined;
  /** Whether the site registry the install runs holds `ref`: a HEAD of its manifest by digest. */
  imageAvailable(ref: string): Promise<boolean>;
}

const MANIFEST_TYPES = [
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.docker.distribution.manifest.v2+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
].join(", ");

function stepDetail(state: State, installId: number, name: string): Record<string, unknown> | undefined {
  const step = state.installs.steps(installId).find((candidate) => candidate.name === name);
  return step?.state === "done" ? step.detail : undefined;
}

/** The latest install's cluster and registry details, each as its step recorded it once done. */
export function installedDetails(state: State): {
  installId: number | undefined;
  cluster: ClusterDetail | undefined;
  registry: RegistryDetail | undefined;
} {
  const latest = state.installs.latest();
  if (latest === undefined) return { installId: undefined, cluster: undefined, registry: undefined };
  return {
    installId: latest.id,
    cluster: stepDetail(state, latest.id, CLUSTER_STEP) as ClusterDetail | undefined,
    registry: stepDetail(state, latest.id, "registry") as RegistryDetail | undefined,
  };
}

/**
 * The host root the install's k3s server lives under (the one its cluster step used); undefined for
 * an existing cluster given with --kubeconfig, or before an install reached its cluster.
 */
export function k3sHostRootOf(state: State): string | undefined {
  const { cluster } = installedDetails(state);
  // An install recorded before the host root was: it can only have been the CLI's default.
  return cluster?.kind === "k3s" ? (cluster.hostRoot ?? "/") : undefined;
}

/**
 * The cluster and registry of the site's latest install, as its cluster and registry steps recorded
 * them; NOT_INSTALLED when no install got that far. The registry is asked with the site CA and the
 * pull account nodes pull with, so a HEAD that answers 200 is a pull that will work.
 */
export function siteAccess(state: State): SiteAccess {
  const { installId, cluster, registry } = installedDetails(state);
  if (cluster === undefined || registry === undefined) {
    throw new AirlockError("NOT_INSTALLED", "no install of this site reached its cluster and registry", {
      where: installId === undefined ? "installs" : `install/${installId}`,
      hint: "install the plane first with `airlock install` (run it again to finish one that stopped)",
    });
  }
  return {
    kubeconfig: cluster.kubeconfig,
    k3sHostRoot: k3sHostRootOf(state),
    async imageAvailable(ref) {
      const parsed = parseReference(ref);
      const access = await registryAccessOf(registry);
      const caPem = await readFile(access.caFile, "utf8");
      const manifest = parsed.digest ?? parsed.tag ?? "latest";
      const answer = await registryGet(
        localAddress(registry.listen),
        `/v2/${parsed.repository}/manifests/${manifest}`,
        caPem,
        access,
        "HEAD",
        MANIFEST_TYPES,
      );
      return !(answer instanceof Error) && answer.status === 200;
    },
  };
}
