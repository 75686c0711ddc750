/**
 * A failed import deletes nothing (issue 10, point 5). `registry serve` takes no lock, and a push or a
 * mount counts a blob present by its file: a manifest pushed while an import runs may name a layer
 * that import stored moments before. Here the import of a bundle whose last layer is damaged is held,
 * by the store's write hook, at the first write of that layer until a client has pushed, through a
 * real `airlock registry serve` on the same data dir, a manifest naming a layer the import already
 * stored. The import then fails; the pushed image must stay whole, and gc and a re-run take care of
 * the rest.
 */
import { createReadStream, existsSync } from "node:fs";
import { copyFile, readFile, utimes } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BLOB_DIR,
  LAYOUT_ENTRIES,
  importBundle,
  indexTarFile,
  type BundleMetadata,
} from "../../bundle/index.js";
import { RegistryClient } from "../../registry/client/index.js";
import { MediaType, digestOf, type Descriptor, type Digest } from "../../registry/oci/index.js";
import { writeFully, type WriteChunk } from "../../registry/store/index.js";
import { freePort, startDaemon, type Daemon } from "../helpers/daemons.js";
import {
  CLI,
  MiB,
  blobFiles,
  expectAirlockError,
  flipByte,
  runTool,
  sampleBundle,
  useFixtures,
  waitFor,
  withStore,
  type Fixtures,
} from "../helpers/fixtures.js";

const CREDS = { username: "pusher", password: "push-pass-1" };
const REPOSITORY = "site/tools";

interface BlobEntry {
  name: string;
  digest: Digest;
  dataOffset: number;
  size: number;
}

let fx: Fixtures;
let bundle: string;
let damaged: string;
/** What the import writes into a fresh store (blobs and files), in the order the tar carries it. */
let written: BlobEntry[];
/** The damaged layer: the last large blob, so every blob before it is stored when the import meets it. */
let victim: BlobEntry;
/** A layer the import stores early, which the pushed manifest names. */
let shared: BlobEntry;
let htpasswd: string;

beforeAll(async () => {
  fx = await useFixtures({ size: 12 * MiB });
  let metadata: BundleMetadata;
  ({ bundle, metadata } = await sampleBundle(fx));
  const layout: readonly string[] = LAYOUT_ENTRIES;
  const index = await indexTarFile(bundle);
  written = metadata.files
    .filter((file) => !layout.includes(file.path))
    .map((file) => ({
      name: file.path,
      digest: `sha256:${file.sha256}` as Digest,
      dataOffset: index.get(file.path)!.dataOffset,
      size: file.size,
    }));
  expect(written.map((entry) => entry.dataOffset)).toEqual(
    written.map((entry) => entry.dataOffset).sort((a, b) => a - b),
  );
  const large = written.filter((entry) => entry.name.startsWith(BLOB_DIR) && entry.size > 64 * 1024);
  victim = large.at(-1)!;
  shared = large[0]!;
  expect(written.indexOf(victim) - written.indexOf(shared)).toBeGreaterThan(3);
  damaged = join(await fx.dir("damaged"), "damaged.airlock.tar");
  await copyFile(bundle, damaged);
  await flipByte(damaged, victim.dataOffset + Math.floor(victim.size / 2));
  htpasswd = join(await fx.dir("auth"), "htpasswd");
  const made = await runTool("htpasswd", ["-Bbc", htpasswd, CREDS.username, CREDS.password]);
  expect(made.code, made.stderr).toBe(0);
});

afterAll(async () => {
  await fx?.cleanup();
});

/** `airlock registry serve` on the data dir, plain HTTP on loopback, `pusher` may push. */
async function serve(dataDir: string): Promise<{ daemon: Daemon; client: RegistryClient }> {
  const port = await freePort();
  const daemon = startDaemon(process.execPath, [
    CLI,
    "--data-dir",
    dataDir,
    "registry",
    "serve",
    "--listen",
    `127.0.0.1:${port}`,
    "--insecure-http",
    "--auth",
    `htpasswd:${htpasswd}`,
    "--push-user",
    CREDS.username,
  ]);
  const client = new RegistryClient({
    host: `127.0.0.1:${port}`,
    insecureHttp: true,
    credentials: CREDS,
    retries: 0,
  });
  await waitFor(
    async () => {
      if (daemon.exited() !== undefined) throw new Error(`registry serve exited: ${daemon.output()}`);
      return client.ping().then(
        () => true,
        () => false,
      );
    },
    30_000,
    "registry serve",
  );
  return { daemon, client };
}

