/**
 * Issue 10, point 1: a client that stops reading never takes the registry down. The real
 * `airlock registry serve` of dist/ serves a 40 MiB layer over TLS and over plain HTTP; clients walk
 * away from it at seeded random offsets (RST or close) while it is writing — whole blobs, ranges,
 * manifests — and afterwards the same process answers, skopeo pulls the whole image from it, and its
 * stderr shows that the process guard never had to catch anything.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { createCipheriv, createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createGzip } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { digestOf, MediaType, parseManifest, type Digest } from "../../registry/oci/index.js";
import {
  CLI,
  MiB,
  runTool,
  selfSignedCertificate,
  sha256File,
  withStore,
  waitFor,
} from "../helpers/fixtures.js";
import { walkAway, type WalkAway } from "../helpers/reset-client.js";
import { seededRandom } from "../helpers/seeded-random.js";

const REPOSITORY = "hubble/bulk";
const LAYER_BYTES = 40 * MiB;
const CLIENTS = 50;
/** Clients in flight at once: enough to overlap resets with live writes, few enough for 2 cores. */
const PARALLEL = 5;
const CLIENT_TIMEOUT_MS = 30_000;
/** What the CLI's process guard prints; it must never appear, or the guard is hiding a bug. */
const GUARD_MESSAGE = /still serving/;

interface Image {
  layer: Digest;
  layerSize: number;
  manifest: Digest;
}

interface Served {
  child: ChildProcess;
  url: string;
  stderr(): string;
  exit(): { code: number | null; signal: NodeJS.Signals | null } | undefined;
  exited: Promise<void>;
}

let root: string;
let dataDir: string;
let image: Image;
let certs: Awaited<ReturnType<typeof selfSignedCertificate>>;
const running: Served[] = [];

/** Seeded bytes (AES-256-CTR of zeros) in 1 MiB chunks: random-looking, reproducible, cheap. */
function* seededBytes(seed: string, total: number): Generator<Buffer> {
  const key = createHash("sha256").update(seed).digest();
  const cipher = createCipheriv("aes-256-ctr", key, Buffer.alloc(16));
  const zeros = Buffer.alloc(MiB);
  for (let done = 0; done < total; done += MiB) {
    yield cipher.update(zeros.subarray(0, Math.min(MiB, total - done)));
  }
}

/** One image of one gzip layer of seeded bytes, written through the store's API: blobs, manifest, tag. */
async function storeImage(): Promise<Image> {
  const diffId = createHash("sha256");
  const hashed = function* (): Generator<Buffer> {
    for (const chunk of seededBytes("registry-resets", LAYER_BYTES)) {
      diffId.update(chunk);
      yield chunk;
    }
  };
  return withStore(dataDir, async (store) => {
    const gzip = Readable.from(hashed()).pipe(createGzip({ level: 0 }));
    const layer = await store.blobs.put(gzip as AsyncIterable<Buffer>, {});
    const config = Buffer.from(
      JSON.stringify({
        architecture: "amd64",
        os: "linux",
        config: {},
        rootfs: { type: "layers", diff_ids: [`sha256:${diffId.digest("hex")}`] },
      }),
    );
    await store.blobs.put([config], {});
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciManifest,
        config: { mediaType: MediaType.OciConfig, digest: digestOf(config), size: config.byteLength },
        layers: [{ mediaType: MediaType.OciLayerGzip, digest: layer.digest, size: layer.size }],
      }),
    );
    const { digest } = await store.blobs.put([manifest], {});
    store.putManifest(
      { repository: REPOSITORY, digest, mediaType: MediaType.OciManifest, size: manifest.byteLength },
      parseManifest(manifest, MediaType.OciManifest),
    );
    await store.putTag(REPOSITORY, "1", digest);
    return { layer: layer.digest, layerSize: layer.size, manifest: digest };
  });
}

/** `airlock registry serve` from dist/, resolved once it has printed where it listens (--json). */
async function serve(flags: string[]): Promise<Served> {
  const child = spawn(
    process.execPath,
    [CLI, "--data-dir", dataDir, "--json", "registry", "serve", "--listen", "127.0.0.1:0", ...flags],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  let exit: ReturnType<Served["exit"]>;
  const exited = new Promise<void>((resolve) =>
    child.on("exit", (code, signal) => {
      exit = { code, signal };
      resolve();
    }),
  );
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  let url: string | undefined;
  await waitFor(
    () => {
      if (exit !== undefined) throw new Error(`registry serve exited ${exit.code}: ${stderr}`);
      try {
        url = (JSON.parse(stdout) as { url: string }).url;
        return true;
      } catch {
        return false;
      }
    },
    20_000,
    "registry serve to listen",
  );
  const served = { child, url: url!, stderr: () => stderr, exit: () => exit, exited };
  running.push(served);
  return served;
}

/** Runs `clients` with at most PARALLEL at once; resolves with how many bytes each read. */
async function runAll(clients: WalkAway[]): Promise<number[]> {
  const read: number[] = [];
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < clients.length) {
      const n = next++;
      read[n] = await walkAway(clients[n]!);
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, lane));
  return read;
}

