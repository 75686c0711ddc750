/**
 * Airlock's registry, pull side (issue 4, first slice): the distribution API over an imported store,
 * checked with real skopeo over plain HTTP and over TLS, and with raw requests for the spec's codes.
 */
import { spawn } from "node:child_process";
import { copyFile, readFile, writeFile } from "node:fs/promises";
import { request as httpsRequest } from "node:https";
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate } from "node:tls";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBundle, type BundleMetadata } from "../../bundle/index.js";
import { Store } from "../../registry/store/index.js";
import { startRegistryServer, type RunningRegistry } from "../../registry/server/index.js";
import {
  CLI,
  MiB,
  runCli,
  runTool,
  sha256Hex,
  useFixtures,
  selfSignedCertificate,
  type Fixtures,
  sampleBundle,
} from "../helpers/fixtures.js";

let fx: Fixtures;
let store: Store;
let dataDir: string;
let metadata: BundleMetadata;
let plain: RunningRegistry;
let secure: RunningRegistry;
let trustDir: string;

function hostOf(registry: RunningRegistry): string {
  return registry.url.replace(/^https?:\/\//, "");
}

async function skopeo(args: string[]): Promise<Buffer> {
  const result = await runTool("skopeo", args);
  expect(result.code, `skopeo ${args.join(" ")}: ${result.stderr}`).toBe(0);
  return result.stdout;
}

beforeAll(async () => {
  fx = await useFixtures({ size: 12 * MiB });
  const built = await sampleBundle(fx);
  const bundle = built.bundle;
  metadata = built.metadata;
  dataDir = await fx.dir("data");
  store = await Store.open(dataDir);
  await importBundle(store, [bundle]);

  const certificate = await selfSignedCertificate(await fx.dir("certs"));
  trustDir = certificate.trustDir;

  plain = await startRegistryServer(store, { listen: "127.0.0.1:0", maxPageSize: 100 });
  secure = await startRegistryServer(store, {
    listen: "127.0.0.1:0",
    tls: { certFile: certificate.certFile, keyFile: certificate.keyFile },
  });
});

afterAll(async () => {
  await plain?.close();
  await secure?.close();
  store?.close();
  await fx?.cleanup();
});

describe("real clients pull from the registry", () => {
  it("skopeo inspect --raw returns every image's manifest with its airlock.json digest, over HTTP and TLS", async () => {
    for (const image of metadata.images) {
      const overHttp = await skopeo([
        "inspect",
        "--raw",
        "--tls-verify=false",
        `docker://${hostOf(plain)}/${image.ref}`,
      ]);
      expect(`sha256:${sha256Hex(overHttp)}`, image.ref).toBe(image.digest);
      const overTls = await skopeo([
        "inspect",
        "--raw",
        "--cert-dir",
        trustDir,
        `docker://${hostOf(secure)}/${image.ref}`,
      ]);
      expect(`sha256:${sha256Hex(overTls)}`, image.ref).toBe(image.digest);
    }
  });

  it("refuses TLS to a client that does not trust the certificate", async () => {
    const result = await runTool("skopeo", [
      "inspect",
      "--raw",
      `docker://${hostOf(secure)}/hubble/console:4.5.0`,
    ]);
    expect(result.code).not.toBe(0);
    expect(result.stderr).toMatch(/certificate/i);
  });

  it("skopeo copy --all --preserve-digests of the multi-arch index lands byte-identical", async () => {
    const out = await fx.dir("copy");
    await skopeo([
      "copy",
      "--all",
      "--preserve-digests",
      "--src-cert-dir",
      trustDir,
      `docker://${hostOf(secure)}/hubble/console:4.5.0`,
      `oci:${out}:c`,
    ]);
    const copied = await skopeo(["inspect", "--raw", `oci:${out}:c`]);
    expect(`sha256:${sha256Hex(copied)}`).toBe(
      metadata.images.find((i) => i.ref === "hubble/console:4.5.0")!.digest,
    );
    const index = JSON.parse(copied.toString()) as { manifests: { digest: string }[] };
    expect(index.manifests).toHaveLength(2);
    for (const child of index.manifests) {
      const [algorithm, hex] = child.digest.split(":") as [string, string];
      const bytes = await readFile(join(out, "blobs", algorithm, hex));
      expect(sha256Hex(bytes)).toBe(hex);
      expect(bytes.equals(await readFile(store.blobs.path(child.digest as `sha256:${string}`)))).toBe(true);
    }
  });
});

describe("the distribution API", () => {
  const get = (path: string, init: RequestInit = {}): Promise<Response> => fetch(`${plain.url}${path}`, init);

  async function errorCode(response: Response): Promise<string> {
    const body = (await response.json()) as { errors: { code: string }[] };
    return body.errors[0]!.code;
  }

  it("answers /v2/ with the API version header", async () => {
    const response = await get("/v2/");
    expect(response.status).toBe(200);
    expect(response.headers.get("docker-distribution-api-version")).toBe("registry/2.0");
  });

  it("HEAD and GET a manifest by tag and by digest with its type, length and digest", async () => {
    const image = metadata.images.find((i) => i.ref === "hubble/console:4.5.0")!;
    for (const reference of ["4.5.0", image.digest]) {
      const head = await get(`/v2/hubble/console/manifests/${reference}`, { method: "HEAD" });
      expect(head.status).toBe(200);
      expect(head.headers.get("docker-content-digest")).toBe(image.digest);
      expect(head.headers.get("content-type")).toBe(image.mediaType);
      expect(Number(head.headers.get("content-length"))).toBe(image.size);
      const body = Buffer.from(await (await get(`/v2/hubble/console/manifests/${reference}`)).arrayBuffer());
      expect(`sha256:${sha256Hex(body)}`).toBe(image.digest);
    }
  });

  it("serves blob byte ranges, and 416 for a range past the end", async () => {
    // The real broker's one layer (console's 4.5.0 is an index, with no layers of its own).
    const manifest = JSON.parse(
      Buffer.from(await (await get("/v2/hubble/msgbroker/manifests/4.5.0")).arrayBuffer()).toString(),
    ) as { layers: { digest: `sha256:${string}`; size: number }[] };
    const layer = manifest.layers[0]!;
    const whole = await readFile(store.blobs.path(layer.digest));
    const partial = await get(`/v2/hubble/msgbroker/blobs/${layer.digest}`, {
      headers: { Range: "bytes=100-199" },
    });
    expect(partial.status).toBe(206);
    expect(partial.headers.get("content-range")).toBe(`bytes 100-199/${layer.size}`);
    expect(Buffer.from(await partial.arrayBuffer()).equals(whole.subarray(100, 200))).toBe(true);
    const suffix = await get(`/v2/hubble/msgbroker/blobs/${layer.digest}`, {
      headers: { Range: "bytes=-10" },
    });
    expect(Buffer.from(await suffix.arrayBuffer()).equals(whole.subarray(whole.byteLength - 10))).toBe(true);
    const beyond = await get(`/v2/hubble/msgbroker/blobs/${layer.digest}`, {
      headers: { Range: `bytes=${layer.size}-` },
    });
    expect(beyond.status).toBe(416);
    expect(beyond.headers.get("content-range")).toBe(`bytes */${layer.size}`);
  });

  it("pages tags and the catalog with n, last and a Link header", async () => {
    const first = await get("/v2/_catalog?n=2");
    expect(((await first.json()) as { repositories: string[] }).repositories).toEqual([
      "hubble/agent",
      "hubble/console",
    ]);
    expect(first.headers.get("link")).toBe('</v2/_catalog?n=2&last=hubble%2Fconsole>; rel="next"');
    const second = await get("/v2/_catalog?n=2&last=hubble%2Fconsole");
    expect(((await second.json()) as { repositories: string[] }).repositories).toEqual([
      "hubble/msgbroker",
      "packs/observability",
    ]);
    const tags = await get("/v2/hubble/msgbroker/tags/list?n=1");
    expect(await tags.json()).toEqual({ name: "hubble/msgbroker", tags: ["4.5.0"] });
    expect(tags.headers.get("link")).toContain("last=4.5.0");
  });

  it.each([
    ["/v2/hubble/console/manifests/9.9.9", 404, "MANIFEST_UNKNOWN"],
    ["/v2/hubble/nothing/manifests/1.0", 404, "NAME_UNKNOWN"],
    ["/v2/hubble/nothing/tags/list", 404, "NAME_UNKNOWN"],
    ["/v2/Hubble/Console/manifests/4.5.0", 400, "NAME_INVALID"],
    ["/v2/hubble/console/blobs/sha256:1234", 400, "DIGEST_INVALID"],
    [`/v2/hubble/console/blobs/sha256:${"0".repeat(64)}`, 404, "BLOB_UNKNOWN"],
    ["/v2/hubble/console/manifests/bad%20tag", 400, "MANIFEST_INVALID"],
  ])("GET %s → %i %s", async (path, status, code) => {
    const response = await get(path);
    expect(response.status).toBe(status);
    expect(await errorCode(response)).toBe(code);
  });

  it("refuses writes with the spec's UNSUPPORTED: this slice serves pulls only", async () => {
    const response = await get("/v2/hubble/console/blobs/uploads/", { method: "POST" });
    expect(response.status).toBe(405);
    expect(await errorCode(response)).toBe("UNSUPPORTED");
  });
});

/** Starts `airlock registry serve` and resolves with what it printed (--json) once it listens. */
function startServeCli(flags: string[]): Promise<{
  child: ReturnType<typeof spawn>;
  served: { url: string; ca?: string };
  exited: Promise<number | null>;
}> {
  const child = spawn(
    process.execPath,
    [CLI, "--data-dir", dataDir, "--json", "registry", "serve", ...flags],
    {
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      try {
        resolve({ child, served: JSON.parse(out) as { url: string; ca?: string }, exited });
      } catch {
        // not the whole document yet
      }
    });
    child.on("exit", (code) => reject(new Error(`serve exited ${code} before listening`)));
  });
}

