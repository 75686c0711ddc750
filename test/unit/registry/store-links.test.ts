/**
 * Blobs belong to repositories (issue 10, point 2): the store's links, the migration that back-fills
 * them (and referrer annotations) into an existing data dir, per-repository deletes and gc.
 */
import { mkdtemp, rm, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  MediaType,
  digestOf,
  encodeJson,
  parseManifest,
  type Descriptor,
  type Digest,
} from "../../../registry/oci/index.js";
import {
  SCHEMA_VERSION,
  Store,
  type BundleRecord,
  type ManifestRecord,
} from "../../../registry/store/index.js";
import { rejection } from "../../helpers/errors.js";

let dataDir: string;
const opened: Store[] = [];

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-links-"));
});

afterEach(async () => {
  for (const store of opened.splice(0)) store.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function openStore(): Promise<Store> {
  const store = await Store.open(dataDir);
  opened.push(store);
  return store;
}

async function putBlob(store: Store, data: Uint8Array, mediaType: string): Promise<Descriptor> {
  const committed = await store.blobs.put([data], { digest: digestOf(data) });
  return { mediaType, digest: committed.digest, size: committed.size };
}

interface Image {
  config: Descriptor;
  layer: Descriptor;
  manifest: Descriptor;
  record: ManifestRecord;
}

async function putImage(store: Store, repository: string, seed: string, extra: object = {}): Promise<Image> {
  const layer = await putBlob(store, encodeJson({ layer: seed }), MediaType.OciLayer);
  const config = await putBlob(
    store,
    encodeJson({ architecture: "amd64", os: "linux", seed }),
    MediaType.OciConfig,
  );
  const doc = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer], ...extra };
  const manifest = await putBlob(store, encodeJson(doc), MediaType.OciManifest);
  const record = { repository, digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size };
  return { config, layer, manifest, record };
}

async function bundleOf(store: Store, images: Image[], extra: ManifestRecord[] = []): Promise<BundleRecord> {
  const meta = await putBlob(store, encodeJson({ name: "mgmt", seed: images.length }), "application/json");
  return {
    digest: meta.digest,
    name: "mgmt",
    version: "1.0.0",
    upgradeFrom: undefined,
    baseDigest: undefined,
    created: "2024-01-01T00:00:00.000Z",
    signature: "unsigned",
    totalBytes: 1,
    images: images.map((image) => ({
      ref: `${image.record.repository}:1`,
      repository: image.record.repository,
      tag: "1",
      digest: image.manifest.digest,
      mediaType: image.manifest.mediaType,
      size: image.manifest.size,
      kind: "image" as const,
    })),
    files: [],
    manifests: [...images.map((image) => image.record), ...extra],
  };
}

describe("repository links", () => {
  it("recording a bundle links each manifest's config and layers to its repository only", async () => {
    const store = await openStore();
    const agent = await putImage(store, "hubble/agent", "agent");
    await store.recordBundle(await bundleOf(store, [agent]));
    for (const blob of [agent.config, agent.layer]) {
      expect(store.hasBlob("hubble/agent", blob.digest)).toBe(true);
      expect(store.hasBlob("hubble/other", blob.digest)).toBe(false);
    }
  });

  it("mountBlob links only what the source repository holds", async () => {
    const store = await openStore();
    const blob = await putBlob(store, encodeJson({ mounted: true }), "application/octet-stream");
    expect(store.mountBlob("a", "b", blob.digest)).toBe(false);
    store.linkBlob("a", blob.digest);
    expect(store.mountBlob("a", "b", blob.digest)).toBe(true);
    expect(store.hasBlob("b", blob.digest)).toBe(true);
  });

  it("deleteBlob unlinks from one repository, refuses while that repository's manifest names it", async () => {
    const store = await openStore();
    const image = await putImage(store, "a", "shared");
    store.putManifest(
      image.record,
      parseManifest(await store.blobs.readSmall(image.manifest.digest, 1 << 20)),
    );
    expect(store.mountBlob("a", "b", image.layer.digest)).toBe(true);
    expect((await rejection(store.deleteBlob("a", image.layer.digest))).code).toBe("BLOB_IN_USE");
    expect(await store.deleteBlob("b", image.layer.digest)).toBe(true);
    expect(await store.deleteBlob("b", image.layer.digest)).toBe(false);
    expect(store.hasBlob("a", image.layer.digest)).toBe(true);
    expect(await store.blobs.stat(image.layer.digest)).toBeDefined();
  });
});

