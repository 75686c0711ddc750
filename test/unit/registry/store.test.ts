import { execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import Database from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { encodeHeader, endOfArchive, paddingFor } from "../../../bundle/index.js";
import {
  MediaType,
  REF_NAME_ANNOTATION,
  digestOf,
  encodeJson,
  type Descriptor,
  type Digest,
} from "../../../registry/oci/index.js";
import {
  SCHEMA_VERSION,
  Store,
  acquireLock,
  type BundleRecord,
  type ImageRecord,
  type ManifestRecord,
  type StoreOptions,
} from "../../../registry/store/index.js";
import { rejection } from "../../helpers/errors.js";

const run = promisify(execFile);

async function* once(data: Uint8Array): AsyncGenerator<Uint8Array> {
  await Promise.resolve();
  yield data;
}

/** A pid that belonged to a process which has exited. */
async function deadPid(): Promise<number> {
  const child = spawn("true", { stdio: "ignore" });
  const pid = child.pid;
  if (pid === undefined) throw new Error("could not spawn true");
  await new Promise<void>((resolve, reject) => {
    child.once("exit", () => resolve());
    child.once("error", reject);
  });
  return pid;
}

/** A live process that is not this one; killed by the returned function. */
function liveProcess(): { pid: number; stop: () => void } {
  const child = spawn("sleep", ["600"], { stdio: "ignore" });
  if (child.pid === undefined) throw new Error("could not spawn sleep");
  return { pid: child.pid, stop: () => child.kill("SIGKILL") };
}

async function putBlob(store: Store, data: Uint8Array, mediaType: string): Promise<Descriptor> {
  const committed = await store.blobs.put(once(data), { digest: digestOf(data), size: data.byteLength });
  return { mediaType, digest: committed.digest, size: committed.size };
}

/** An uncompressed layer tar with one file. */
function layerTar(name: string, content: string): Uint8Array {
  const body = new TextEncoder().encode(content);
  const header = encodeHeader({
    name,
    size: body.byteLength,
    mode: 0o644,
    type: "file",
    mtime: 1_700_000_000,
  });
  return Buffer.concat([header, body, new Uint8Array(paddingFor(body.byteLength)), endOfArchive()]);
}

interface TestImage {
  config: Descriptor;
  layer: Descriptor;
  manifest: Descriptor;
  image: ImageRecord;
  record: ManifestRecord;
}

/** Puts a real single-layer linux/amd64 image (layer, config, manifest) into the store's blobs. */
async function putImage(store: Store, repository: string, tag: string, seed: string): Promise<TestImage> {
  const tar = layerTar(`etc/${seed}`, `content of ${seed}\n`);
  const layer = await putBlob(store, tar, MediaType.OciLayer);
  const configDoc = {
    created: "2024-01-01T00:00:00Z",
    architecture: "amd64",
    os: "linux",
    config: { Env: [`SEED=${seed}`], Cmd: ["/bin/sh"] },
    rootfs: { type: "layers", diff_ids: [layer.digest] },
  };
  const config = await putBlob(store, encodeJson(configDoc), MediaType.OciConfig);
  const manifestDoc = { schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] };
  const manifest = await putBlob(store, encodeJson(manifestDoc), MediaType.OciManifest);
  return {
    config,
    layer,
    manifest,
    image: {
      ref: `${repository}:${tag}`,
      repository,
      tag,
      digest: manifest.digest,
      mediaType: manifest.mediaType,
      size: manifest.size,
      kind: "image",
    },
    record: { repository, digest: manifest.digest, mediaType: manifest.mediaType, size: manifest.size },
  };
}

