/**
 * `bundle build` from registries (issue 5, point 2): `docker://` sources served by Airlock's own
 * registry (plain HTTP, with referrers) and by Debian's docker-registry (TLS, htpasswd), filled by
 * skopeo from the fixtures' OCI layout. Digests match the source, `platforms:` narrows as for file
 * sources, builds are byte-identical, referrers travel and are served after import; bad credentials,
 * an untrusted certificate and a damaged blob give typed errors naming the image.
 */
import { readdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildBundle,
  importBundle,
  readBundleHead,
  verifyBundle,
  type BundleMetadata,
} from "../../bundle/index.js";
import {
  MediaType,
  digestOf,
  type Descriptor,
  type ImageIndex,
  type ImageManifest,
} from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { startRegistryServer, type RunningRegistry } from "../../registry/server/index.js";
import { startDockerRegistry, type DockerRegistry } from "../helpers/daemons.js";
import {
  MiB,
  expectAirlockError,
  flipByte,
  readTarEntry,
  runCli,
  runTool,
  selfSignedCertificate,
  sha256File,
  useFixtures,
  type Fixtures,
} from "../helpers/fixtures.js";

const CONSOLE = "hubble/console:4.5.0";
const AGENT = "hubble/agent:4.5.0";
const MSGBROKER = "hubble/msgbroker:4.5.0";
const CREDS = { username: "vendor", password: "pull-s3cret" };
const SBOM_TYPE = "application/spdx+json";
const SIGNATURE_TYPE = "application/vnd.example.signature.v1+json";

let fx: Fixtures;
let sourceStore: Store;
let airlock: RunningRegistry;
let airlockHost: string;

interface ImageEntry {
  ref: string;
  source: string;
  platforms?: string[];
  referrers?: boolean;
  digest?: string;
}

/** A bundle.yaml (written as JSON, which YAML reads) in a fresh directory; returns its path. */
async function writeSpec(
  images: ImageEntry[],
  registries: Record<string, Record<string, unknown>> = {},
): Promise<string> {
  const file = join(await fx.dir("spec"), "bundle.yaml");
  await writeFile(
    file,
    JSON.stringify({ name: "mgmt", version: "4.5.0", created: "2026-11-01T00:00:00Z", images, registries }),
  );
  return file;
}

async function build(
  spec: string,
  options: Partial<Parameters<typeof buildBundle>[0]> = {},
): Promise<{ output: string; metadata: BundleMetadata }> {
  const output = join(await fx.dir("out"), "mgmt.airlock.tar");
  await buildBundle({ specFile: spec, output, ...options });
  return { output, metadata: (await readBundleHead([output])).metadata };
}

function imageOf(metadata: BundleMetadata, ref: string): BundleMetadata["images"][number] {
  const image = metadata.images.find((candidate) => candidate.ref === ref);
  expect(image, ref).toBeDefined();
  return image!;
}

async function layoutBlob(digest: string): Promise<Buffer> {
  return readFile(join(fx.summary.layout, "blobs", "sha256", digest.slice("sha256:".length)));
}

async function skopeoCopy(ref: string, host: string, dest: string[]): Promise<void> {
  const copied = await runTool("skopeo", [
    "copy",
    "--all",
    "--preserve-digests",
    ...dest,
    `oci:${fx.summary.layout}:${ref}`,
    `docker://${host}/${ref}`,
  ]);
  expect(copied.code, copied.stderr).toBe(0);
}

/** A blob and then an artifact manifest referring to `subject`, pushed with raw requests. */
async function pushReferrer(
  repository: string,
  subject: Descriptor,
  artifactType: string,
  content: string,
): Promise<Descriptor> {
  const base = `${airlock.url}/v2/${repository}`;
  const pushBlob = async (bytes: Buffer): Promise<{ digest: string; size: number }> => {
    const digest = digestOf(bytes);
    const started = await fetch(`${base}/blobs/uploads/`, { method: "POST" });
    expect(started.status).toBe(202);
    const location = new URL(started.headers.get("location")!, airlock.url);
    location.searchParams.set("digest", digest);
    const put = await fetch(location, {
      method: "PUT",
      headers: { "Content-Type": "application/octet-stream" },
      body: bytes,
    });
    expect(put.status, await put.text()).toBe(201);
    return { digest, size: bytes.byteLength };
  };
  const config = await pushBlob(Buffer.from("{}"));
  const layer = await pushBlob(Buffer.from(content));
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      artifactType,
      config: { mediaType: MediaType.OciEmpty, digest: config.digest, size: config.size },
      layers: [{ mediaType: artifactType, digest: layer.digest, size: layer.size }],
      subject: { mediaType: subject.mediaType, digest: subject.digest, size: subject.size },
    }),
  );
  const digest = digestOf(manifest);
  const put = await fetch(`${base}/manifests/${digest}`, {
    method: "PUT",
    headers: { "Content-Type": MediaType.OciManifest },
    body: manifest,
  });
  expect(put.status, await put.text()).toBe(201);
  return { mediaType: MediaType.OciManifest, digest, size: manifest.byteLength, artifactType };
}