/** The seeded clients of one server: whole-blob GETs, then ranges, then manifest GETs and HEADs. */
function clientsFor(url: string, ca: Buffer | undefined, seed: number): WalkAway[] {
  const random = seededRandom(seed);
  const how = (): WalkAway["how"] => (random() < 0.75 ? "reset" : "close");
  const common = { url, ca, timeoutMs: CLIENT_TIMEOUT_MS };
  const blobPath = `/v2/${REPOSITORY}/blobs/${image.layer}`;
  const blobs = Array.from({ length: CLIENTS }, () => ({
    ...common,
    method: "GET" as const,
    path: blobPath,
    stopAt: 200 + Math.floor(random() * (32 * MiB - 200)),
    how: how(),
  }));
  const ranges = Array.from({ length: 10 }, () => {
    const start = Math.floor(random() * (image.layerSize - 8 * MiB));
    return {
      ...common,
      method: "GET" as const,
      path: blobPath,
      headers: { Range: `bytes=${start}-${start + 8 * MiB - 1}` },
      stopAt: 200 + Math.floor(random() * 6 * MiB),
      how: how(),
    };
  });
  const manifests = Array.from({ length: 10 }, (_, n) => ({
    ...common,
    method: n % 2 === 0 ? ("GET" as const) : ("HEAD" as const),
    path: `/v2/${REPOSITORY}/manifests/${n % 4 < 2 ? "1" : image.manifest}`,
    stopAt: Math.floor(random() * 400),
    how: how(),
  }));
  return [...blobs, ...ranges, ...manifests];
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "airlock-resets-"));
  dataDir = join(root, "data");
  image = await storeImage();
  certs = await selfSignedCertificate(await mkdtemp(join(root, "certs-")));
});

afterAll(async () => {
  for (const served of running) {
    if (served.exit() === undefined) served.child.kill("SIGTERM");
    await served.exited;
  }
  await rm(root, { recursive: true, force: true });
});

describe.each([
  { protocol: "TLS", seed: 101, flags: () => ["--tls-cert", certs.certFile, "--tls-key", certs.keyFile] },
  { protocol: "plain HTTP", seed: 102, flags: () => ["--insecure-http"] },
])("registry serve over $protocol", ({ protocol, seed, flags }) => {
  it(`survives ${CLIENTS} clients resetting mid-blob, and ranges and manifests cut short; then skopeo pulls the image from the same process`, async () => {
    const served = await serve([...flags(), "--anonymous-pull"]);
    const ca = protocol === "TLS" ? await readFile(certs.certFile) : undefined;
    const clients = clientsFor(served.url, ca, seed);
    const read = await runAll(clients).catch(async (error: unknown) => {
      // A refused client usually means the registry is dying: say so, once its exit is known.
      await waitFor(() => served.exit() !== undefined, 5_000, "the registry to exit").catch(() => undefined);
      const exit = JSON.stringify(served.exit());
      throw new Error(`${String(error)}; the registry's exit: ${exit}; its stderr: ${served.stderr()}`);
    });
    // The blob clients left mid-body: their offsets fall inside the 40 MiB layer.
    for (const [n, bytes] of read.slice(0, CLIENTS).entries()) {
      expect(bytes, `client ${n}`).toBeGreaterThanOrEqual(clients[n]!.stopAt);
      expect(bytes, `client ${n}`).toBeLessThan(image.layerSize);
    }
    expect(served.exit(), `the registry died: ${served.stderr()}`).toBeUndefined();

    const host = served.url.replace(/^https?:\/\//, "");
    const out = join(root, `pull-${seed}`);
    const trust = protocol === "TLS" ? ["--src-cert-dir", certs.trustDir] : ["--src-tls-verify=false"];
    const pulled = await runTool("skopeo", [
      "copy",
      ...trust,
      `docker://${host}/${REPOSITORY}:1`,
      `dir:${out}`,
    ]);
    expect(pulled.code, pulled.stderr).toBe(0);
    expect(`sha256:${await sha256File(join(out, image.layer.slice("sha256:".length)))}`).toBe(image.layer);
    expect(`sha256:${await sha256File(join(out, "manifest.json"))}`).toBe(image.manifest);

    expect(served.exit(), `the registry died: ${served.stderr()}`).toBeUndefined();
    expect(served.stderr()).not.toMatch(GUARD_MESSAGE);
    served.child.kill("SIGTERM");
    await served.exited;
    expect(served.exit()).toEqual({ code: 0, signal: null });
  });
});