describe("gc and links", () => {
  it("keeps a blob any repository links, collects it once none does, and keeps the grace", async () => {
    const store = await openStore();
    const blob = await putBlob(store, encodeJson({ pushed: "alone" }), "application/octet-stream");
    store.linkBlob("a", blob.digest);
    store.linkBlob("b", blob.digest);
    expect((await store.fsck()).unreferenced).toEqual([]);
    await store.deleteBlob("a", blob.digest);
    expect((await store.gc()).removed).toEqual([]);
    await store.deleteBlob("b", blob.digest);
    expect((await store.gc({ graceMs: 600_000 })).removed).toEqual([]);
    const past = new Date(Date.now() - 3_600_000);
    await utimes(store.blobs.path(blob.digest), past, past);
    expect((await store.gc({ graceMs: 600_000 })).removed.map((b) => b.digest)).toEqual([blob.digest]);
  });

  it("fsck names a linked blob that is missing", async () => {
    const store = await openStore();
    const absent = digestOf("never stored");
    store.linkBlob("a", absent);
    expect((await store.fsck()).missing).toEqual([{ digest: absent, referencedBy: "repository a" }]);
  });
});

describe("the migration to repository links", () => {
  /** Turns the data dir back into what schema 4 wrote: no links, no annotations column. */
  function downgrade(): void {
    const db = new Database(join(dataDir, "airlock.db"));
    db.exec(
      "DROP TABLE repository_blobs; ALTER TABLE manifests DROP COLUMN annotations; PRAGMA user_version = 4",
    );
    db.close();
  }

  it("back-fills links from every stored manifest, and the annotations of referrers", async () => {
    const first = await openStore();
    const agent = await putImage(first, "hubble/agent", "agent");
    const annotations = { "org.example.kind": "signature" };
    const subject = {
      mediaType: agent.manifest.mediaType,
      digest: agent.manifest.digest,
      size: agent.manifest.size,
    };
    const signature = await putImage(first, "hubble/agent", "signature", { subject, annotations });
    const child = { ...agent.manifest, platform: { architecture: "amd64", os: "linux" } };
    const indexDoc = { schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [child] };
    const index = await putBlob(first, encodeJson(indexDoc), MediaType.OciIndex);
    const indexRecord = {
      repository: "hubble/agent",
      digest: index.digest,
      mediaType: index.mediaType,
      size: index.size,
    };
    await first.recordBundle(
      await bundleOf(first, [agent], [{ ...signature.record, subject: agent.manifest.digest }, indexRecord]),
    );
    first.close();
    opened.splice(opened.indexOf(first), 1);
    downgrade();

    const store = await openStore();
    expect(store.db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
    const linked: Digest[] = [
      agent.config,
      agent.layer,
      signature.config,
      signature.layer,
      agent.manifest,
    ].map((d) => d.digest);
    for (const digest of linked) expect(store.hasBlob("hubble/agent", digest), digest).toBe(true);
    expect(store.hasBlob("hubble/other", agent.layer.digest)).toBe(false);
    expect(store.listReferrers("hubble/agent", agent.manifest.digest)).toEqual([
      expect.objectContaining({ digest: signature.manifest.digest, annotations }),
    ]);
    expect((await store.fsck()).ok).toBe(true);
  });
});
