import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { importBundle, readBundleHead, type BundleMetadata, type BundleHead } from "../../bundle/index.js";
import { parse as parseYaml } from "yaml";
import type { BrokerCertificatePems } from "../../manifests/index.js";
import { AirlockError, type Digest } from "../../registry/oci/index.js";
import type { Store } from "../../registry/store/index.js";
import { VENDOR_KEY_FILE } from "../install/index.js";
import type { Release, State } from "../state/index.js";

const MAX_METADATA_BYTES = 16 * 1024 * 1024;

/** The next bundle as the plan sees it: its metadata, digest, and what importing it wrote. */
export interface IncomingBundle {
  digest: Digest;
  metadata: BundleMetadata;
  /** Bytes of its files the store did not hold before the plan imported it. */
  bytesToImport: number;
}

async function missingBytes(store: Store, head: BundleHead): Promise<number> {
  let bytes = 0;
  for (const file of head.metadata.files) {
    const digest = file.path.startsWith("blobs/sha256/")
      ? (`sha256:${file.path.slice("blobs/sha256/".length)}` as Digest)
      : (`sha256:${file.sha256}` as Digest);
    if ((await store.blobs.stat(digest)) === undefined) bytes += file.size;
  }
  return bytes;
}

/**
 * Imports the bundle at `paths`, held to the vendor key the site's install kept (an unsigned site
 * imports unsigned bundles only): the import refuses a delta whose base is absent and a disk too
 * small, before writing anything.
 */
export async function importIncoming(
  store: Store,
  dataDir: string,
  paths: string[],
  signal: AbortSignal | undefined,
): Promise<IncomingBundle> {
  const head = await readBundleHead(paths);
  const bytesToImport = await missingBytes(store, head);
  const keyFile = join(dataDir, VENDOR_KEY_FILE);
  const publicKey = existsSync(keyFile) ? keyFile : undefined;
  const result = await importBundle(store, paths, { publicKey, signal });
  return { digest: result.digest, metadata: head.metadata, bytesToImport };
}

/** A bundle already in the store, by its version: its airlock.json read back from the blob store. */
export async function storedIncoming(store: Store, name: string, version: string): Promise<IncomingBundle> {
  const stored = store
    .listBundles()
    .filter((bundle) => bundle.name === name && bundle.version === version)
    .at(-1);
  if (stored === undefined) {
    throw new AirlockError("BUNDLE_NOT_IMPORTED", `no ${name} ${version} bundle in the store`, {
      where: `--to-version ${version}`,
      hint: "import it with `airlock bundle import FILE`, or pass --bundle FILE to import it while planning",
    });
  }
  const bytes = await store.blobs.readSmall(stored.digest, MAX_METADATA_BYTES);
  return {
    digest: stored.digest,
    metadata: JSON.parse(bytes.toString("utf8")) as BundleMetadata,
    bytesToImport: 0,
  };
}

/** Refuses a plan whose release would name an image the store lacks (a partial or pruned import). */
export async function checkImagesStored(store: Store, metadata: BundleMetadata): Promise<void> {
  const missing: string[] = [];
  for (const image of metadata.images) {
    if ((await store.blobs.stat(image.digest)) === undefined) missing.push(image.ref);
  }
  if (missing.length > 0) {
    throw new AirlockError(
      "UPGRADE_IMAGE_MISSING",
      `the store lacks ${missing.length} image(s) of ${metadata.name} ${metadata.version}: ${missing.join(", ")}`,
      {
        where: "store",
        hint: `import the ${metadata.name} ${metadata.version} bundle again (airlock bundle import), then re-plan`,
      },
    );
  }
}

interface PkiFiles {
  caFile: string;
  broker: { peerCert: string; peerKey: string; serverCert: string; serverKey: string };
}

/** The broker's certificates as the install's PKI step wrote them: an upgrade renders the same ones. */
export async function installedCertificates(state: State, release: Release): Promise<BrokerCertificatePems> {
  const installId = release.installId ?? state.installs.latest()?.id;
  if (installId === undefined) {
    throw new AirlockError("UPGRADE_NO_PKI", "no install recorded the site's PKI", {
      where: `release/${release.id}`,
      hint: "run `airlock install` to finish the site before upgrading it",
    });
  }
  const { caFile, broker } = state.installs.step(installId, "pki").detail as unknown as PkiFiles;
  const read = (file: string): Promise<string> => readFile(file, "utf8");
  return {
    ca: await read(caFile),
    peerCert: await read(broker.peerCert),
    peerKey: await read(broker.peerKey),
    serverCert: await read(broker.serverCert),
    serverKey: await read(broker.serverKey),
  };
}

const BUNDLE_VALUES_FILE = "manifests/values.yaml";

/** The next bundle's plane defaults (`manifests/values.yaml`), read from the store; `{}` when it has none. */
export async function incomingDefaults(
  store: Store,
  metadata: BundleMetadata,
): Promise<Record<string, unknown>> {
  const file = metadata.files.find((entry) => entry.path === BUNDLE_VALUES_FILE);
  if (file === undefined) return {};
  const text = (await store.blobs.readSmall(`sha256:${file.sha256}` as Digest, MAX_METADATA_BYTES)).toString(
    "utf8",
  );
  const parsed: unknown = parseYaml(text);
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new AirlockError("BUNDLE_VALUES_INVALID", "the bundle's values are not a map of fields", {
      where: `${metadata.name} ${metadata.version}: ${BUNDLE_VALUES_FILE}`,
      hint: "the vendor's bundle is malformed: ask for one whose manifests/values.yaml is a YAML map",
    });
  }
  return parsed as Record<string, unknown>;
}
