/**
 * `airlock registry mirror` resumes half-sent blobs across a SIGKILL (issue 10, point 6). A bundle
 * holding one 64 MiB layer is mirrored by the built CLI through a counting, throttled proxy; the
 * mirror is killed once about half the layer has gone through, and the re-run's bytes on the wire
 * are measured by the same proxy. Against Airlock's own registry, which keeps what a cut PATCH
 * delivered and reports it, the re-run sends only the rest. Debian's docker-registry (distribution)
 * refuses a session resumed at another offset than its last answered request, so there the re-run
 * falls back to a fresh upload and still ends complete.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, open, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, type InFlightUpload, type MirrorResult } from "../../bundle/index.js";
import { RegistryClient } from "../../registry/client/index.js";
import { MediaType, digestOf, type Descriptor, type Digest } from "../../registry/oci/index.js";
import { startRegistryServer } from "../../registry/server/index.js";
import { Store } from "../../registry/store/index.js";
import { startDockerRegistry } from "../helpers/daemons.js";
import { startFaultProxy, type FaultProxy } from "../helpers/fault-proxy.js";
import {
  CLI,
  MiB,
  runCli,
  runTool,
  sha256File,
  sha256Hex,
  useFixtures,
  waitFor,
  type Fixtures,
} from "../helpers/fixtures.js";

const LAYER_BYTES = 64 * MiB;
const REF = "hubble/big:1.0.0";

let fx: Fixtures;
let bundle: string;
let layer: Descriptor;
let imageDigest: Digest;

/** An OCI layout of one image whose one layer is 64 MiB of random bytes, and a bundle of it. */
async function bigImageBundle(): Promise<void> {
  const dir = await fx.dir("layout");
  const blobs = join(dir, "blobs", "sha256");
  await mkdir(blobs, { recursive: true });
  const temp = join(dir, "layer.partial");
  const hash = createHash("sha256");
  const handle = await open(temp, "w");
  try {
    for (let written = 0; written < LAYER_BYTES; written += MiB) {
      const chunk = randomBytes(MiB);
      hash.update(chunk);
      await handle.write(chunk);
    }
  } finally {
    await handle.close();
  }
  const hex = hash.digest("hex");
  await rename(temp, join(blobs, hex));
  layer = { mediaType: MediaType.OciLayerGzip, digest: `sha256:${hex}`, size: LAYER_BYTES };
  const putJson = async (value: unknown): Promise<{ digest: Digest; size: number }> => {
    const bytes = Buffer.from(JSON.stringify(value));
    await writeFile(join(blobs, sha256Hex(bytes)), bytes);
    return { digest: digestOf(bytes), size: bytes.byteLength };
  };
  const config = {
    mediaType: MediaType.OciConfig,
    ...(await putJson({
      architecture: "amd64",
      os: "linux",
      rootfs: { type: "layers", diff_ids: [layer.digest] },
    })),
  };
  const manifest = await putJson({
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config,
    layers: [layer],
  });
  imageDigest = manifest.digest;
  await writeFile(join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  await writeFile(
    join(dir, "index.json"),
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciIndex,
      manifests: [
        {
          mediaType: MediaType.OciManifest,
          ...manifest,
          annotations: { "org.opencontainers.image.ref.name": REF },
        },
      ],
    }),
  );
  const spec = join(dir, "bundle.yaml");
  await writeFile(
    spec,
    ["name: big", "version: 1.0.0", "images:", `  - ref: ${REF}`, `    source: oci:${dir}:${REF}`, ""].join(
      "\n",
    ),
  );
  bundle = join(await fx.dir("bundle"), "big.airlock.tar");
  await buildBundle({ specFile: spec, output: bundle });
}

beforeAll(async () => {
  fx = await useFixtures({ size: 4 * MiB });
  await bigImageBundle();
});

afterAll(async () => {
  await fx?.cleanup();
});

const mirrorArgs = (proxy: FaultProxy, out: string): string[] => [
  "--no-progress",
  "registry",
  "mirror",
  "--to",
  `${proxy.host}/resume`,
  "--bundle",
  bundle,
  "--insecure-http",
  "--output-dir",
  out,
];

/**
 * Runs the mirror through a proxy throttled to 16 MiB/s and SIGKILLs it once half the layer went
 * through; then runs it again, unthrottled, and returns the bytes each run put on the wire.
 */