/** console's index and its two platform manifests, as the layout (and so the registries) hold them. */
let consoleIndex: Descriptor;
let amd64: Descriptor;
let arm64: Descriptor;
/** Referrers pushed to Airlock's registry: an SBOM per platform, a signature of the index and of amd64's SBOM. */
let sbomAmd64: Descriptor;
let sbomArm64: Descriptor;
let indexSignature: Descriptor;
let sbomSignature: Descriptor;

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * MiB });
  sourceStore = await Store.open(await fx.dir("source-data"));
  airlock = await startRegistryServer(sourceStore, { listen: "127.0.0.1:0", allowPush: true });
  airlockHost = airlock.url.replace(/^http:\/\//, "");
  for (const ref of [CONSOLE, AGENT, MSGBROKER])
    await skopeoCopy(ref, airlockHost, ["--dest-tls-verify=false"]);

  const indexBytes = await layoutBlob(fx.summary.images[CONSOLE]!.digest);
  consoleIndex = { mediaType: MediaType.OciIndex, digest: digestOf(indexBytes), size: indexBytes.byteLength };
  const children = (JSON.parse(indexBytes.toString("utf8")) as ImageIndex).manifests;
  amd64 = children.find((child) => child.platform?.architecture === "amd64")!;
  arm64 = children.find((child) => child.platform?.architecture === "arm64")!;
  sbomAmd64 = await pushReferrer(
    "hubble/console",
    amd64,
    SBOM_TYPE,
    '{"spdxVersion":"SPDX-2.3","name":"amd64"}',
  );
  sbomArm64 = await pushReferrer(
    "hubble/console",
    arm64,
    SBOM_TYPE,
    '{"spdxVersion":"SPDX-2.3","name":"arm64"}',
  );
  indexSignature = await pushReferrer("hubble/console", consoleIndex, SIGNATURE_TYPE, '{"signed":"index"}');
  sbomSignature = await pushReferrer("hubble/console", sbomAmd64, SIGNATURE_TYPE, '{"signed":"sbom"}');
});

afterAll(async () => {
  await airlock?.close();
  sourceStore?.close();
  await fx?.cleanup();
});

