/**
 * An import killed with SIGKILL at any point leaves the store consistent, shows nothing of the
 * bundle, and a re-run completes without rewriting the blobs already there (issue 3, point 8).
 * The import is held by the store's write hook in the middle of a chosen blob (test/helpers/
 * import-held.mjs, the built library in a child process) and SIGKILLed there; the re-run is the CLI's.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { copyFile, readFile, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import {
  buildBundle,
  importBundle,
  readBundleHead,
  LAYOUT_ENTRIES,
  type BundleMetadata,
} from "../../bundle/index.js";
import {
  MiB,
  blobFiles,
  ingestFiles,
  runCli,
  sha256Hex,
  useFixtures,
  waitFor,
  type BlobFile,
  type Fixtures,
  withStore,
} from "../helpers/fixtures.js";

let fx: Fixtures;
let bundle: string;
let metadata: BundleMetadata;
/** Sizes of what the import writes into the store, in the order the tar carries it. */
let written: { path: string; size: number }[];
const children = new Set<ChildProcess>();
const HELD_IMPORT = fileURLToPath(new URL("../helpers/import-held.mjs", import.meta.url));

async function blobCount(dataDir: string): Promise<number> {
  return (await readdir(join(dataDir, "store", "blobs", "sha256")).catch(() => [] as string[])).length;
}

/** True while some ingest file holds bytes: the importer is in the middle of a blob. */
async function midBlob(dataDir: string): Promise<boolean> {
  for (const name of await ingestFiles(dataDir)) {
    const info = await stat(join(dataDir, "store", "ingest", name)).catch(() => undefined);
    if (info !== undefined && info.size > 0) return true;
  }
  return false;
}

interface KillOutcome {
  blobsAtKill: number;
  ingestLeftovers: number;
  /** An ingest file held bytes at the kill: the import was in the middle of a blob. */
  midBlob: boolean;
}

/**
 * Imports the bundle in a child process held, by the store's write hook, in the middle of the blob
 * at `threshold` (0-based, tar order) with every blob before it stored, and SIGKILLs it there.
 */