async function killAtHalfThenRerun(
  proxy: FaultProxy,
  out: string,
): Promise<{ first: number; rerun: number; state: InFlightUpload[]; result: MirrorResult }> {
  const child = spawn(process.execPath, [CLI, ...mirrorArgs(proxy, out)], {
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  let exit: NodeJS.Signals | number | null | undefined;
  const exited = new Promise<void>((resolve) =>
    child.on("exit", (code, signal) => {
      exit = signal ?? code;
      resolve();
    }),
  );
  await waitFor(
    () => exit !== undefined || proxy.stats.bytesUp >= LAYER_BYTES / 2,
    120_000,
    "half the layer through the proxy",
  );
  child.kill("SIGKILL");
  await exited;
  expect(exit, `the mirror ended before it was killed: ${stderr}`).toBe("SIGKILL");
  // What the killed mirror had written into its socket still reaches the proxy, then the target.
  await waitFor(() => proxy.stats.open === 0, 30_000, "the killed mirror's connections to drain");
  const first = proxy.stats.bytesUp;
  const stateFile = join(out, "mirror-state.json");
  const { uploads: state } = JSON.parse(await readFile(stateFile, "utf8")) as { uploads: InFlightUpload[] };

  proxy.throttle(undefined);
  const rerun = await runCli(["--json", ...mirrorArgs(proxy, out)]);
  expect(rerun.code, rerun.stderr).toBe(0);
  // A run that completes leaves no state behind.
  expect(existsSync(stateFile)).toBe(false);
  return {
    first,
    rerun: proxy.stats.bytesUp - first,
    state,
    result: JSON.parse(rerun.stdout) as MirrorResult,
  };
}

/** The state file of the killed run names the layer's upload session, at the proxy, part-way. */
function expectLayerSession(state: InFlightUpload[], proxy: FaultProxy, first: number): void {
  const entry = state.find((upload) => upload.digest === layer.digest);
  expect(entry, JSON.stringify(state)).toBeDefined();
  expect(entry!.repository).toBe("resume/hubble/big");
  expect(entry!.location.startsWith(`http://${proxy.host}/v2/resume/hubble/big/blobs/uploads/`)).toBe(true);
  // Checkpoints every few MiB: past the first ones, short of the end (bytes handed to the socket,
  // some of which were still in buffers when the kill came).
  expect(entry!.offset).toBeGreaterThanOrEqual(first / 2);
  expect(entry!.offset).toBeLessThan(LAYER_BYTES);
}

describe("a mirror killed halfway through a 64 MiB blob", () => {
  it("into Airlock's registry: the re-run resumes the upload and sends about half; the blob arrives byte-identical", async () => {
    const targetStore = await Store.open(await fx.dir("airlock-target"));
    const server = await startRegistryServer(targetStore, { listen: "127.0.0.1:0", allowPush: true });
    const proxy = await startFaultProxy({
      target: server.url.replace("http://", ""),
      seed: 1,
      resetRate: 0,
      unavailableRate: 0,
      bytesPerSecond: 16 * MiB,
    });
    try {
      const { first, rerun, state, result } = await killAtHalfThenRerun(proxy, await fx.dir("out-airlock"));
      expectLayerSession(state, proxy, first);
      // What the killed run delivered stays; the re-run sends the rest, about half.
      expect(rerun).toBeLessThan(0.6 * LAYER_BYTES);
      expect(first + rerun).toBeGreaterThanOrEqual(LAYER_BYTES);
      expect(result.failed).toBe(0);
      expect(result.bytes).toBeLessThan(0.6 * LAYER_BYTES);
      expect(result.images[0]!.blobs.uploaded).toBe(1);

      expect(targetStore.resolveTag("resume/hubble/big", "1.0.0")).toBe(imageDigest);
      expect(`sha256:${await sha256File(targetStore.blobs.path(layer.digest))}`).toBe(layer.digest);
      expect(await targetStore.fsck()).toMatchObject({ ok: true, corrupt: [], missing: [] });
    } finally {
      await proxy.close();
      await server.close();
      targetStore.close();
    }
  });

  it("into docker-registry, which drops a session cut mid-request: the re-run starts that upload afresh and ends complete", async () => {
    const target = await startDockerRegistry(await fx.dir("docker-target"));
    const proxy = await startFaultProxy({
      target: target.host,
      seed: 2,
      resetRate: 0,
      unavailableRate: 0,
      bytesPerSecond: 16 * MiB,
    });
    try {
      const { first, rerun, state, result } = await killAtHalfThenRerun(proxy, await fx.dir("out-docker"));
      expectLayerSession(state, proxy, first);
      expect(rerun).toBeGreaterThanOrEqual(LAYER_BYTES);
      expect(result.failed).toBe(0);
      const inspected = await runTool("skopeo", [
        "inspect",
        "--raw",
        "--tls-verify=false",
        `docker://${target.host}/resume/${REF}`,
      ]);
      expect(inspected.code, inspected.stderr).toBe(0);
      expect(`sha256:${sha256Hex(inspected.stdout)}`).toBe(imageDigest);
      // Pulled back whole: the client checks the digest as the bytes pass.
      const client = new RegistryClient({ host: target.host, insecureHttp: true });
      try {
        let pulled = 0;
        for await (const chunk of client.getBlob("resume/hubble/big", layer)) pulled += chunk.byteLength;
        expect(pulled).toBe(LAYER_BYTES);
      } finally {
        await client.close();
      }
    } finally {
      await proxy.close();
      await target.daemon.stop();
    }
  });
});