/** An image of one layer, `shared`, with a config of its own: pushed as a site's own tool would be. */
async function pushImage(client: RegistryClient): Promise<{ manifest: Digest; config: Descriptor }> {
  const configBytes = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }),
  );
  const config = { mediaType: MediaType.OciConfig, digest: digestOf(configBytes), size: configBytes.length };
  const layer = { mediaType: MediaType.OciLayerGzip, digest: shared.digest, size: shared.size };
  await client.pushBlob(REPOSITORY, config, () => configBytes);
  // Present by its file (the import's) unless the registry wants it linked first: then it goes up.
  await client.pushBlob(REPOSITORY, layer, (offset) =>
    createReadStream(bundle, { start: shared.dataOffset + offset, end: shared.dataOffset + shared.size - 1 }),
  );
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: MediaType.OciManifest, config, layers: [layer] }),
  );
  await client.putManifest(REPOSITORY, "1.0", manifest, MediaType.OciManifest);
  return { manifest: digestOf(manifest), config };
}

/** Pulls the pushed image back by its tag: manifest and layer, each checked against its digest. */
async function expectPullable(client: RegistryClient, manifest: Digest): Promise<void> {
  const pulled = await client.getManifest(REPOSITORY, "1.0");
  expect(pulled.digest).toBe(manifest);
  let bytes = 0;
  const layer = { mediaType: MediaType.OciLayerGzip, digest: shared.digest, size: shared.size };
  for await (const chunk of client.getBlob(REPOSITORY, layer)) bytes += chunk.byteLength;
  expect(bytes).toBe(shared.size);
}

describe("a push racing a failing import", () => {
  it("keeps the pushed manifest's layers; gc removes only unreferenced blobs past the grace; a re-run rewrites nothing", async () => {
    const dataDir = await fx.dir("site");
    const { daemon, client } = await serve(dataDir);
    try {
      const victimHead = (await readFile(damaged)).subarray(victim.dataOffset, victim.dataOffset + 4096);
      const sharedFile = join(dataDir, "store", "blobs", "sha256", shared.digest.slice("sha256:".length));
      let pushed: Promise<{ manifest: Digest; config: Descriptor }> | undefined;
      // The first write of the damaged layer waits for the shared layer's file and then for the push.
      const writeChunk: WriteChunk = async (handle, chunk, position) => {
        if (
          position === 0 &&
          pushed === undefined &&
          Buffer.from(chunk.subarray(0, 4096)).equals(victimHead)
        ) {
          await waitFor(() => existsSync(sharedFile), 30_000, "the shared layer stored by the import");
          pushed = pushImage(client);
          await pushed;
        }
        await writeFully(handle, chunk, position);
      };
      await withStore(
        dataDir,
        (store) => expectAirlockError(importBundle(store, [damaged]), "BUNDLE_ENTRY_CORRUPT", victim.name),
        { writeChunk },
      );
      expect(pushed, "the import never reached the damaged layer").toBeDefined();
      const { manifest, config } = await pushed!;

      // The image pushed meanwhile is whole, served and consistent.
      await expectPullable(client, manifest);
      const stored = written.slice(0, written.indexOf(victim)).map((entry) => entry.digest);
      await withStore(dataDir, async (store) => {
        const report = await store.fsck();
        expect(report).toMatchObject({ ok: true, corrupt: [], missing: [], staleIngests: 0 });
        expect(store.listBundles()).toEqual([]);
        // What the failed import stored and nothing references: left for gc.
        expect(new Set(report.unreferenced)).toEqual(new Set(stored.filter((d) => d !== shared.digest)));
        expect((await store.gc({ graceMs: 10 * 60_000 })).removed).toEqual([]);
      });

      // An hour later for half of them (and for the shared layer): gc takes only those unreferenced.
      const anHourAgo = new Date(Date.now() - 3600_000);
      const aged = stored.filter((digest, i) => i % 2 === 0 && digest !== shared.digest);
      for (const digest of [...aged, shared.digest, config.digest]) {
        const path = join(dataDir, "store", "blobs", "sha256", digest.slice("sha256:".length));
        await utimes(path, anHourAgo, anHourAgo);
      }
      await withStore(dataDir, async (store) => {
        const gc = await store.gc({ graceMs: 10 * 60_000 });
        expect(new Set(gc.removed.map((blob) => blob.digest))).toEqual(new Set(aged));
      });
      await expectPullable(client, manifest);

      // The bundle fixed: the re-run completes, reusing every blob still there without rewriting it.
      const before = await blobFiles(dataDir);
      await withStore(dataDir, async (store) => {
        const result = await importBundle(store, [bundle]);
        expect(result.imported).toBe(true);
        expect(result.blobsPresent).toBe(stored.length - aged.length);
        expect(result.blobsWritten).toBe(written.length - result.blobsPresent);
        const report = await store.fsck();
        expect(report).toMatchObject({ ok: true, corrupt: [], missing: [], unreferenced: [] });
      });
      const after = await blobFiles(dataDir);
      for (const [name, file] of before) {
        expect(after.get(name), `${name} was rewritten or removed`).toEqual(file);
      }
      await expectPullable(client, manifest);
    } finally {
      await client.close();
      await daemon.stop();
    }
  });
});
