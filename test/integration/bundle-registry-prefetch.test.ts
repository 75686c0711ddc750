/**
 * `bundle build` pulls registry blobs concurrently (issue 11, point 7): each blob streams into the range
 * the archive's order reserved for it, at most `concurrency` at once, and the bundle (also split into
 * parts) is byte for byte the one built one blob at a time, and the one built from the OCI layout. A
 * proxy in front of Airlock's registry counts blob requests in flight, holding each answer briefly so
 * that requests made together overlap; it can damage one blob on the way, and stall another after its
 * headers until the client goes away.
 */
import { createServer, request as httpRequest, type Server } from "node:http";
import { readdir, readFile, writeFile } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  PARTS_SUFFIX,
  buildBundle,
  readBundleHead,
  resolveBundleInput,
  type PartInfo,
} from "../../bundle/index.js";
import type { ImageManifest } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { startRegistryServer, type RunningRegistry } from "../../registry/server/index.js";
import {
  MiB,
  expectAirlockError,
  runTool,
  sha256File,
  sha256Files,
  useFixtures,
  type Fixtures,
} from "../helpers/fixtures.js";

const IMAGES = ["hubble/console:4.5.0", "hubble/agent:4.5.0", "hubble/msgbroker:4.5.0"];
/** How long the proxy holds each blob answer: long enough that blobs asked for together overlap. */
const HOLD_MS = 40;

interface CountingProxy {
  host: string;
  stats: { inFlight: number; most: number; blobGets: number; stalls: number };
  /** Flips a byte in the body of this blob from now on; undefined stops. */
  damage(digest: string | undefined): void;
  /** Stalls the answers for this blob after their headers, until the client goes away; undefined stops. */
  stall(digest: string | undefined): void;
  reset(): void;
  close(): Promise<void>;
}

