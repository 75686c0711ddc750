/**
 * Airlock's registry against real peers (issue 4, point 5): containerd pulls and unpacks through a
 * hosts.toml naming the https:// server and its CA, and Debian's docker-registry holding the same
 * image serves the same digests and bytes.
 */
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { get as httpsRequest } from "node:https";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBundle, type BundleMetadata } from "../../bundle/index.js";
import { Store } from "../../registry/store/index.js";
import { startRegistryServer, type RunningRegistry } from "../../registry/server/index.js";
import {
  MiB,
  runTool,
  useFixtures,
  selfSignedCertificate,
  type Fixtures,
  sampleBundle,
} from "../helpers/fixtures.js";
import {
  startContainerd as startOwnContainerd,
  startDockerRegistry,
  type Daemon,
} from "../helpers/daemons.js";

let fx: Fixtures;
let store: Store;
let bundle: string;
let metadata: BundleMetadata;
let airlock: RunningRegistry;
let certFile: string;
const daemons: Pick<Daemon, "stop">[] = [];

/** GET over TLS trusting `ca`: fetch in Node 20 cannot be given a CA. */
function httpsGet(url: string, ca: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    httpsRequest(url, { ca }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (chunk: Buffer) => chunks.push(chunk));
      res.on("end", () =>
        res.statusCode === 200
          ? resolve(Buffer.concat(chunks))
          : reject(new Error(`${url}: ${res.statusCode}`)),
      );
      res.on("error", reject);
    }).on("error", reject);
  });
}

async function tool(command: string, args: string[]): Promise<Buffer> {
  const result = await runTool(command, args);
  expect(result.code, `${command} ${args.join(" ")}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

beforeAll(async () => {
  fx = await useFixtures({ size: 12 * MiB });
  ({ bundle, metadata } = await sampleBundle(fx));
  store = await Store.open(await fx.dir("data"));
  await importBundle(store, [bundle]);
  const certificate = await selfSignedCertificate(await fx.dir("certs"));
  certFile = certificate.certFile;
  airlock = await startRegistryServer(store, {
    listen: "127.0.0.1:0",
    tls: { certFile, keyFile: certificate.keyFile },
  });
});

afterAll(async () => {
  await Promise.all(daemons.map((daemon) => daemon.stop()));
  await airlock?.close();
  store?.close();
  await fx?.cleanup();
});

/** containerd as root with its root and state in `dir`, the CRI plugin off; returns its socket. */
async function startContainerd(dir: string): Promise<string> {
  const containerd = await startOwnContainerd(dir);
  daemons.push(containerd);
  return containerd.socket;
}

/** A hosts.d/<host>/hosts.toml sending pulls to Airlock over https, trusting `ca` when given. */
async function writeHostsToml(dir: string, host: string, ca: string | undefined): Promise<string> {
  const hostsDir = join(dir, "hosts.d");
  await mkdir(join(hostsDir, host), { recursive: true });
  const lines = [
    `server = "${airlock.url}"`,
    `[host."${airlock.url}"]`,
    '  capabilities = ["pull", "resolve"]',
  ];
  if (ca !== undefined) lines.push(`  ca = "${ca}"`);
  await writeFile(join(hostsDir, host, "hosts.toml"), lines.join("\n"));
  return hostsDir;
}

describe("containerd", () => {
  it("ctr pulls and unpacks every image from Airlock over TLS, trusting its CA through hosts.toml", async () => {
    const dir = await fx.dir("containerd");
    const socket = await startContainerd(dir);
    const host = airlock.url.replace("https://", "");
    const hostsDir = await writeHostsToml(dir, host, certFile);
    const ctr = (...args: string[]): Promise<Buffer> =>
      tool("ctr", ["-a", socket, "-n", "airlock-test", ...args]);
    for (const image of metadata.images.filter((i) => i.kind === "image")) {
      await ctr("images", "pull", "--hosts-dir", hostsDir, `${host}/${image.ref}`);
      const listing = (await ctr("images", "ls")).toString();
      expect(listing).toContain(`${host}/${image.ref}`);
      expect(listing).toContain(image.digest);
    }
    // Every blob of every pulled image is in containerd's content store (pull also unpacked them).
    const unpacked = (await ctr("images", "check")).toString();
    expect(unpacked.match(/complete/g)?.length).toBeGreaterThanOrEqual(3);
  });

  it("with a hosts.toml naming https:// but not the CA, containerd refuses the certificate", async () => {
    const dir = await fx.dir("containerd-untrusted");
    const socket = await startContainerd(dir);
    const host = airlock.url.replace("https://", "");
    const hostsDir = await writeHostsToml(dir, host, undefined);
    const result = await runTool("ctr", [
      "-a",
      socket,
      "-n",
      "airlock-test",
      "images",
      "pull",
      "--hosts-dir",
      hostsDir,
      `${host}/hubble/console:4.5.0`,
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/x509|certificate/i);
  });
});

describe("docker-registry (CNCF distribution) holding the same image", () => {
  it("serves the same manifest digests and the same blob bytes as Airlock", async () => {
    const peer = await startDockerRegistry(await fx.dir("distribution"));
    daemons.push(peer.daemon);
    const port = peer.host.split(":")[1]!;
    // The two-platform index: every child manifest and blob must match too.
    const ref = "hubble/console:4.5.0";
    await tool("skopeo", [
      "copy",
      "--all",
      "--preserve-digests",
      "--dest-tls-verify=false",
      `oci-archive:${bundle}:${ref}`,
      `docker://127.0.0.1:${port}/${ref}`,
    ]);

    const fromPeer = await tool("skopeo", [
      "inspect",
      "--raw",
      "--tls-verify=false",
      `docker://127.0.0.1:${port}/${ref}`,
    ]);
    const ca = await readFile(certFile);
    const fromAirlock = await httpsGet(`${airlock.url}/v2/hubble/console/manifests/4.5.0`, ca);
    expect(fromAirlock.equals(fromPeer)).toBe(true);

    const index = JSON.parse(fromPeer.toString()) as { manifests: { digest: string }[] };
    for (const child of index.manifests) {
      const path = `/v2/hubble/console/manifests/${child.digest}`;
      const peerManifest = Buffer.from(
        await (
          await fetch(`http://127.0.0.1:${port}${path}`, {
            headers: { Accept: "application/vnd.oci.image.manifest.v1+json" },
          })
        ).arrayBuffer(),
      );
      expect((await httpsGet(`${airlock.url}${path}`, ca)).equals(peerManifest), child.digest).toBe(true);
      const manifest = JSON.parse(peerManifest.toString()) as {
        config: { digest: string };
        layers: { digest: string }[];
      };
      for (const blob of [manifest.config, ...manifest.layers]) {
        const blobPath = `/v2/hubble/console/blobs/${blob.digest}`;
        const peer = Buffer.from(await (await fetch(`http://127.0.0.1:${port}${blobPath}`)).arrayBuffer());
        expect(peer.byteLength).toBeGreaterThan(0);
        expect((await httpsGet(`${airlock.url}${blobPath}`, ca)).equals(peer), blob.digest).toBe(true);
      }
    }
  });
});
