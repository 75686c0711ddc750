/**
 * `airlock registry mirror` (issue 5) against real peers started here on 127.0.0.1: Debian's
 * docker-registry as the site registry over TLS with htpasswd auth, and Airlock's own server;
 * digests compared with skopeo.
 */
import { spawn } from "node:child_process";
import { copyFile, readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildBundle,
  bundleSource,
  importBundle,
  indexTarFile,
  mirror,
  storeSource,
  type BundleMetadata,
  type MirrorResult,
} from "../../bundle/index.js";
import { RegistryClient } from "../../registry/client/index.js";
import { EMPTY_JSON, MediaType, digestOf, parseManifest } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import {
  Authenticator,
  loadHtpasswd,
  startRegistryServer,
  type RunningRegistry,
} from "../../registry/server/index.js";
import { startDockerRegistry, type DockerRegistry } from "../helpers/daemons.js";
import { startFaultProxy, startPickyProxy } from "../helpers/fault-proxy.js";
import {
  CLI,
  MiB,
  flipByte,
  readTarEntry,
  runCli,
  waitFor,
  runTool,
  sampleBundle,
  selfSignedCertificate,
  sha256Hex,
  useFixtures,
  type Fixtures,
} from "../helpers/fixtures.js";

let fx: Fixtures;
let bundle: string;
let metadata: BundleMetadata;
let site: DockerRegistry;
let ca: string;
let trustDir: string;
let htpasswd: string;
const CREDS = { username: "mirror", password: "s3cret-pass" };

beforeAll(async () => {
  fx = await useFixtures({ size: 12 * MiB });
  ({ bundle, metadata } = await sampleBundle(fx));
  const certs = await selfSignedCertificate(await fx.dir("site-certs"));
  ca = certs.certFile;
  trustDir = certs.trustDir;
  htpasswd = join(await fx.dir("site-auth"), "htpasswd");
  const made = await runTool("htpasswd", ["-Bbc", htpasswd, CREDS.username, CREDS.password]);
  expect(made.code, made.stderr).toBe(0);
  site = await startDockerRegistry(await fx.dir("site"), { tls: certs, htpasswd });
});

afterAll(async () => {
  await site?.daemon.stop();
  await fx?.cleanup();
});

const siteClient = async (): Promise<RegistryClient> =>
  new RegistryClient({ host: site.host, ca: await readFile(ca), credentials: CREDS });

async function skopeoDigest(host: string, ref: string, extra: string[]): Promise<string> {
  const result = await runTool("skopeo", ["inspect", "--raw", ...extra, `docker://${host}/${ref}`]);
  expect(result.code, result.stderr).toBe(0);
  return `sha256:${sha256Hex(result.stdout)}`;
}