/** A bundle record (airlock.json and one file stored as blobs) naming `images`. */
async function bundleRecord(store: Store, version: string, images: TestImage[]): Promise<BundleRecord> {
  const metadata = encodeJson({ name: "mgmt", version, images: images.map((i) => i.image.ref) });
  const meta = await putBlob(store, metadata, "application/json");
  const values = new TextEncoder().encode(`replicas: 2\nversion: ${version}\n`);
  const file = await putBlob(store, values, "application/octet-stream");
  return {
    digest: meta.digest,
    name: "mgmt",
    version,
    upgradeFrom: undefined,
    baseDigest: undefined,
    created: "2024-01-01T00:00:00.000Z",
    signature: "verified",
    totalBytes: 12345,
    images: images.map((i) => i.image),
    files: [{ path: "manifests/values.yaml", digest: file.digest, size: file.size, mode: 0o644 }],
    manifests: images.map((i) => i.record),
  };
}

interface LayoutIndex {
  schemaVersion: number;
  mediaType: string;
  manifests: Descriptor[];
}

describe("Store", () => {
  let dataDir: string;
  const opened: Store[] = [];
  const cleanups: (() => void)[] = [];

  async function openStore(options: StoreOptions = {}): Promise<Store> {
    const store = await Store.open(dataDir, options);
    opened.push(store);
    return store;
  }

  function closeStore(store: Store): void {
    store.close();
    opened.splice(opened.indexOf(store), 1);
  }

  async function layoutIndex(): Promise<LayoutIndex> {
    return JSON.parse(await readFile(join(dataDir, "store", "index.json"), "utf8")) as LayoutIndex;
  }

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), "airlock-store-"));
  });

  afterEach(async () => {
    for (const cleanup of cleanups.splice(0)) cleanup();
    for (const store of opened.splice(0)) store.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  describe("open and migrations", () => {
    it("creates an OCI layout and a WAL database at the current schema version", async () => {
      const store = await openStore();
      expect(SCHEMA_VERSION).toBeGreaterThanOrEqual(1);
      expect(store.db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
      expect(store.db.pragma("journal_mode", { simple: true })).toBe("wal");
      expect(JSON.parse(await readFile(join(dataDir, "store", "oci-layout"), "utf8"))).toEqual({
        imageLayoutVersion: "1.0.0",
      });
      expect(await layoutIndex()).toEqual({ schemaVersion: 2, mediaType: MediaType.OciIndex, manifests: [] });
      const tables = store.db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .all();
      expect(tables.map((t) => (t as { name: string }).name)).toEqual(
        expect.arrayContaining(["bundles", "bundle_files", "bundle_images", "manifests", "tags"]),
      );
    });

    it("reopens an existing data dir without re-running migrations, keeping its content", async () => {
      const first = await openStore();
      const image = await putImage(first, "hubble/msgbroker", "4.5.0", "a");
      await first.recordBundle(await bundleRecord(first, "4.5.0", [image]));
      closeStore(first);
      const second = await openStore();
      expect(second.db.pragma("user_version", { simple: true })).toBe(SCHEMA_VERSION);
      expect(second.listBundles()).toHaveLength(1);
      expect(second.resolveTag("hubble/msgbroker", "4.5.0")).toBe(image.manifest.digest);
      expect((await layoutIndex()).manifests).toHaveLength(1);
    });

    it("refuses a database written by a newer schema with STATE_TOO_NEW", async () => {
      const db = new Database(join(dataDir, "airlock.db"));
      db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
      db.close();
      const error = await rejection(Store.open(dataDir));
      expect(error).toMatchObject({ code: "STATE_TOO_NEW", where: join(dataDir, "airlock.db") });
    });

    it("reports an unusable data dir as STORE_OPEN_FAILED", async () => {
      const file = join(dataDir, "not-a-dir");
      await writeFile(file, "x");
      const error = await rejection(Store.open(file));
      expect(error).toMatchObject({ code: "STORE_OPEN_FAILED", where: file });
    });
  });

  describe("recordBundle", () => {
    it("makes the bundle, its tags, manifests and layout index visible in one step", async () => {
      const store = await openStore();
      const broker = await putImage(store, "hubble/msgbroker", "4.5.0", "broker");
      const agent = await putImage(store, "hubble/agent", "4.5.0", "agent");
      const record = await bundleRecord(store, "4.5.0", [broker, agent]);
      expect(store.resolveTag("hubble/msgbroker", "4.5.0")).toBeUndefined();
      expect(store.getManifest("hubble/msgbroker", broker.manifest.digest)).toBeUndefined();
      expect(store.findBundle(record.digest)).toBeUndefined();

      const { bundle, created } = await store.recordBundle(record);
      expect(created).toBe(true);
      expect(bundle).toMatchObject({
        digest: record.digest,
        name: "mgmt",
        version: "4.5.0",
        signature: "verified",
      });
      expect(bundle.images.map((i) => i.ref)).toEqual(["hubble/agent:4.5.0", "hubble/msgbroker:4.5.0"]);
      expect(bundle.files).toEqual(record.files);
      expect(store.resolveTag("hubble/msgbroker", "4.5.0")).toBe(broker.manifest.digest);
      expect(store.resolveTag("hubble/agent", "4.5.0")).toBe(agent.manifest.digest);
      expect(store.getManifest("hubble/agent", agent.manifest.digest)).toEqual(agent.record);
      expect(store.getManifest("hubble/msgbroker", agent.manifest.digest)).toBeUndefined();
      expect(store.listTags()).toEqual([
        { repository: "hubble/agent", tag: "4.5.0", digest: agent.manifest.digest },
        { repository: "hubble/msgbroker", tag: "4.5.0", digest: broker.manifest.digest },
      ]);
      expect(store.listBundles().map((b) => b.digest)).toEqual([record.digest]);
    });

    it("writes nothing when any row of the step fails", async () => {
      const store = await openStore();
      const broker = await putImage(store, "hubble/msgbroker", "4.5.0", "broker");
      const record = await bundleRecord(store, "4.5.0", [broker]);
      const duplicated = { ...record, images: [broker.image, broker.image] };
      await expect(store.recordBundle(duplicated)).rejects.toThrow(/UNIQUE|PRIMARY/);
      expect(store.listBundles()).toEqual([]);
      expect(store.listTags()).toEqual([]);
      expect(store.getManifest("hubble/msgbroker", broker.manifest.digest)).toBeUndefined();
      expect((await layoutIndex()).manifests).toEqual([]);
      expect((await store.recordBundle(record)).created).toBe(true);
    });

    it("is idempotent: recording the same bundle again changes nothing", async () => {
      const store = await openStore();
      const broker = await putImage(store, "hubble/msgbroker", "4.5.0", "broker");
      const record = await bundleRecord(store, "4.5.0", [broker]);
      const first = await store.recordBundle(record);
      const tagsBefore = store.db.prepare("SELECT * FROM tags").all();
      const second = await store.recordBundle(record);
      expect(second.created).toBe(false);
      expect(second.bundle).toEqual(first.bundle);
      expect(store.listBundles()).toHaveLength(1);
      expect(store.db.prepare("SELECT * FROM tags").all()).toEqual(tagsBefore);
      expect(store.db.prepare("SELECT COUNT(*) AS n FROM manifests").get()).toEqual({ n: 1 });
    });

    it("moves a tag to the newer bundle's manifest and keeps both bundles", async () => {
      const store = await openStore();
      const old = await putImage(store, "hubble/msgbroker", "stable", "old");
      await store.recordBundle(await bundleRecord(store, "4.4.0", [old]));
      const next = await putImage(store, "hubble/msgbroker", "stable", "new");
      await store.recordBundle(await bundleRecord(store, "4.5.0", [next]));
      expect(store.resolveTag("hubble/msgbroker", "stable")).toBe(next.manifest.digest);
      expect(store.listBundles().map((b) => b.version)).toEqual(["4.4.0", "4.5.0"]);
      expect(store.getManifest("hubble/msgbroker", old.manifest.digest)).toBeDefined();
      const index = await layoutIndex();
      expect(index.manifests.map((d) => d.digest)).toEqual([next.manifest.digest]);
    });
  });

  describe("the store as an OCI layout", () => {
    it("index.json lists every tag, and skopeo inspects an image by repository:tag", async () => {
      const store = await openStore();
      const broker = await putImage(store, "hubble/msgbroker", "4.5.0", "broker");
      const agent = await putImage(store, "hubble/agent", "1.0", "agent");
      await store.recordBundle(await bundleRecord(store, "4.5.0", [broker, agent]));
      const index = await layoutIndex();
      expect(index.mediaType).toBe(MediaType.OciIndex);
      expect(index.manifests).toEqual([
        { ...agent.manifest, annotations: { [REF_NAME_ANNOTATION]: "hubble/agent:1.0" } },
        { ...broker.manifest, annotations: { [REF_NAME_ANNOTATION]: "hubble/msgbroker:4.5.0" } },
      ]);
      expect(await readdir(join(dataDir, "store"))).not.toContain(expect.stringMatching(/\.tmp$/));

      const { stdout } = await run("skopeo", [
        "inspect",
        `oci:${join(dataDir, "store")}:hubble/msgbroker:4.5.0`,
      ]);
      const inspected = JSON.parse(stdout) as {
        Digest: string;
        Architecture: string;
        Os: string;
        Layers: string[];
        Env: string[];
      };
      expect(inspected).toMatchObject({
        Digest: broker.manifest.digest,
        Architecture: "amd64",
        Os: "linux",
        Layers: [broker.layer.digest],
        Env: ["SEED=broker"],
      });
      const raw = await run("skopeo", ["inspect", "--raw", `oci:${join(dataDir, "store")}:hubble/agent:1.0`]);
      expect(digestOf(raw.stdout)).toBe(agent.manifest.digest);
    });
  });

  describe("fsck", () => {
    async function storeWithBundle(): Promise<{ store: Store; image: TestImage; record: BundleRecord }> {
      const store = await openStore();
      const image = await putImage(store, "hubble/msgbroker", "4.5.0", "broker");
      const record = await bundleRecord(store, "4.5.0", [image]);
      await store.recordBundle(record);
      return { store, image, record };
    }

    it("reports a healthy store as ok, counting blobs and bytes", async () => {
      const { store, image, record } = await storeWithBundle();
      const report = await store.fsck();
      const expectedBytes =
        image.layer.size +
        image.config.size +
        image.manifest.size +
        (await store.blobs.stat(record.digest))!.size +
        record.files[0]!.size;
      expect(report).toEqual({
        ok: true,
        blobs: 5,
        bytes: expectedBytes,
        corrupt: [],
        missing: [],
        unreferenced: [],
        staleIngests: 0,
      });
    });

    it("detects a blob whose bytes no longer match its digest", async () => {
      const { store, image } = await storeWithBundle();
      const path = store.blobs.path(image.layer.digest);
      const bytes = await readFile(path);
      bytes[700] = bytes[700]! ^ 0x01;
      await writeFile(path, bytes);
      const progress: number[] = [];
      const report = await store.fsck({ onProgress: (p) => progress.push(p.done) });
      expect(report.ok).toBe(false);
      expect(report.corrupt).toEqual([{ digest: image.layer.digest, actual: digestOf(bytes) }]);
      expect(report.missing).toEqual([]);
      expect(progress.at(-1)).toBe(5);
    });

    it("reports a corrupted manifest blob instead of failing", async () => {
      const { store, image } = await storeWithBundle();
      const path = store.blobs.path(image.manifest.digest);
      const bytes = await readFile(path);
      bytes[bytes.length - 2] = "x".charCodeAt(0);
      await writeFile(path, bytes);
      const report = await store.fsck();
      expect(report.ok).toBe(false);
      expect(report.corrupt.map((c) => c.digest)).toEqual([image.manifest.digest]);
    });

    it("detects a blob a manifest references that is missing, naming the referrer", async () => {
      const { store, image } = await storeWithBundle();
      await rm(store.blobs.path(image.config.digest));
      const report = await store.fsck();
      expect(report.ok).toBe(false);
      expect(report.missing).toEqual([{ digest: image.config.digest, referencedBy: image.manifest.digest }]);
      expect(report.corrupt).toEqual([]);
    });

    it("detects a missing manifest and a missing bundle file", async () => {
      const { store, image, record } = await storeWithBundle();
      await rm(store.blobs.path(image.manifest.digest));
      await rm(store.blobs.path(record.files[0]!.digest));
      const report = await store.fsck();
      expect(report.ok).toBe(false);
      expect(report.missing).toEqual(
        expect.arrayContaining([
          { digest: image.manifest.digest, referencedBy: "repository hubble/msgbroker" },
          { digest: record.files[0]!.digest, referencedBy: "bundle file manifests/values.yaml" },
        ]),
      );
      expect(report.missing).toHaveLength(2);
    });

    it("lists unreferenced blobs without calling the store broken", async () => {
      const { store } = await storeWithBundle();
      const orphan = await putBlob(store, new TextEncoder().encode("orphan"), "application/octet-stream");
      const orphanImage = await putImage(store, "hubble/never-recorded", "1", "orphan");
      const report = await store.fsck();
      expect(report.ok).toBe(true);
      expect(new Set(report.unreferenced)).toEqual(
        new Set([
          orphan.digest,
          orphanImage.layer.digest,
          orphanImage.config.digest,
          orphanImage.manifest.digest,
        ]),
      );
    });
  });

  describe("gc", () => {
    async function storeWithGarbage(): Promise<{ store: Store; kept: Digest[]; garbage: Descriptor[] }> {
      const store = await openStore();
      const image = await putImage(store, "hubble/msgbroker", "4.5.0", "broker");
      const record = await bundleRecord(store, "4.5.0", [image]);
      await store.recordBundle(record);
      const orphanImage = await putImage(store, "hubble/dropped", "1", "dropped");
      const orphan = await putBlob(
        store,
        new TextEncoder().encode("orphan blob"),
        "application/octet-stream",
      );
      return {
        store,
        kept: [
          image.layer.digest,
          image.config.digest,
          image.manifest.digest,
          record.digest,
          record.files[0]!.digest,
        ],
        garbage: [orphanImage.layer, orphanImage.config, orphanImage.manifest, orphan],
      };
    }

    it("--dryRun reports what would go and removes nothing", async () => {
      const { store, kept, garbage } = await storeWithGarbage();
      const report = await store.gc({ dryRun: true });
      expect(report.dryRun).toBe(true);
      expect(new Set(report.removed.map((b) => b.digest))).toEqual(new Set(garbage.map((g) => g.digest)));
      expect(report.bytesFreed).toBe(garbage.reduce((sum, g) => sum + g.size, 0));
      for (const digest of [...kept, ...garbage.map((g) => g.digest)])
        expect(await store.blobs.stat(digest)).toBeDefined();
    });

    it("removes only unreferenced blobs, after which fsck is clean", async () => {
      const { store, kept, garbage } = await storeWithGarbage();
      const report = await store.gc();
      expect(report.dryRun).toBe(false);
      expect(new Set(report.removed)).toEqual(
        new Set(garbage.map((g) => ({ digest: g.digest, size: g.size }))),
      );
      expect(report.bytesFreed).toBe(garbage.reduce((sum, g) => sum + g.size, 0));
      for (const digest of kept) expect(await store.blobs.stat(digest)).toBeDefined();
      for (const g of garbage) expect(await store.blobs.stat(g.digest)).toBeUndefined();
      const fsck = await store.fsck();
      expect(fsck).toMatchObject({ ok: true, blobs: kept.length, unreferenced: [] });
      expect((await store.gc()).removed).toEqual([]);
      expect(store.db.prepare("SELECT count(*) AS n FROM locks").get()).toEqual({ n: 0 });
    });

    it("with graceMs, keeps unreferenced blobs younger than the grace and collects older ones", async () => {
      const { store, garbage } = await storeWithGarbage();
      const [aged, ...young] = garbage;
      const past = new Date(Date.now() - 3_600_000);
      await utimes(store.blobs.path(aged!.digest), past, past);
      const report = await store.gc({ graceMs: 600_000 });
      expect(report.removed).toEqual([{ digest: aged!.digest, size: aged!.size }]);
      for (const g of young) expect(await store.blobs.stat(g.digest)).toBeDefined();
    });

    it("refuses to collect when a manifest it must follow is damaged, and removes nothing", async () => {
      const store = await openStore();
      const image = await putImage(store, "hubble/msgbroker", "4.5.0", "broker");
      await store.recordBundle(await bundleRecord(store, "4.5.0", [image]));
      const path = store.blobs.path(image.manifest.digest);
      await writeFile(path, "{ damaged");
      expect((await rejection(store.gc())).code).toBe("MANIFEST_INVALID");
      for (const d of [image.layer, image.config, image.manifest])
        expect(await store.blobs.stat(d.digest)).toBeDefined();
      expect(store.db.prepare("SELECT count(*) AS n FROM locks").get()).toEqual({ n: 0 });
    });

    it("refuses to run while another live process holds the store lock", async () => {
      const { store, garbage } = await storeWithGarbage();
      const other = liveProcess();
      cleanups.push(other.stop);
      store.db
        .prepare("INSERT INTO locks (name, pid, purpose, acquired_at) VALUES ('store', ?, 'import', 'now')")
        .run(other.pid);
      const error = await rejection(store.gc());
      expect(error.code).toBe("STORE_LOCKED");
      for (const g of garbage) expect(await store.blobs.stat(g.digest)).toBeDefined();
    });
  });

  describe("ingest files", () => {
    it("removeStaleIngests removes dead writers' files and keeps live ones", async () => {
      const store = await openStore();
      const dead = await deadPid();
      const deadFile = join(store.blobs.ingestDir, `${dead}-0123456789abcdef`);
      await writeFile(deadFile, "half a blob");
      const garbageName = join(store.blobs.ingestDir, "not-a-pid");
      await writeFile(garbageName, "?");
      const live = await store.blobs.ingest();
      await live.write(new TextEncoder().encode("in progress"));
      const other = liveProcess();
      cleanups.push(other.stop);
      const otherFile = join(store.blobs.ingestDir, `${other.pid}-fedcba9876543210`);
      await writeFile(otherFile, "another writer");

      expect((await store.fsck()).staleIngests).toBe(4);
      expect(await store.blobs.removeStaleIngests()).toBe(2);
      expect(existsSync(deadFile)).toBe(false);
      expect(existsSync(garbageName)).toBe(false);
      expect(existsSync(live.tempPath)).toBe(true);
      expect(existsSync(otherFile)).toBe(true);
      const data = new TextEncoder().encode("in progress");
      expect(await live.commit({ digest: digestOf(data), size: data.byteLength })).toMatchObject({
        created: true,
      });
    });

    it("removes a live writer's file only once it is older than the limit", async () => {
      const store = await openStore();
      const live = await store.blobs.ingest();
      await live.write(new TextEncoder().encode("slow"));
      expect(await store.blobs.removeStaleIngests(60_000)).toBe(0);
      const past = new Date(Date.now() - 120_000);
      await utimes(live.tempPath, past, past);
      expect(await store.blobs.removeStaleIngests(60_000)).toBe(1);
      expect(existsSync(live.tempPath)).toBe(false);
      await live.abort();
    });

    it("gc removes dead writers' ingest files and reports them", async () => {
      const store = await openStore();
      const dead = await deadPid();
      await writeFile(join(store.blobs.ingestDir, `${dead}-aa`), "x");
      await writeFile(join(store.blobs.ingestDir, `${dead}-bb`), "y");
      const live = await store.blobs.ingest();
      expect((await store.gc({ dryRun: true })).ingestsRemoved).toBe(0);
      expect(await readdir(store.blobs.ingestDir)).toHaveLength(3);
      expect((await store.gc()).ingestsRemoved).toBe(2);
      expect(await readdir(store.blobs.ingestDir)).toEqual([live.tempPath.split("/").at(-1)]);
      await live.abort();
    });
  });

  describe("disk full", () => {
    const enospc = (): Error =>
      Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });

    it("ENOSPC from a write gives STORE_DISK_FULL and leaves no ingest file and no blob", async () => {
      let calls = 0;
      const store = await openStore({
        writeChunk: async (handle, chunk, position) => {
          if (++calls > 3) throw enospc();
          await handle.write(chunk, 0, chunk.byteLength, position);
        },
      });
      const data = new Uint8Array(1024 * 1024).map((_, i) => i % 256);
      async function* chunks(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < data.length; i += 65_536) {
          await Promise.resolve();
          yield data.subarray(i, i + 65_536);
        }
      }
      const error = await rejection(store.blobs.put(chunks(), { digest: digestOf(data), size: data.length }));
      expect(error.code).toBe("STORE_DISK_FULL");
      expect(error.where).toMatch(new RegExp(`^${store.blobs.ingestDir}/`));
      expect(error.hint).toBeDefined();
      expect(errorCause(error)).toMatchObject({ code: "ENOSPC" });
      expect(calls).toBe(4);
      expect(await readdir(store.blobs.ingestDir)).toEqual([]);
      expect(await store.blobs.stat(digestOf(data))).toBeUndefined();
      const listed: Digest[] = [];
      for await (const digest of store.blobs.list()) listed.push(digest);
      expect(listed).toEqual([]);
    });

    it("EDQUOT is reported as disk full too, through a direct ingest", async () => {
      const store = await openStore({
        writeChunk: () => Promise.reject(Object.assign(new Error("quota"), { code: "EDQUOT" })),
      });
      const ingest = await store.blobs.ingest();
      expect((await rejection(ingest.write(new Uint8Array(10)))).code).toBe("STORE_DISK_FULL");
      await ingest.abort();
      expect(await readdir(store.blobs.ingestDir)).toEqual([]);
    });
  });

  describe("the store lock", () => {
    function lockRows(store: Store): { name: string; pid: number; purpose: string }[] {
      return store.db.prepare("SELECT name, pid, purpose FROM locks").all() as {
        name: string;
        pid: number;
        purpose: string;
      }[];
    }

    it("records the owner's pid and purpose while held, and release removes the row", async () => {
      const store = await openStore();
      const release = acquireLock(store.db, "store", "import mgmt 4.5.0");
      expect(lockRows(store)).toEqual([{ name: "store", pid: process.pid, purpose: "import mgmt 4.5.0" }]);
      release();
      expect(lockRows(store)).toEqual([]);
      acquireLock(store.db, "store", "gc")();
    });

    it("fails with STORE_LOCKED, naming the holder, while a live process holds the lock", async () => {
      const store = await openStore();
      const other = liveProcess();
      cleanups.push(other.stop);
      store.db
        .prepare(
          "INSERT INTO locks (name, pid, purpose, acquired_at) VALUES ('store', ?, 'import mgmt 4.5.0', 'now')",
        )
        .run(other.pid);
      const error = await rejection(store.withLock("gc", () => Promise.resolve()));
      expect(error.code).toBe("STORE_LOCKED");
      expect(error.message).toContain(String(other.pid));
      expect(error.message).toContain("import mgmt 4.5.0");
      expect(lockRows(store)).toEqual([{ name: "store", pid: other.pid, purpose: "import mgmt 4.5.0" }]);
    });

    it("fails with STORE_LOCKED while this process already holds the lock, through a second Store too", async () => {
      const store = await openStore();
      const second = await openStore();
      const release = acquireLock(store.db, "store", "import");
      try {
        expect(() => acquireLock(store.db, "store", "gc")).toThrow(
          expect.objectContaining({ code: "STORE_LOCKED" }),
        );
        expect(() => acquireLock(second.db, "store", "gc")).toThrow(
          expect.objectContaining({ code: "STORE_LOCKED" }),
        );
      } finally {
        release();
      }
      second.close();
    });

    it("lets exactly one of several processes racing for a dead owner's lock win", async () => {
      const store = await openStore();
      const dead = await deadPid();
      store.db
        .prepare("INSERT INTO locks (name, pid, purpose, acquired_at) VALUES ('store', ?, 'import', 'then')")
        .run(dead);
      const storeModule = join(process.cwd(), "dist/registry/store/index.js");
      const racer = `
        const { Store, acquireLock } = await import(${JSON.stringify(storeModule)});
        const store = await Store.open(${JSON.stringify(dataDir)});
        let line;
        try { acquireLock(store.db, "store", "racer " + process.pid); line = "won"; }
        catch (error) { line = error.code; }
        process.stdout.write(line + "\\n");
        process.stdin.resume();
        process.stdin.on("end", () => process.exit(0));
      `;
      const racers = Array.from({ length: 6 }, () =>
        spawn(process.execPath, ["--input-type=module", "-e", racer], { stdio: ["pipe", "pipe", "inherit"] }),
      );
      const answers = await Promise.all(
        racers.map(
          (child) =>
            new Promise<string>((resolve, reject) => {
              let out = "";
              child.stdout.on("data", (chunk: Buffer) => {
                out += chunk.toString();
                if (out.endsWith("\n")) resolve(out.trim());
              });
              child.on("exit", (code) => reject(new Error(`racer exited ${code} before answering: ${out}`)));
            }),
        ),
      );
      const exited = racers.map((child) => new Promise((resolve) => child.on("exit", resolve)));
      for (const child of racers) child.stdin.end();
      await Promise.all(exited);
      expect(answers.filter((answer) => answer === "won")).toHaveLength(1);
      expect(answers.filter((answer) => answer === "STORE_LOCKED")).toHaveLength(5);
    });

    it("serialises withLock callers of one store: the second fails fast while the first runs", async () => {
      const store = await openStore();
      let inside = false;
      const outcome = await store.withLock("import", async () => {
        inside = true;
        return rejection(store.withLock("gc", () => Promise.resolve("ran")));
      });
      expect(inside).toBe(true);
      expect(outcome.code).toBe("STORE_LOCKED");
      expect(lockRows(store)).toEqual([]);
    });

    it("takes over a lock whose owner has died", async () => {
      const store = await openStore();
      const dead = await deadPid();
      store.db
        .prepare("INSERT INTO locks (name, pid, purpose, acquired_at) VALUES ('store', ?, 'import', 'then')")
        .run(dead);
      const release = acquireLock(store.db, "store", "gc");
      expect(lockRows(store)).toEqual([{ name: "store", pid: process.pid, purpose: "gc" }]);
      release();
      expect(lockRows(store)).toEqual([]);
    });

    it("takes over a lock naming this process's pid that this process does not hold (pid reuse)", async () => {
      const store = await openStore();
      store.db
        .prepare(
          "INSERT INTO locks (name, pid, purpose, acquired_at) VALUES ('store', ?, 'import by a previous incarnation', 'then')",
        )
        .run(process.pid);
      const release = acquireLock(store.db, "store", "gc");
      expect(lockRows(store)).toEqual([{ name: "store", pid: process.pid, purpose: "gc" }]);
      expect(() => acquireLock(store.db, "store", "import")).toThrow(
        expect.objectContaining({ code: "STORE_LOCKED" }),
      );
      release();
      expect(lockRows(store)).toEqual([]);
    });
  });
});

function errorCause(error: Error): unknown {
  return error.cause;
}