async function importAndKill(dataDir: string, threshold: number): Promise<KillOutcome> {
  const child = spawn(process.execPath, [HELD_IMPORT, dataDir, bundle, String(threshold)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  let done = false;
  void exited.then(() => (done = true));
  await waitFor(() => done || stdout.includes("held"), 60_000, `the import held at blob ${threshold}`);
  expect(done, `the import ended before blob ${threshold}: ${stdout}${stderr}`).toBe(false);
  process.kill(child.pid!, "SIGKILL");
  const exit = await exited;
  children.delete(child);
  expect(exit.signal).toBe("SIGKILL");
  return {
    blobsAtKill: await blobCount(dataDir),
    ingestLeftovers: (await ingestFiles(dataDir)).length,
    midBlob: await midBlob(dataDir),
  };
}

beforeAll(async () => {
  fx = await useFixtures({ size: 48 * MiB });
  bundle = join(await fx.dir("work"), "mgmt-4.5.0.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: bundle });
  metadata = (await readBundleHead([bundle])).metadata;
  const layout: readonly string[] = LAYOUT_ENTRIES;
  written = metadata.files
    .filter((file) => !layout.includes(file.path))
    .map((file) => ({ path: file.path, size: file.size }));
});

afterEach(() => {
  for (const child of children)
    if (child.exitCode === null && child.signalCode === null) process.kill(child.pid!, "SIGKILL");
  children.clear();
});

afterAll(async () => {
  await fx?.cleanup();
});

describe("SIGKILL during import", () => {
  it("the bundle is large enough to be killed mid-way (40–60 MiB, several large blobs)", async () => {
    const size = (await stat(bundle)).size;
    expect(size).toBeGreaterThan(40 * MiB);
    expect(size).toBeLessThan(64 * MiB);
    expect(written.filter((file) => file.size >= MiB).length).toBeGreaterThanOrEqual(6);
  });

  /** Kill points: a count of blobs already in the store, each followed by a large blob to be caught writing. */
  function killPoints(): { name: string; threshold: number }[] {
    const large = written
      .map((file, i) => ({ ...file, i }))
      .filter((file) => file.size >= MiB && file.i >= 1);
    const early = large[0]!.i;
    const middle = large[Math.floor(large.length / 2)]!.i;
    const late = large.at(-1)!.i;
    expect(early).toBeLessThan(middle);
    expect(middle).toBeLessThan(late);
    expect(late).toBeGreaterThan(written.length * 0.6);
    return [
      { name: "early", threshold: early },
      { name: "middle", threshold: middle },
      { name: "late", threshold: late },
    ];
  }

  it("at early, middle and late points: fsck clean, nothing visible; a re-run completes without rewriting blobs", async () => {
    let leftoversSeen = 0;
    for (const point of killPoints()) {
      const dataDir = await fx.dir(`crash-${point.name}`);
      const outcome = await importAndKill(dataDir, point.threshold);
      expect(outcome.blobsAtKill, point.name).toBe(point.threshold);
      expect(outcome.midBlob, point.name).toBe(true);
      leftoversSeen += outcome.ingestLeftovers;

      // Consistent, and nothing of the bundle visible.
      await withStore(dataDir, async (store) => {
        const report = await store.fsck();
        expect(report.corrupt, point.name).toEqual([]);
        expect(report.missing, point.name).toEqual([]);
        expect(report.ok).toBe(true);
        expect(store.listBundles(), point.name).toEqual([]);
        expect(store.listTags(), point.name).toEqual([]);
        expect(report.unreferenced.length).toBe(report.blobs);
      });
      const index = JSON.parse(await readFile(join(dataDir, "store", "index.json"), "utf8")) as {
        manifests: unknown[];
      };
      expect(index.manifests).toEqual([]);

      // The re-run finishes the job and keeps every blob the killed run had stored.
      const before = await blobFiles(dataDir);
      expect(before.size).toBe(outcome.blobsAtKill);
      const rerun = await runCli([
        "--data-dir",
        dataDir,
        "--no-progress",
        "--json",
        "bundle",
        "import",
        bundle,
      ]);
      expect(rerun.code, rerun.stderr).toBe(0);
      const result = JSON.parse(rerun.stdout) as {
        imported: boolean;
        blobsPresent: number;
        blobsWritten: number;
      };
      expect(result.imported).toBe(true);
      expect(result.blobsPresent, point.name).toBeGreaterThanOrEqual(before.size - 1);
      expect(result.blobsPresent + result.blobsWritten).toBe(written.length);
      const after = await blobFiles(dataDir);
      for (const [name, file] of before) {
        const now: BlobFile | undefined = after.get(name);
        expect(now, `${point.name}: ${name} vanished`).toBeDefined();
        expect({ ino: now!.ino, mtimeMs: now!.mtimeMs }, `${point.name}: ${name} was rewritten`).toEqual({
          ino: file.ino,
          mtimeMs: file.mtimeMs,
        });
      }
      await withStore(dataDir, async (store) => {
        const report = await store.fsck();
        expect(report).toMatchObject({
          ok: true,
          corrupt: [],
          missing: [],
          unreferenced: [],
          staleIngests: 0,
        });
        expect(store.listBundles().map((b) => `${b.name} ${b.version}`)).toEqual(["mgmt 4.5.0"]);
        for (const image of metadata.images) {
          const [repository, tag] = image.ref.split(":") as [string, string];
          expect(store.resolveTag(repository, tag)).toBe(image.digest);
        }
      });
      expect(await ingestFiles(dataDir)).toEqual([]);
    }
    // At least one kill landed in the middle of a blob, so the ingest clean-up was exercised.
    expect(leftoversSeen).toBeGreaterThan(0);
  });

  it("a crash after the rows commit but before store/index.json is rewritten: the re-run repairs index.json", async () => {
    const dataDir = await fx.dir("crash-index");
    await withStore(dataDir, () => Promise.resolve());
    const emptyIndex = join(fx.root, "empty-index.json");
    await copyFile(join(dataDir, "store", "index.json"), emptyIndex);
    await withStore(dataDir, async (store) => {
      expect((await importBundle(store, [bundle])).imported).toBe(true);
    });
    // The state such a crash leaves: rows committed, the layout's index.json still the old one.
    await copyFile(emptyIndex, join(dataDir, "store", "index.json"));
    const before = await blobFiles(dataDir);
    await withStore(dataDir, async (store) => {
      expect((await importBundle(store, [bundle])).imported).toBe(false);
    });
    const index = JSON.parse(await readFile(join(dataDir, "store", "index.json"), "utf8")) as {
      manifests: { digest: string; annotations: Record<string, string> }[];
    };
    expect(
      index.manifests.map((m) => [m.annotations["org.opencontainers.image.ref.name"], m.digest]).sort(),
    ).toEqual(metadata.images.map((image) => [image.ref, image.digest]).sort());
    expect(await blobFiles(dataDir)).toEqual(before);
    // And the repaired layout serves each image's manifest.
    const first = metadata.images[0]!;
    const manifest = await withStore(dataDir, (store) => store.blobs.readSmall(first.digest, 1024 * 1024));
    expect(`sha256:${sha256Hex(manifest)}`).toBe(first.digest);
  });
});