describe("mirror a bundle file into docker-registry (TLS, htpasswd)", () => {
  it("copies every image under the prefix with identical digests; a re-run sends nothing", async () => {
    const client = await siteClient();
    try {
      const source = await bundleSource([bundle]);
      const planned = await mirror({ source, client, prefix: "palette", dryRun: true });
      expect(planned.images.every((image) => image.status === "missing")).toBe(true);
      expect(planned.bytes).toBeGreaterThan(0);

      const first = await mirror({ source, client, prefix: "palette" });
      expect(first.failed).toBe(0);
      expect(first.images.map((image) => image.status)).toEqual(metadata.images.map(() => "copied"));
      expect(first.bytes).toBe(planned.bytes);
      const creds = ["--cert-dir", trustDir, "--creds", `${CREDS.username}:${CREDS.password}`];
      for (const image of metadata.images) {
        expect(await skopeoDigest(site.host, `palette/${image.ref}`, creds), image.ref).toBe(image.digest);
      }

      const again = await mirror({ source, client, prefix: "palette" });
      expect(again.images.map((image) => image.status)).toEqual(metadata.images.map(() => "present"));
      expect(again.bytes).toBe(0);
    } finally {
      await client.close();
    }
  });

  it("a layer two images share goes up once and is mounted into the other repository", async () => {
    const spec = join(await fx.dir("shared-spec"), "bundle.yaml");
    await writeFile(
      spec,
      [
        "name: shared",
        "version: 1.0.0",
        "images:",
        ...["hubble/console:4.5.0", "hubble/msgbroker:4.4.0"].flatMap((ref) => [
          `  - ref: ${ref}`,
          `    source: oci:${fx.summary.layout}:${ref}`,
        ]),
        "",
      ].join("\n"),
    );
    const shared = join(await fx.dir("shared-bundle"), "shared.airlock.tar");
    await buildBundle({ specFile: spec, output: shared });
    const client = await siteClient();
    try {
      const result = await mirror({ source: await bundleSource([shared]), client, prefix: "shared" });
      expect(result.failed).toBe(0);
      const blobs = result.images.map((image) => image.blobs);
      expect(blobs.reduce((sum, b) => sum + b.mounted, 0)).toBe(1);
      expect(blobs.reduce((sum, b) => sum + b.present, 0)).toBe(0);
    } finally {
      await client.close();
    }
  });

  it("reads a split bundle in place across its parts, blobs that straddle two parts included", async () => {
    const split = join(await fx.dir("split"), "mgmt.airlock.tar");
    await buildBundle({ specFile: fx.spec, output: split, splitSize: 3 * MiB });
    const client = await siteClient();
    try {
      const result = await mirror({
        source: await bundleSource([`${split}.parts.json`]),
        client,
        prefix: "split",
      });
      expect(result.failed).toBe(0);
      expect(result.images.map((image) => image.digest)).toEqual(
        metadata.images.map((image) => image.digest),
      );
      const creds = ["--cert-dir", trustDir, "--creds", `${CREDS.username}:${CREDS.password}`];
      for (const image of metadata.images) {
        expect(await skopeoDigest(site.host, `split/${image.ref}`, creds), image.ref).toBe(image.digest);
      }
    } finally {
      await client.close();
    }
  });

  it("pulls back byte-identical: skopeo copies a mirrored multi-arch image with --all", async () => {
    const ref = metadata.images.find((image) => image.platforms.length > 1)!.ref;
    const out = await fx.dir("pulled");
    const copied = await runTool("skopeo", [
      "copy",
      "--all",
      "--preserve-digests",
      "--src-cert-dir",
      trustDir,
      "--src-creds",
      `${CREDS.username}:${CREDS.password}`,
      `docker://${site.host}/palette/${ref}`,
      `oci:${out}:${ref}`,
    ]);
    expect(copied.code, copied.stderr).toBe(0);
    const index = JSON.parse(await readFile(join(out, "index.json"), "utf8")) as {
      manifests: { digest: string }[];
    };
    expect(index.manifests[0]!.digest).toBe(metadata.images.find((image) => image.ref === ref)!.digest);
  });
});

describe("mirror the store into Airlock's own registry", () => {
  let target: RunningRegistry;
  let targetStore: Store;

  beforeAll(async () => {
    targetStore = await Store.open(await fx.dir("target-data"));
    // Bearer tokens: the client answers the challenge at /token with the push account.
    const auth = new Authenticator({
      mode: "token",
      users: await loadHtpasswd(htpasswd),
      pushUsers: new Set([CREDS.username]),
      anonymousPull: false,
    });
    target = await startRegistryServer(targetStore, { listen: "127.0.0.1:0", allowPush: true, auth });
  });

  afterAll(async () => {
    await target?.close();
    targetStore?.close();
  });

  it("copies every tag of the store without a prefix through the bearer-token flow, digests unchanged", async () => {
    const store = await Store.open(await fx.dir("source-data"));
    const host = target.url.replace("http://", "");
    const anonymous = new RegistryClient({ host, insecureHttp: true });
    await expect(anonymous.ping()).rejects.toMatchObject({ code: "REGISTRY_AUTH_FAILED" });
    await anonymous.close();
    const client = new RegistryClient({ host, insecureHttp: true, credentials: CREDS });
    try {
      await importBundle(store, [bundle]);
      // A signature that refers to the agent image travels with it.
      const subject = metadata.images.find((image) => image.ref === "hubble/agent:4.5.0")!;
      const empty = {
        mediaType: MediaType.OciEmpty,
        digest: digestOf(EMPTY_JSON),
        size: EMPTY_JSON.byteLength,
      };
      await store.blobs.put([EMPTY_JSON], { digest: empty.digest });
      const signature = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.OciManifest,
          artifactType: "application/vnd.example.signature",
          config: empty,
          layers: [empty],
          subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
        }),
      );
      await store.blobs.put([signature], { digest: digestOf(signature) });
      store.putManifest(
        {
          repository: "hubble/agent",
          digest: digestOf(signature),
          mediaType: MediaType.OciManifest,
          size: signature.byteLength,
          subject: subject.digest,
          artifactType: "application/vnd.example.signature",
        },
        parseManifest(signature),
      );

      const result = await mirror({ source: storeSource(store), client, prefix: "" });
      expect(result.failed).toBe(0);
      for (const image of metadata.images) {
        expect(targetStore.resolveTag(...(image.ref.split(":") as [string, string]))).toBe(image.digest);
      }
      expect((await client.referrers("hubble/agent", subject.digest)).map((r) => r.digest)).toEqual([
        digestOf(signature),
      ]);
      expect((await targetStore.fsck()).ok).toBe(true);
    } finally {
      store.close();
      await client.close();
    }
  });
});