describe("docker:// sources from Airlock's registry (plain HTTP)", () => {
  const allImages = (): ImageEntry[] =>
    [CONSOLE, AGENT, MSGBROKER].map((ref) => ({ ref, source: `docker://${airlockHost}/${ref}` }));
  const plainHttp = (): Record<string, Record<string, unknown>> => ({
    [airlockHost]: { insecureHttp: true },
  });

  it("carries every image with the source's digests, verifiable; a second build is byte-identical", async () => {
    const spec = await writeSpec(allImages(), plainHttp());
    const first = await build(spec);
    for (const ref of [CONSOLE, AGENT, MSGBROKER]) {
      const image = imageOf(first.metadata, ref);
      expect(image.digest, ref).toBe(fx.summary.images[ref]!.digest);
      expect(image.sourceDigest, ref).toBe(fx.summary.images[ref]!.digest);
      expect(image.blobs, ref).toBe(fx.summary.images[ref]!.blobs);
      expect(image.platforms, ref).toEqual([...fx.summary.images[ref]!.platforms].sort());
      expect(image.referrers, ref).toBeUndefined();
    }
    expect((await verifyBundle([first.output])).entries).toBeGreaterThan(0);
    const second = await build(spec);
    expect(await sha256File(second.output)).toBe(await sha256File(first.output));

    // Any OCI tool reads the result: skopeo sees console's index as the registry serves it.
    const inspected = await runTool("skopeo", ["inspect", "--raw", `oci-archive:${first.output}:${CONSOLE}`]);
    expect(inspected.code, inspected.stderr).toBe(0);
    expect(digestOf(inspected.stdout)).toBe(consoleIndex.digest);
  });

  it("pulls by digest, and checks a digest: pin", async () => {
    const byDigest = await build(
      await writeSpec(
        [{ ref: AGENT, source: `docker://${airlockHost}/hubble/agent@${fx.summary.images[AGENT]!.digest}` }],
        plainHttp(),
      ),
    );
    expect(imageOf(byDigest.metadata, AGENT).digest).toBe(fx.summary.images[AGENT]!.digest);
    const pinned = await writeSpec(
      [
        {
          ref: AGENT,
          source: `docker://${airlockHost}/${AGENT}`,
          digest: fx.summary.images[MSGBROKER]!.digest,
        },
      ],
      plainHttp(),
    );
    await expectAirlockError(
      build(pinned),
      "DIGEST_PIN_MISMATCH",
      `image ${AGENT} (docker://${airlockHost}/${AGENT})`,
    );
  });

  it("narrows an index to platforms: exactly as for an OCI layout source", async () => {
    const fromRegistry = await build(
      await writeSpec(
        [{ ref: CONSOLE, source: `docker://${airlockHost}/${CONSOLE}`, platforms: ["linux/arm64/v8"] }],
        plainHttp(),
      ),
    );
    const fromLayout = await build(
      await writeSpec([
        { ref: CONSOLE, source: `oci:${fx.summary.layout}:${CONSOLE}`, platforms: ["linux/arm64/v8"] },
      ]),
    );
    const narrowed = imageOf(fromRegistry.metadata, CONSOLE);
    expect(narrowed.platforms).toEqual(["linux/arm64/v8"]);
    expect(narrowed.sourceDigest).toBe(consoleIndex.digest);
    expect(narrowed.digest).not.toBe(consoleIndex.digest);
    expect(narrowed).toEqual(imageOf(fromLayout.metadata, CONSOLE));
    expect(await sha256File(fromRegistry.output)).toBe(await sha256File(fromLayout.output));
  });

  it("with referrers: true brings referrers (and theirs) deterministically; import serves them from the referrers API", async () => {
    const spec = await writeSpec(
      [{ ref: CONSOLE, source: `docker://${airlockHost}/${CONSOLE}`, referrers: true }],
      plainHttp(),
    );
    const { output, metadata } = await build(spec);
    const image = imageOf(metadata, CONSOLE);
    expect(image.digest).toBe(consoleIndex.digest);
    const bySubject = (image.referrers ?? []).map((referrer) => [
      referrer.subject,
      referrer.digest,
      referrer.artifactType,
    ]);
    expect(bySubject.sort()).toEqual(
      [
        [consoleIndex.digest, indexSignature.digest, SIGNATURE_TYPE],
        [amd64.digest, sbomAmd64.digest, SBOM_TYPE],
        [arm64.digest, sbomArm64.digest, SBOM_TYPE],
        [sbomAmd64.digest, sbomSignature.digest, SIGNATURE_TYPE],
      ].sort(),
    );
    // Four referrers, each a manifest, a shared empty config and a layer of its own.
    expect(image.blobs).toBe(fx.summary.images[CONSOLE]!.blobs + 4 + 1 + 4);
    const again = await build(spec);
    expect(await sha256File(again.output)).toBe(await sha256File(output));

    // The bundle's layout lists them untagged, as OCI layout tools find referrers.
    const layoutIndex = JSON.parse((await readTarEntry(output, "index.json")).toString("utf8")) as ImageIndex;
    expect(layoutIndex.manifests.map((entry) => entry.digest).sort()).toEqual(
      [
        consoleIndex.digest,
        indexSignature.digest,
        sbomAmd64.digest,
        sbomArm64.digest,
        sbomSignature.digest,
      ].sort(),
    );

    const siteStore = await Store.open(await fx.dir("site-data"));
    const site = await startRegistryServer(siteStore, { listen: "127.0.0.1:0" });
    try {
      await importBundle(siteStore, [output]);
      const referrersOf = async (digest: string, query = ""): Promise<Descriptor[]> => {
        const response = await fetch(`${site.url}/v2/hubble/console/referrers/${digest}${query}`);
        expect(response.status).toBe(200);
        return ((await response.json()) as ImageIndex).manifests;
      };
      expect(await referrersOf(amd64.digest)).toEqual([
        {
          mediaType: MediaType.OciManifest,
          digest: sbomAmd64.digest,
          size: sbomAmd64.size,
          artifactType: SBOM_TYPE,
        },
      ]);
      expect((await referrersOf(sbomAmd64.digest)).map((d) => d.digest)).toEqual([sbomSignature.digest]);
      expect(
        (await referrersOf(consoleIndex.digest, `?artifactType=${encodeURIComponent(SIGNATURE_TYPE)}`)).map(
          (d) => d.digest,
        ),
      ).toEqual([indexSignature.digest]);

      // The referrer and its content are pullable, byte for byte as pushed.
      const manifest = await fetch(`${site.url}/v2/hubble/console/manifests/${sbomAmd64.digest}`);
      expect(manifest.status).toBe(200);
      const bytes = Buffer.from(await manifest.arrayBuffer());
      expect(digestOf(bytes)).toBe(sbomAmd64.digest);
      const layer = (JSON.parse(bytes.toString("utf8")) as ImageManifest).layers[0]!;
      const blob = await fetch(`${site.url}/v2/hubble/console/blobs/${layer.digest}`);
      expect(await blob.text()).toBe('{"spdxVersion":"SPDX-2.3","name":"amd64"}');

      const fsck = await siteStore.fsck();
      expect(fsck.ok).toBe(true);
      expect(fsck.unreferenced).toEqual([]);
    } finally {
      await site.close();
      siteStore.close();
    }
  });

  it("narrowed to a platform, brings only that platform's referrers: the source index's signature does not hold", async () => {
    const { metadata } = await build(
      await writeSpec(
        [
          {
            ref: CONSOLE,
            source: `docker://${airlockHost}/${CONSOLE}`,
            platforms: ["linux/amd64"],
            referrers: true,
          },
        ],
        plainHttp(),
      ),
    );
    expect((imageOf(metadata, CONSOLE).referrers ?? []).map((referrer) => referrer.digest).sort()).toEqual(
      [sbomAmd64.digest, sbomSignature.digest].sort(),
    );
  });

  it("an image without referrers gets an empty list, and the bundle is otherwise unchanged", async () => {
    const { metadata } = await build(
      await writeSpec(
        [{ ref: AGENT, source: `docker://${airlockHost}/${AGENT}`, referrers: true }],
        plainHttp(),
      ),
    );
    expect(imageOf(metadata, AGENT).referrers).toEqual([]);
    expect(imageOf(metadata, AGENT).blobs).toBe(fx.summary.images[AGENT]!.blobs);
  });

  it("names the image when the tag is unknown, and when TLS is spoken to a plain-HTTP registry", async () => {
    const missing = await expectAirlockError(
      build(
        await writeSpec([{ ref: AGENT, source: `docker://${airlockHost}/hubble/agent:9.9.9` }], plainHttp()),
      ),
      "REGISTRY_REFUSED",
      `image ${AGENT} (docker://${airlockHost}/hubble/agent:9.9.9)`,
    );
    expect(missing.message).toContain("404");
    const tls = await expectAirlockError(
      build(await writeSpec([{ ref: AGENT, source: `docker://${airlockHost}/${AGENT}` }])),
      "REGISTRY_TLS_FAILED",
      `image ${AGENT}`,
    );
    expect(tls.hint).toContain(`--insecure-registry ${airlockHost}`);
  });

  it("the CLI's --insecure-registry reaches a plain-HTTP registry", async () => {
    const output = join(await fx.dir("cli"), "mgmt.airlock.tar");
    const spec = await writeSpec([{ ref: AGENT, source: `docker://${airlockHost}/${AGENT}` }]);
    const result = await runCli([
      "bundle",
      "build",
      "-f",
      spec,
      "-o",
      output,
      "--insecure-registry",
      airlockHost,
      "--json",
    ]);
    expect(result.code, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as { images: { digest: string }[] }).images[0]!.digest).toBe(
      fx.summary.images[AGENT]!.digest,
    );
  });
});