async function startCountingProxy(target: URL): Promise<CountingProxy> {
  const stats = { inFlight: 0, most: 0, blobGets: 0, stalls: 0 };
  let damaged: string | undefined;
  let stalled: string | undefined;
  const server: Server = createServer((request, response) => {
    const isBlob = request.method === "GET" && /\/blobs\/sha256:[0-9a-f]{64}$/.test(request.url ?? "");
    let open = isBlob;
    if (isBlob) {
      stats.blobGets++;
      stats.inFlight++;
      stats.most = Math.max(stats.most, stats.inFlight);
    }
    const done = (): void => {
      if (open) stats.inFlight--;
      open = false;
    };
    response.on("finish", done);
    response.on("close", done);
    const upstream = httpRequest(
      {
        host: target.hostname,
        port: target.port,
        method: request.method,
        path: request.url,
        headers: request.headers,
      },
      (answer) => {
        const flip = damaged !== undefined && request.url!.endsWith(damaged);
        const stall = stalled !== undefined && request.url!.endsWith(stalled);
        if (stall) stats.stalls++;
        response.on("close", () => answer.destroy());
        let first = true;
        setTimeout(
          () => {
            response.writeHead(answer.statusCode!, answer.headers);
            // A stalled answer gets its headers, then none of its body, and never ends.
            if (stall) {
              response.flushHeaders();
              answer.resume();
              return;
            }
            answer.on("data", (chunk: Buffer) => {
              if (flip && first) chunk[0] = chunk[0]! ^ 0xff;
              first = false;
              response.write(chunk);
            });
            answer.on("end", () => response.end());
          },
          isBlob ? HOLD_MS : 0,
        );
      },
    );
    upstream.on("error", () => response.destroy());
    request.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    host: `127.0.0.1:${port}`,
    stats,
    damage: (digest) => {
      damaged = digest;
    },
    stall: (digest) => {
      stalled = digest;
    },
    reset: () => {
      stats.most = stats.inFlight;
      stats.blobGets = 0;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

let fx: Fixtures;
let sourceStore: Store;
let registry: RunningRegistry;
let proxy: CountingProxy;

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * MiB });
  sourceStore = await Store.open(await fx.dir("source-data"));
  registry = await startRegistryServer(sourceStore, { listen: "127.0.0.1:0", allowPush: true });
  const host = registry.url.replace(/^http:\/\//, "");
  for (const ref of IMAGES) {
    const copied = await runTool("skopeo", [
      "copy",
      "--all",
      "--preserve-digests",
      "--dest-tls-verify=false",
      `oci:${fx.summary.layout}:${ref}`,
      `docker://${host}/${ref}`,
    ]);
    expect(copied.code, copied.stderr).toBe(0);
  }
  proxy = await startCountingProxy(new URL(registry.url));
});

afterAll(async () => {
  await proxy?.close();
  await registry?.close();
  sourceStore?.close();
  await fx?.cleanup();
});

async function writeSpec(images: { ref: string; source: string }[], registries = {}): Promise<string> {
  const file = join(await fx.dir("spec"), "bundle.yaml");
  await writeFile(
    file,
    JSON.stringify({ name: "mgmt", version: "4.5.0", created: "2026-11-01T00:00:00Z", images, registries }),
  );
  return file;
}

const registrySpec = (): Promise<string> =>
  writeSpec(
    IMAGES.map((ref) => ({ ref, source: `docker://${proxy.host}/${ref}` })),
    { [proxy.host]: { insecureHttp: true } },
  );

/** Builds into a fresh directory; returns the output and everything the directory holds after. */
async function build(
  spec: string,
  concurrency?: number,
  splitSize?: number,
): Promise<{ output: string; dir: string; left: string[]; parts: PartInfo[] | undefined }> {
  const dir = await fx.dir("out");
  const output = join(dir, "mgmt.airlock.tar");
  const { parts } = await buildBundle({ specFile: spec, output, concurrency, splitSize });
  return { output, dir, left: await readdir(dir), parts };
}

describe("bundle build pulls registry blobs concurrently", () => {
  it("concurrency 1 and 4 give the same bytes as the OCI layout build; never more than 4 blobs in flight", async () => {
    const spec = await registrySpec();
    proxy.reset();
    const serial = await build(spec, 1);
    expect(proxy.stats.most).toBe(1);
    const serialGets = proxy.stats.blobGets;

    proxy.reset();
    const concurrent = await build(spec, 4);
    // Only the first blob streams alone: the next three start with it, as slots free up after.
    expect(proxy.stats.most).toBe(4);
    expect(proxy.stats.blobGets).toBe(serialGets);
    const { metadata } = await readBundleHead([concurrent.output]);
    expect(metadata.totals.blobs).toBeGreaterThan(8);

    proxy.reset();
    const wide = await build(spec, 2);
    expect(proxy.stats.most).toBe(2);

    const fromLayout = await build(
      await writeSpec(IMAGES.map((ref) => ({ ref, source: `oci:${fx.summary.layout}:${ref}` }))),
    );
    const expected = await sha256File(fromLayout.output);
    for (const built of [serial, concurrent, wide]) {
      expect(await sha256File(built.output)).toBe(expected);
      expect(built.left).toEqual(["mgmt.airlock.tar"]);
    }

    // Split into parts that blobs straddle: the same parts, with the same hashes, as one at a time.
    const splitSize = 700 * 1024;
    const serialParts = await build(spec, 1, splitSize);
    const concurrentParts = await build(spec, 4, splitSize);
    expect(concurrentParts.parts!.length).toBeGreaterThan(2);
    expect(concurrentParts.parts).toEqual(serialParts.parts);
    for (const part of concurrentParts.parts!) {
      expect(await sha256File(join(concurrentParts.dir, part.name))).toBe(part.sha256);
    }
    // Joined in the order parts.json names them, they are the unsplit bundle.
    const input = await resolveBundleInput([join(concurrentParts.dir, `mgmt.airlock.tar${PARTS_SUFFIX}`)]);
    expect(input.parts).toHaveLength(concurrentParts.parts!.length);
    expect(await sha256Files(input.parts.map((part) => part.path))).toBe(expected);
  });

  it("a build stopped while several blobs are pulled fails with the stop, leaving no output", async () => {
    const dir = await fx.dir("stopped");
    const controller = new AbortController();
    const building = buildBundle({
      specFile: await registrySpec(),
      output: join(dir, "mgmt.airlock.tar"),
      concurrency: 4,
      signal: controller.signal,
    });
    building.catch(() => undefined);
    // Stopped once the write has begun: several blobs in flight, the output being written.
    const deadline = Date.now() + 20_000;
    while (proxy.stats.inFlight < 3 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(proxy.stats.inFlight).toBeGreaterThanOrEqual(3);
    expect(await readdir(dir)).toEqual(["mgmt.airlock.tar.partial"]);
    controller.abort(new Error("stopped by the test"));
    await expect(building).rejects.toThrow("stopped by the test");
    expect(await readdir(dir)).toEqual([]);
  });

  it("a blob damaged on the way fails the build with REGISTRY_DIGEST_MISMATCH, cancelling the other pulls, leaving no output", async () => {
    const agent = fx.summary.images[IMAGES[1]!]!.digest.slice("sha256:".length);
    const manifest = JSON.parse(
      (await readFile(join(fx.summary.layout, "blobs", "sha256", agent))).toString("utf8"),
    ) as ImageManifest;
    // Blobs go into the archive by digest: the stalled one's pull starts before the damaged one's.
    const [stalled, layer] = manifest.layers.map((descriptor) => descriptor.digest).sort() as [
      string,
      string,
    ];
    proxy.damage(layer);
    // The stalled pull waits on its body forever: only the failure's cancelling it lets the build end.
    proxy.stall(stalled);
    try {
      const dir = await fx.dir("damaged");
      const error = await expectAirlockError(
        buildBundle({
          specFile: await registrySpec(),
          output: join(dir, "mgmt.airlock.tar"),
          concurrency: 4,
        }),
        "REGISTRY_DIGEST_MISMATCH",
      );
      expect(error.message).toContain(layer);
      expect(await readdir(dir)).toEqual([]);
      expect(proxy.stats.stalls).toBe(1);
      // The client closed every blob request it had open; the proxy sees it close soon after.
      const deadline = Date.now() + 5_000;
      while (proxy.stats.inFlight > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      expect(proxy.stats.inFlight).toBe(0);
    } finally {
      proxy.damage(undefined);
      proxy.stall(undefined);
    }
  });
});