describe("airlock registry mirror (the CLI)", () => {
  it("writes mirror-map.json, registries.yaml and hosts.toml; a dry run against a full target finds nothing to send", async () => {
    const out = await fx.dir("mirror-cli");
    const mirrorToSite = (...flags: string[]) =>
      runCli([
        "--json",
        "registry",
        "mirror",
        "--to",
        `${site.host}/cli`,
        "--bundle",
        bundle,
        "--creds",
        `${CREDS.username}:${CREDS.password}`,
        "--ca-file",
        ca,
        ...flags,
      ]);
    const result = await mirrorToSite("--output-dir", out);
    expect(result.code, result.stderr).toBe(0);
    const map = JSON.parse(await readFile(join(out, "mirror-map.json"), "utf8")) as Record<string, string>;
    for (const image of metadata.images) {
      expect(map[image.ref]).toBe(`${site.host}/cli/${image.ref}@${image.digest}`);
    }
    const registries = await readFile(join(out, "registries.yaml"), "utf8");
    expect(registries).toContain(`"https://${site.host}"`);
    expect(registries).toContain('"^(.*)$": "cli/$1"');
    const hosts = await readFile(join(out, "certs.d", "docker.io", "hosts.toml"), "utf8");
    expect(hosts).toContain(`[host."https://${site.host}/v2/cli"]`);
    expect(hosts).toContain("override_path = true");

    const dry = await mirrorToSite("--dry-run");
    expect(dry.code, dry.stderr).toBe(0);
    const plan = JSON.parse(dry.stdout.toString()) as { bytes: number; images: { status: string }[] };
    expect(plan.bytes).toBe(0);
    expect(plan.images.every((image) => image.status === "present")).toBe(true);
  });
});

describe("through faults", () => {
  it.each(["docker-registry", "airlock"])(
    "a proxy that resets connections and answers 503 at random (seeded), in front of %s: the mirror still ends complete and correct",
    async (peer) => {
      let targetHost: string;
      let stop: () => Promise<void>;
      if (peer === "airlock") {
        const store = await Store.open(await fx.dir("faulty-airlock"));
        const server = await startRegistryServer(store, { listen: "127.0.0.1:0", allowPush: true });
        targetHost = server.url.replace("http://", "");
        stop = async () => {
          await server.close();
          store.close();
        };
      } else {
        const target = await startDockerRegistry(await fx.dir("faulty-target"));
        targetHost = target.host;
        stop = () => target.daemon.stop();
      }
      const proxy = await startFaultProxy({
        target: targetHost,
        seed: 7,
        resetRate: 0.25,
        unavailableRate: 0.15,
        resetWithinBytes: 2 * MiB,
      });
      const client = new RegistryClient({
        host: proxy.host,
        insecureHttp: true,
        retries: 20,
        retryBaseMs: 5,
        // Small enough that the larger layers take the resumable PATCH path.
        monolithicMaxBytes: 256 * 1024,
        connections: 4,
      });
      try {
        const result = await mirror({ source: await bundleSource([bundle]), client, prefix: "faults" });
        expect(result.images.filter((image) => image.status === "failed")).toEqual([]);
        expect(proxy.stats.resets).toBeGreaterThan(0);
        expect(proxy.stats.unavailable).toBeGreaterThan(0);
        for (const image of metadata.images) {
          expect(
            await skopeoDigest(targetHost, `faults/${image.ref}`, ["--tls-verify=false"]),
            image.ref,
          ).toBe(image.digest);
        }
        const copied = await runTool("skopeo", [
          "copy",
          "--all",
          "--src-tls-verify=false",
          `docker://${targetHost}/faults/${metadata.images[0]!.ref}`,
          `oci:${await fx.dir(`faults-pulled-${peer}`)}:x`,
        ]);
        expect(copied.code, copied.stderr).toBe(0);
      } finally {
        await client.close();
        await proxy.close();
        await stop();
      }
    },
  );
});

/** Blob files docker-registry has stored so far: what a mirror has sent. */
async function storedBlobs(storage: string): Promise<number> {
  const root = join(storage, "docker", "registry", "v2", "blobs", "sha256");
  const prefixes = await readdir(root).catch(() => [] as string[]);
  let count = 0;
  for (const prefix of prefixes) count += (await readdir(join(root, prefix)).catch(() => [])).length;
  return count;
}