describe("docker:// sources from docker-registry (TLS, htpasswd)", () => {
  let registry: DockerRegistry;
  let caFile: string;
  let authFile: string;
  let wrongAuthFile: string;

  const authJson = (host: string, user: string, password: string): string =>
    JSON.stringify({ auths: { [host]: { auth: Buffer.from(`${user}:${password}`).toString("base64") } } });

  beforeAll(async () => {
    const certs = await selfSignedCertificate(await fx.dir("certs"));
    caFile = certs.certFile;
    const authDir = await fx.dir("auth");
    const htpasswd = join(authDir, "htpasswd");
    const made = await runTool("htpasswd", ["-Bbc", htpasswd, CREDS.username, CREDS.password]);
    expect(made.code, made.stderr).toBe(0);
    registry = await startDockerRegistry(await fx.dir("docker-registry"), { tls: certs, htpasswd });
    for (const ref of [CONSOLE, AGENT]) {
      await skopeoCopy(ref, registry.host, [
        "--dest-cert-dir",
        certs.trustDir,
        "--dest-creds",
        `${CREDS.username}:${CREDS.password}`,
      ]);
    }
    authFile = join(authDir, "auth.json");
    await writeFile(authFile, authJson(registry.host, CREDS.username, CREDS.password));
    wrongAuthFile = join(authDir, "wrong.json");
    await writeFile(wrongAuthFile, authJson(registry.host, CREDS.username, "not-the-password"));
  });

  afterAll(async () => {
    await registry?.daemon.stop();
  });

  const images = (): ImageEntry[] =>
    [CONSOLE, AGENT].map((ref) => ({ ref, source: `docker://${registry.host}/${ref}` }));

  it("pulls with the registry's CA and the credentials of its authFile: same digests as from Airlock's registry", async () => {
    const { metadata } = await build(await writeSpec(images(), { [registry.host]: { caFile, authFile } }));
    for (const ref of [CONSOLE, AGENT])
      expect(imageOf(metadata, ref).digest).toBe(fx.summary.images[ref]!.digest);
  });

  it("takes --authfile (and, in the CLI, $REGISTRY_AUTH_FILE) for a registry bundle.yaml gives no authFile", async () => {
    const spec = await writeSpec(images(), { [registry.host]: { caFile } });
    const { metadata } = await build(spec, { authFile });
    expect(imageOf(metadata, AGENT).digest).toBe(fx.summary.images[AGENT]!.digest);

    const output = join(await fx.dir("cli"), "mgmt.airlock.tar");
    const result = await runCli(["bundle", "build", "-f", spec, "-o", output], {
      env: { REGISTRY_AUTH_FILE: authFile },
    });
    expect(result.code, result.stderr).toBe(0);
  });

  it("without credentials, or with wrong ones, fails with REGISTRY_AUTH_FAILED naming the image", async () => {
    const none = await expectAirlockError(
      build(await writeSpec(images(), { [registry.host]: { caFile } })),
      "REGISTRY_AUTH_FAILED",
      `image ${CONSOLE} (docker://${registry.host}/${CONSOLE})`,
    );
    expect(none.hint).toContain(`skopeo login ${registry.host}`);
    expect(none.hint).toContain("--authfile");
    const wrong = await expectAirlockError(
      build(await writeSpec(images(), { [registry.host]: { caFile, authFile: wrongAuthFile } })),
      "REGISTRY_AUTH_FAILED",
      `image ${CONSOLE}`,
    );
    expect(wrong.message).toContain("401");
  });

  it("without the registry's CA fails with REGISTRY_TLS_FAILED, pointing at caFile", async () => {
    const error = await expectAirlockError(
      build(await writeSpec(images(), { [registry.host]: { authFile } })),
      "REGISTRY_TLS_FAILED",
      `image ${CONSOLE}`,
    );
    expect(error.hint).toContain(`registries["${registry.host}"].caFile`);
  });

  it("a blob the registry serves damaged fails the build with REGISTRY_DIGEST_MISMATCH, leaving no output", async () => {
    const manifest = JSON.parse(
      (await layoutBlob(fx.summary.images[AGENT]!.digest)).toString("utf8"),
    ) as ImageManifest;
    const layer = manifest.layers.at(-1)!.digest.slice("sha256:".length);
    await flipByte(
      join(registry.storage, "docker", "registry", "v2", "blobs", "sha256", layer.slice(0, 2), layer, "data"),
      10,
    );
    const outDir = await fx.dir("damaged");
    const error = await expectAirlockError(
      buildBundle({
        specFile: await writeSpec(images(), { [registry.host]: { caFile, authFile } }),
        output: join(outDir, "mgmt.airlock.tar"),
      }),
      "REGISTRY_DIGEST_MISMATCH",
      `image ${AGENT} (docker://${registry.host}/${AGENT})`,
    );
    expect(error.message).toContain(`sha256:${layer}`);
    expect(await readdir(outDir)).toEqual([]);
  });
});
