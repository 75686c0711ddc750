import { AirlockError, type Digest } from "../registry/oci/index.js";
import type { Store } from "../registry/store/index.js";
import { checkSignature, readBundleHead, type SignatureReport } from "./verify.js";
import {
  BLOB_DIR,
  LAYOUT_ENTRIES,
  type BundleBase,
  type BundleFile,
  type BundleImage,
  type BundlePack,
  type BundleTotals,
} from "./format.js";
import type { SiteInventory } from "./build.js";

export interface InspectResult {
  bundle: string;
  digest: Digest;
  name: string;
  version: string;
  upgradeFrom: string | undefined;
  created: string;
  base: (Omit<BundleBase, "blobs"> & { blobs: number; bytes: number }) | undefined;
  images: BundleImage[];
  packs: BundlePack[];
  /** Files other than blobs and the layout's own: manifests/ and bin/. */
  files: BundleFile[];
  totals: BundleTotals & { archiveBytes: number; parts: number };
  signature: SignatureReport;
}

/** manifests/ and bin/ files: what the bundle carries besides images and its own layout. */
function isContentFile(path: string): boolean {
  return !path.startsWith(BLOB_DIR) && !(LAYOUT_ENTRIES as readonly string[]).includes(path);
}

/** What a bundle holds, from its first entries only: instant whatever the bundle's size. */
export async function inspectBundle(
  paths: string[],
  options: { publicKey?: string | undefined } = {},
): Promise<InspectResult> {
  const head = await readBundleHead(paths);
  const { metadata } = head;
  return {
    bundle: head.input.label,
    digest: head.digest,
    name: metadata.name,
    version: metadata.version,
    upgradeFrom: metadata.upgradeFrom,
    created: metadata.created,
    base:
      metadata.base === undefined
        ? undefined
        : {
            name: metadata.base.name,
            version: metadata.base.version,
            digest: metadata.base.digest,
            blobs: metadata.base.blobs.length,
            bytes: metadata.base.blobs.reduce((sum, blob) => sum + blob.size, 0),
          },
    images: metadata.images,
    packs: metadata.packs,
    files: metadata.files.filter((file) => isContentFile(file.path)),
    totals: { ...metadata.totals, archiveBytes: head.input.size, parts: head.input.parts.length },
    signature: await checkSignature(head, options.publicKey),
  };
}

export interface DiffResult {
  from: { name: string; version: string; digest: Digest };
  to: { name: string; version: string; digest: Digest };
  images: {
    added: { ref: string; digest: Digest }[];
    removed: { ref: string; digest: Digest }[];
    changed: { ref: string; from: Digest; to: Digest }[];
    unchanged: string[];
  };
  files: { added: string[]; removed: string[]; changed: string[] };
  blobs: { shared: number; onlyFrom: number; onlyTo: number; sharedBytes: number; newBytes: number };
  /** Bytes a delta bundle from A to B would carry in blobs. */
  deltaBytes: number;
}

function blobSizes(files: BundleFile[], base: BundleBase | undefined): Map<string, number> {
  const blobs = new Map<string, number>();
  for (const file of files)
    if (file.path.startsWith(BLOB_DIR)) blobs.set(`sha256:${file.path.slice(BLOB_DIR.length)}`, file.size);
  for (const blob of base?.blobs ?? []) blobs.set(blob.digest, blob.size);
  return blobs;
}

/** Compares two bundles by their metadata: images, files and the blobs a delta would carry. */
export async function diffBundles(from: string[], to: string[]): Promise<DiffResult> {
  const [a, b] = [await readBundleHead(from), await readBundleHead(to)];
  const imagesA = new Map(a.metadata.images.map((image) => [image.ref, image.digest]));
  const imagesB = new Map(b.metadata.images.map((image) => [image.ref, image.digest]));
  const nonBlob = (files: BundleFile[]): Map<string, string> =>
    new Map(files.filter((file) => isContentFile(file.path)).map((file) => [file.path, file.sha256]));
  const filesA = nonBlob(a.metadata.files);
  const filesB = nonBlob(b.metadata.files);
  const blobsA = blobSizes(a.metadata.files, a.metadata.base);
  const blobsB = blobSizes(b.metadata.files, b.metadata.base);
  const shared = [...blobsB.keys()].filter((digest) => blobsA.has(digest));
  const newBytes = [...blobsB]
    .filter(([digest]) => !blobsA.has(digest))
    .reduce((sum, [, size]) => sum + size, 0);
  return {
    from: { name: a.metadata.name, version: a.metadata.version, digest: a.digest },
    to: { name: b.metadata.name, version: b.metadata.version, digest: b.digest },
    images: {
      added: [...imagesB].filter(([ref]) => !imagesA.has(ref)).map(([ref, digest]) => ({ ref, digest })),
      removed: [...imagesA].filter(([ref]) => !imagesB.has(ref)).map(([ref, digest]) => ({ ref, digest })),
      changed: [...imagesB]
        .filter(([ref, digest]) => imagesA.has(ref) && imagesA.get(ref) !== digest)
        .map(([ref, digest]) => ({ ref, from: imagesA.get(ref)!, to: digest })),
      unchanged: [...imagesB].filter(([ref, digest]) => imagesA.get(ref) === digest).map(([ref]) => ref),
    },
    files: {
      added: [...filesB.keys()].filter((path) => !filesA.has(path)),
      removed: [...filesA.keys()].filter((path) => !filesB.has(path)),
      changed: [...filesB]
        .filter(([path, sha]) => filesA.has(path) && filesA.get(path) !== sha)
        .map(([path]) => path),
    },
    blobs: {
      shared: shared.length,
      onlyFrom: [...blobsA.keys()].filter((digest) => !blobsB.has(digest)).length,
      onlyTo: blobsB.size - shared.length,
      sharedBytes: shared.reduce((sum, digest) => sum + blobsB.get(digest)!, 0),
      newBytes,
    },
    deltaBytes: newBytes,
  };
}

/** What the site holds, for the vendor to build a delta against (`bundle build --base-inventory`). */
export async function exportInventory(store: Store): Promise<SiteInventory> {
  const bundles = store.listBundles();
  if (bundles.length === 0) {
    throw new AirlockError("STORE_EMPTY", "the store holds no bundle yet", {
      where: store.dataDir,
      hint: "import a full bundle first; a delta needs something to build on",
    });
  }
  // Only blobs a bundle or manifest holds on to: an orphan may be collected before the delta arrives.
  const blobs: SiteInventory["blobs"] = [];
  for (const digest of [...(await store.reachableBlobs())].sort()) {
    const info = await store.blobs.stat(digest);
    if (info !== undefined) blobs.push({ digest, size: info.size });
  }
  return {
    kind: "airlock-inventory",
    bundles: bundles.map((bundle) => ({ name: bundle.name, version: bundle.version, digest: bundle.digest })),
    blobs,
  };
}
