import { existsSync } from "node:fs";
import { copyFile, mkdir, rename } from "node:fs/promises";
import { dirname, join } from "node:path";
import { importBundle } from "../../bundle/index.js";
import { Store } from "../../registry/store/index.js";
import { brokerCertificates, openPki, registryServerCertificate } from "../pki/index.js";
import { VENDOR_KEY_FILE } from "./bundle-key.js";
import type { StepDefinition } from "./machine.js";
import { planeValues } from "./plane-values.js";
import { pullEndpoint } from "./registry-address.js";
import type { InstallContext } from "./types.js";

/** The host was checked before the install started (nothing is written while a check fails): recorded here. */
export const preflightStep: StepDefinition<InstallContext> = {
  name: "preflight",
  title: "Preflight",
  stillDone: () => Promise.resolve(true),
  run: ({ preflight }) =>
    Promise.resolve({
      detail: { counts: preflight.counts },
      summary: `${preflight.counts.pass} passed, ${preflight.counts.warn} warnings`,
    }),
};

/** Keeps the vendor key of the first install, so that every later run checks bundles against it. */
async function keepVendorKey(dataDir: string, publicKey: string | undefined): Promise<void> {
  const kept = join(dataDir, VENDOR_KEY_FILE);
  if (publicKey === undefined || publicKey === kept || existsSync(kept)) return;
  await mkdir(dirname(kept), { recursive: true });
  await copyFile(publicKey, `${kept}.partial`);
  await rename(`${kept}.partial`, kept);
}

export const importStep: StepDefinition<InstallContext> = {
  name: "import",
  title: "Verify and import",
  async stillDone({ dataDir, head }) {
    const store = await Store.open(dataDir);
    try {
      return store.findBundle(head.digest) !== undefined;
    } finally {
      store.close();
    }
  },
  async run({ dataDir, options, publicKey }) {
    const store = await Store.open(dataDir);
    try {
      // Kept first: the signature was checked against it already, and a crash after the import
      // (which a re-run then skips) must not leave the site without the key to hold later bundles to.
      await keepVendorKey(dataDir, publicKey);
      const result = await importBundle(store, options.bundle, { publicKey, signal: options.signal });
      return {
        detail: {
          digest: result.digest,
          bundleId: result.bundleId,
          signature: result.signature.status,
          keyFingerprint: result.signature.keyFingerprint ?? null,
        },
        summary: `${result.name} ${result.version}, signature ${result.signature.status}${result.imported ? `, ${result.blobsWritten} blobs written` : ", already imported"}`,
      };
    } finally {
      store.close();
    }
  },
};

/** The PKI files later steps read, by name. */
export interface PkiDetail {
  caFile: string;
  registry: { certFile: string; keyFile: string };
  broker: { peerCert: string; peerKey: string; serverCert: string; serverKey: string };
}

export const pkiStep: StepDefinition<InstallContext> = {
  name: "pki",
  title: "Site PKI",
  stillDone: (_context, detail) => {
    const { caFile, registry, broker } = detail as unknown as PkiDetail;
    return Promise.resolve(
      [caFile, registry.certFile, registry.keyFile, ...Object.values(broker)].every((file) =>
        existsSync(file),
      ),
    );
  },
  async run(context) {
    const pki = openPki(context.dataDir);
    const ca = await pki.ensureCa();
    const endpoint = pullEndpoint(context.registryListen);
    const { values } = await planeValues(context.dataDir, context.head, context.options.valuesFile, endpoint);
    const registry = await registryServerCertificate(pki, { hosts: [endpoint, values.registry] });
    const { peer, server } = await brokerCertificates(pki, {
      replicas: values.msgbroker.replicas,
      clusterDomain: values.clusterDomain,
      extraSans: values.msgbroker.extraSans,
    });
    const detail: PkiDetail = {
      caFile: ca.certFile,
      registry: { certFile: registry.certFile, keyFile: registry.keyFile },
      broker: {
        peerCert: peer.certFile,
        peerKey: peer.keyFile,
        serverCert: server.certFile,
        serverKey: server.keyFile,
      },
    };
    const actions = [ca, registry, peer, server].map(
      (certificate) => `${certificate.name} ${certificate.action}`,
    );
    return { detail: { ...detail }, summary: actions.join(", ") };
  },
};