describe("interrupted mirrors", () => {
  it("a mirror killed with SIGKILL midway completes on re-run, without sending again what arrived", async () => {
    const target = await startDockerRegistry(await fx.dir("killed-target"));
    const proxy = await startFaultProxy({
      target: target.host,
      seed: 1,
      resetRate: 0,
      unavailableRate: 0,
      bytesPerSecond: 4 * MiB,
    });
    try {
      const child = spawn(
        process.execPath,
        [CLI, "registry", "mirror", "--to", `${proxy.host}/killed`, "--bundle", bundle, "--insecure-http"],
        { stdio: "ignore" },
      );
      const exited = new Promise((resolve) => child.on("exit", resolve));
      await waitFor(
        async () => (await storedBlobs(target.storage)) >= 2,
        60_000,
        "the first blobs at the target",
      );
      child.kill("SIGKILL");
      await exited;
      const arrived = await storedBlobs(target.storage);

      const rerun = await runCli([
        "--json",
        "registry",
        "mirror",
        "--to",
        `${target.host}/killed`,
        "--bundle",
        bundle,
        "--insecure-http",
        "--output-dir",
        await fx.dir("killed-config"),
      ]);
      expect(rerun.code, rerun.stderr).toBe(0);
      const result = JSON.parse(rerun.stdout.toString()) as MirrorResult;
      // What arrived is not sent again: the re-run uploads at most what was missing (plus the one
      // blob in flight at the kill). Counting it by `blobs.present` undercounted: an image whose
      // manifest had arrived too is skipped whole, its blobs reported as none.
      const uploaded = result.images.reduce((sum, image) => sum + image.blobs.uploaded, 0);
      const stored = await storedBlobs(target.storage);
      expect(arrived).toBeGreaterThan(0);
      expect(uploaded).toBeLessThanOrEqual(stored - arrived + 1);
      for (const image of metadata.images) {
        expect(await skopeoDigest(target.host, `killed/${image.ref}`, ["--tls-verify=false"])).toBe(
          image.digest,
        );
      }
    } finally {
      await proxy.close();
      await target.daemon.stop();
    }
  });

  it("a target that restarts midway: the same run retries and ends complete", async () => {
    const dir = await fx.dir("restarting-target");
    let target = await startDockerRegistry(dir);
    const port = Number(target.host.split(":")[1]);
    const proxy = await startFaultProxy({
      target: target.host,
      seed: 2,
      resetRate: 0,
      unavailableRate: 0,
      bytesPerSecond: 4 * MiB,
    });
    const client = new RegistryClient({ host: proxy.host, insecureHttp: true, retryBaseMs: 100 });
    try {
      const running = mirror({ source: await bundleSource([bundle]), client, prefix: "restart" });
      await waitFor(
        async () => (await storedBlobs(target.storage)) >= 1,
        60_000,
        "the first blob at the target",
      );
      await target.daemon.stop();
      target = await startDockerRegistry(dir, { port });
      const result = await running;
      expect(result.images.filter((image) => image.status === "failed")).toEqual([]);
      for (const image of metadata.images) {
        expect(await skopeoDigest(target.host, `restart/${image.ref}`, ["--tls-verify=false"])).toBe(
          image.digest,
        );
      }
    } finally {
      await client.close();
      await proxy.close();
      await target.daemon.stop();
    }
  });
});

