/**
 * Releases of the sample plane for the containerd node's tests: the node registry holds one msgbroker
 * image, so every version names it; what changes between releases is the pod template (its version
 * label), which is what makes the StatefulSet roll. `broken` is one whose config nats-server refuses.
 */
import type { BundleMetadata } from "../../bundle/index.js";
import type { ClusterObject } from "../../installer/cluster/index.js";
import { render, type BrokerCertificatePems } from "../../manifests/index.js";
import type { NodeHarness } from "./node-cluster.js";
import { BROKER_REPOSITORY } from "./node-registry.js";

export const NODE_RELEASE = "mgmt";

export interface NodeReleases {
  plane(version: string): ClusterObject[];
  /** `version` with a lame-duck duration below nats-server's 30 s minimum: the broker exits at start. */
  broken(version: string): ClusterObject[];
}

/** The node registry's one msgbroker image under each version's tag, as a bundle's metadata lists it. */
export function nodeImages(harness: NodeHarness, versions: string[]): BundleMetadata["images"] {
  const digest = harness.registry.image.digest as `sha256:${string}`;
  return versions.map((version) => ({
    ref: `${BROKER_REPOSITORY}:${version}`,
    digest,
    mediaType: "application/vnd.oci.image.manifest.v1+json",
    size: 1,
    totalBytes: 1,
    blobs: 2,
    platforms: [harness.registry.image.platform],
    kind: "image",
    sourceDigest: digest,
  }));
}

export function nodeReleases(
  harness: NodeHarness,
  certificates: BrokerCertificatePems,
  versions: string[],
): NodeReleases {
  const images = nodeImages(harness, versions);
  const plane = (version: string): ClusterObject[] =>
    render({}, images, { release: NODE_RELEASE, version, certificates }) as unknown as ClusterObject[];
  return {
    plane,
    broken: (version) =>
      plane(version).map((object) => {
        if (object.kind !== "ConfigMap") return object;
        const data = object.data as Record<string, string>;
        return {
          ...object,
          data: {
            "nats.conf": data["nats.conf"]!.replace('lame_duck_duration: "30s"', 'lame_duck_duration: "5s"'),
          },
        };
      }),
  };
}