/** The certificate a TLS server presents to a new connection. */
function peerCertificate(options: ConnectionOptions): Promise<PeerCertificate> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect(options, () => {
      resolve(socket.getPeerCertificate());
      socket.end();
    }).on("error", reject);
  });
}

describe("reloadTls", () => {
  it("refuses a key that does not match its certificate, keeping the old pair; a plain HTTP server has none to reload", async () => {
    const first = await selfSignedCertificate(await fx.dir("reload-first"));
    const second = await selfSignedCertificate(await fx.dir("reload-second"));
    const server = await startRegistryServer(store, { listen: "127.0.0.1:0", tls: first });
    const fingerprint = async (): Promise<string> =>
      (await peerCertificate({ host: "127.0.0.1", port: server.address.port, rejectUnauthorized: false }))
        .fingerprint256;
    try {
      const before = await fingerprint();
      await expect(
        server.reloadTls({ certFile: second.certFile, keyFile: first.keyFile }),
      ).rejects.toMatchObject({
        code: "TLS_INVALID",
      });
      expect(await fingerprint()).toBe(before);
      await server.reloadTls(second);
      expect(await fingerprint()).not.toBe(before);
      await expect(plain.reloadTls(second)).rejects.toMatchObject({ code: "TLS_NOT_SERVED" });
    } finally {
      await server.close();
    }
  });
});