describe("bad input", () => {
  const mirrorCli = (to: string, ...flags: string[]) =>
    runCli(["registry", "mirror", "--to", to, "--bundle", bundle, ...flags]);

  it.each([
    [
      "an unknown host",
      () => mirrorCli("no-such-registry.invalid:5000/x"),
      "REGISTRY_UNREACHABLE",
      /host name/,
    ],
    [
      "wrong credentials",
      () => mirrorCli(`${site.host}/x`, "--ca-file", ca, "--creds", "mirror:wrong"),
      "REGISTRY_AUTH_FAILED",
      /credentials/,
    ],
    [
      "an unknown CA",
      () => mirrorCli(`${site.host}/x`, "--creds", "mirror:s3cret-pass"),
      "REGISTRY_TLS_FAILED",
      /--ca-file/,
    ],
    [
      "a host name the certificate does not carry",
      () =>
        mirrorCli(`localhost:${site.host.split(":")[1]}/x`, "--ca-file", ca, "--creds", "mirror:s3cret-pass"),
      "REGISTRY_TLS_FAILED",
      /does not name this host/,
    ],
    ["an upper-case prefix", () => mirrorCli(`${site.host}/Palette`), "USAGE", /HOST\[:PORT\]\[\/PREFIX\]/],
    [
      "a bundle signed by another key",
      async () => {
        const other = await fx.dir("other-key");
        await runCli([
          "keys",
          "generate",
          "--private-key",
          join(other, "k.pem"),
          "--public-key",
          join(other, "p.pem"),
        ]);
        return mirrorCli(
          `${site.host}/x`,
          "--ca-file",
          ca,
          "--creds",
          "mirror:s3cret-pass",
          "--key",
          join(other, "p.pem"),
        );
      },
      "BUNDLE_",
      /key/,
    ],
  ])("%s: a typed error with a hint, exit 1 or 2", async (_what, run, code, hint) => {
    const result = await run();
    expect(result.code).not.toBe(0);
    expect(result.stderr).toContain(code);
    expect(result.stderr).toMatch(hint);
  });

  it("names the target cannot hold (Airlock's registry: over 255 characters): every image fails with NAME_INVALID's hint, exit 1", async () => {
    const store = await Store.open(await fx.dir("strict-target"));
    const server = await startRegistryServer(store, { listen: "127.0.0.1:0", allowPush: true });
    try {
      const result = await runCli([
        "registry",
        "mirror",
        "--to",
        `${server.url.replace("http://", "")}/${"a".repeat(125)}/${"b".repeat(125)}`,
        "--bundle",
        bundle,
        "--insecure-http",
        "--output-dir",
        await fx.dir("long-names"),
      ]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain("MIRROR_INCOMPLETE");
      const out = result.stdout.toString();
      expect(out.match(/FAILED REGISTRY_REFUSED: .*NAME_INVALID/g)).toHaveLength(metadata.images.length);
      expect(out).toContain("pick another --to prefix");
    } finally {
      await server.close();
      store.close();
    }
  });

  it("a target that refuses a media type: that image fails and is named, the others arrive", async () => {
    const target = await startDockerRegistry(await fx.dir("picky-target"));
    const picky = await startPickyProxy(target.host, "application/vnd.oci.image.index.v1+json");
    const client = new RegistryClient({ host: picky.host, insecureHttp: true });
    try {
      const result = await mirror({ source: await bundleSource([bundle]), client, prefix: "picky" });
      const multiArch = metadata.images
        .filter((image) => image.mediaType.includes("index"))
        .map((i) => i.ref);
      expect(multiArch.length).toBeGreaterThan(0);
      const failed = result.images.filter((image) => image.status === "failed");
      expect(failed.map((image) => image.source).sort()).toEqual(multiArch.sort());
      expect(failed[0]!.error).toMatchObject({ code: "REGISTRY_REFUSED" });
      expect(failed[0]!.error!.hint).toMatch(/media type/);
      expect(result.images.filter((image) => image.status === "copied")).toHaveLength(
        metadata.images.length - multiArch.length,
      );
    } finally {
      await client.close();
      await picky.close();
      await target.daemon.stop();
    }
  });

  it("a bundle with a damaged blob: that image fails with BUNDLE_ENTRY_CORRUPT and the blob never lands", async () => {
    const damaged = join(await fx.dir("damaged"), "damaged.airlock.tar");
    await copyFile(bundle, damaged);
    const image = metadata.images.find((i) => i.ref.startsWith("hubble/agent"))!;
    const layer = (
      JSON.parse((await readTarEntry(bundle, `blobs/sha256/${image.digest.slice(7)}`)).toString("utf8")) as {
        layers: { digest: string; size: number }[];
      }
    ).layers.at(-1)!;
    const entry = (await indexTarFile(bundle)).get(`blobs/sha256/${layer.digest.slice(7)}`)!;
    await flipByte(damaged, entry.dataOffset + Math.floor(entry.size / 2));
    const target = await startDockerRegistry(await fx.dir("damaged-target"));
    const client = new RegistryClient({ host: target.host, insecureHttp: true });
    try {
      const result = await mirror({ source: await bundleSource([damaged]), client, prefix: "damaged" });
      const failed = result.images.filter((i) => i.status === "failed");
      expect(failed.map((i) => i.source)).toEqual([image.ref]);
      expect(failed[0]!.error!.code).toBe("BUNDLE_ENTRY_CORRUPT");
      expect(
        await client.headBlob(`damaged/hubble/agent`, layer.digest as `sha256:${string}`),
      ).toBeUndefined();
    } finally {
      await client.close();
      await target.daemon.stop();
    }
  });
});
