import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { BundleImage, BundleMetadata } from "../../../bundle/index.js";
import { brokerCertificates, openPki } from "../../../installer/pki/index.js";
import type { BrokerCertificatePems, BrokerPaths, ValuesInput } from "../../../manifests/index.js";
import { digestOf } from "../../../registry/oci/index.js";

export const VERSION = "4.5.0";
export const RELEASE = "mgmt";
export const BROKER_DIGEST = digestOf("msgbroker image index");

function bundleImage(ref: string, kind: BundleImage["kind"] = "image"): BundleImage {
  const digest = digestOf(ref);
  return {
    ref,
    digest,
    mediaType: "application/vnd.oci.image.index.v1+json",
    size: 512,
    totalBytes: 4096,
    blobs: 3,
    platforms: ["linux/amd64"],
    kind,
    sourceDigest: digest,
  };
}

/** The `images` of a bundle's airlock.json, as bundle/ writes them. */
export const BUNDLE_IMAGES: BundleMetadata["images"] = [
  bundleImage("hubble/console:4.5.0"),
  { ...bundleImage(`hubble/msgbroker:${VERSION}`), digest: BROKER_DIGEST },
  bundleImage("hubble/msgbroker:4.4.0"),
  bundleImage("packs/observability:1.0.0", "pack"),
];

/** Values every field of which differs from its default. */
export const CUSTOM_VALUES = {
  registry: "harbor.site.example:8443",
  clusterDomain: "k8s.site.example",
  msgbroker: {
    image: "hubble/msgbroker:4.4.0",
    replicas: 3,
    partition: 2,
    resources: {
      requests: { cpu: "250m", memory: "256Mi" },
      limits: { cpu: 2, memory: "1Gi" },
    },
    ports: { client: 14222, cluster: 16222, monitor: 18222 },
    persistence: { enabled: true, size: "10Gi", storageClassName: "local-path" },
    jetstream: { enabled: true },
    tls: { verifyClients: false },
    extraSans: ["broker.site.example", "*.broker.site.example", "10.0.0.7"],
    nodeSelector: { "node-role.kubernetes.io/plane": "true", "kubernetes.io/os": "linux" },
    tolerations: [
      { key: "dedicated", operator: "Equal", value: "plane", effect: "NoSchedule" },
      {
        key: "node.kubernetes.io/unreachable",
        operator: "Exists",
        effect: "NoExecute",
        tolerationSeconds: 30,
      },
      { operator: "Exists" },
    ],
    networkPolicy: { clientNamespaceSelector: { "kubernetes.io/metadata.name": "hubble-apps" } },
  },
} satisfies ValuesInput;

export interface IssuedBroker {
  pems: BrokerCertificatePems;
  /** The certificate files where the PKI wrote them, for nats-server. */
  paths: BrokerPaths;
}

/** The site PKI's broker certificates under `dataDir`, issued for `replicas` and extra SANs. */
export async function issueBroker(
  dataDir: string,
  options: { replicas: number; extraSans?: string[]; clusterDomain?: string },
): Promise<IssuedBroker> {
  const pki = openPki(dataDir);
  const { peer, server } = await brokerCertificates(pki, options);
  const read = (file: string): Promise<string> => readFile(file, "utf8");
  return {
    pems: {
      ca: await read(peer.caFile),
      peerCert: await read(peer.certFile),
      peerKey: await read(peer.keyFile),
      serverCert: await read(server.certFile),
      serverKey: await read(server.keyFile),
    },
    paths: {
      caFile: peer.caFile,
      peerCertFile: peer.certFile,
      peerKeyFile: peer.keyFile,
      serverCertFile: server.certFile,
      serverKeyFile: server.keyFile,
      storeDir: join(dataDir, "jetstream"),
      pidFile: join(dataDir, "nats.pid"),
    },
  };
}