describe("airlock registry serve", () => {
  it("without TLS files, serves TLS with a certificate from the site CA: skopeo pulls trusting it, not without", async () => {
    const { child, served, exited } = await startServeCli([
      "--listen",
      "127.0.0.1:0",
      "--anonymous-pull",
      "--hostname",
      "registry.site.example",
    ]);
    try {
      expect(served.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      expect(served.ca).toBe(join(dataDir, "pki", "ca.crt"));
      const trust = await fx.dir("site-ca");
      await copyFile(served.ca!, join(trust, "ca.crt"));
      const host = served.url.replace("https://", "");
      const image = metadata.images[0]!;
      const raw = await skopeo(["inspect", "--raw", "--cert-dir", trust, `docker://${host}/${image.ref}`]);
      expect(`sha256:${sha256Hex(raw)}`).toBe(image.digest);
      const untrusted = await runTool("skopeo", ["inspect", "--raw", `docker://${host}/${image.ref}`]);
      expect(untrusted.code).not.toBe(0);
      expect(untrusted.stderr).toMatch(/certificate/);
      const text = await runTool("openssl", [
        "x509",
        "-noout",
        "-text",
        "-in",
        join(dataDir, "pki", "registry.crt"),
      ]);
      expect(text.stdout.toString()).toContain("DNS:registry.site.example");
      expect(text.stdout.toString()).toContain("IP Address:127.0.0.1");
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });

  it("on SIGHUP serves the rotated certificate and the accounts file as it is now; a broken file keeps the old accounts", async () => {
    const accounts = join(await fx.dir("reload-accounts"), "htpasswd");
    const account = async (user: string): Promise<string> =>
      (await runTool("htpasswd", ["-Bbn", user, `${user}-pw`])).stdout.toString().trim();
    await writeFile(accounts, `${await account("alice")}\n`);
    const { child, served, exited } = await startServeCli([
      "--listen",
      "127.0.0.1:0",
      "--auth",
      `htpasswd:${accounts}`,
    ]);
    let stderr = "";
    child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    /** Resolves once stderr holds `count` lines containing `text`. */
    const said = (text: string, count: number): Promise<void> =>
      new Promise((resolve) => {
        const check = (): void => {
          if (stderr.split("\n").filter((line) => line.includes(text)).length >= count) {
            child.stderr!.off("data", check);
            resolve();
          }
        };
        child.stderr!.on("data", check);
        check();
      });
    const ca = await readFile(served.ca!);
    const { hostname, port } = new URL(served.url);
    const serial = async (): Promise<string> =>
      (await peerCertificate({ host: hostname, port: Number(port), ca })).serialNumber;
    const status = (user: string): Promise<number> =>
      new Promise((resolve, reject) => {
        httpsRequest(`${served.url}/v2/`, { ca, auth: `${user}:${user}-pw`, agent: false }, (response) => {
          response.resume();
          resolve(response.statusCode!);
        })
          .on("error", reject)
          .end();
      });
    try {
      const before = await serial();
      expect([await status("alice"), await status("bob")]).toEqual([200, 401]);

      const rotated = await runCli(["--data-dir", dataDir, "--json", "pki", "rotate", "--name", "registry"]);
      expect(rotated.code).toBe(0);
      await writeFile(accounts, `${await account("alice")}\n${await account("bob")}\n`);
      child.kill("SIGHUP");
      await said("registry: reloaded certificate", 1);
      expect(await serial()).not.toBe(before);
      expect(await status("bob")).toBe(200);

      await writeFile(accounts, "not an htpasswd line\n");
      child.kill("SIGHUP");
      await said("registry: reload failed", 1);
      expect([await status("alice"), await status("bob")]).toEqual([200, 200]);
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
  });

  it("serves plain HTTP with --insecure-http until SIGTERM, then stops and exits 0", async () => {
    const { child, served, exited } = await startServeCli([
      "--listen",
      "127.0.0.1:0",
      "--insecure-http",
      "--anonymous-pull",
    ]);
    expect(served.ca).toBeUndefined();
    expect((await fetch(`${served.url}/v2/`)).status).toBe(200);
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });
});
