/**
 * Airlock's registry, push side (issue 4): uploads (monolithic, chunked, mount), manifest PUT with its
 * checks, exercised by skopeo pushing a whole bundle and by raw requests for the protocol's edges.
 */
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBundle, type BundleMetadata } from "../../bundle/index.js";
import { digestOf, MediaType, type Digest } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { startRegistryServer, type RunningRegistry } from "../../registry/server/index.js";
import { MiB, runTool, sha256Hex, useFixtures, sampleBundle, type Fixtures } from "../helpers/fixtures.js";

let fx: Fixtures;
let store: Store;
let bundle: string;
let metadata: BundleMetadata;
let registry: RunningRegistry;

beforeAll(async () => {
  fx = await useFixtures({ size: 12 * MiB });
  ({ bundle, metadata } = await sampleBundle(fx));
  store = await Store.open(await fx.dir("data"));
  registry = await startRegistryServer(store, { listen: "127.0.0.1:0", allowPush: true });
});

afterAll(async () => {
  await registry?.close();
  store?.close();
  await fx?.cleanup();
});

const request = (path: string, init: RequestInit = {}): Promise<Response> =>
  fetch(`${registry.url}${path}`, init);

async function errorCode(response: Response): Promise<string> {
  return ((await response.json()) as { errors: { code: string }[] }).errors[0]!.code;
}

async function blobFiles(): Promise<string[]> {
  const all: string[] = [];
  for await (const digest of store.blobs.list()) all.push(digest);
  return all;
}

async function pushBlob(name: string, data: Buffer): Promise<Digest> {
  const digest = digestOf(data);
  const response = await request(`/v2/${name}/blobs/uploads/?digest=${digest}`, {
    method: "POST",
    body: data,
  });
  expect(response.status).toBe(201);
  return digest;
}

describe("skopeo pushes into Airlock", () => {
  it("copies every image of a bundle with --preserve-digests, and pulls them back byte-identical", async () => {
    const host = registry.url.replace("http://", "");
    for (const image of metadata.images) {
      const push = await runTool("skopeo", [
        "copy",
        "--all",
        "--preserve-digests",
        "--dest-tls-verify=false",
        `oci-archive:${bundle}:${image.ref}`,
        `docker://${host}/${image.ref}`,
      ]);
      expect(push.code, push.stderr).toBe(0);
      const back = await runTool("skopeo", [
        "inspect",
        "--raw",
        "--tls-verify=false",
        `docker://${host}/${image.ref}`,
      ]);
      expect(back.code, back.stderr).toBe(0);
      expect(`sha256:${sha256Hex(back.stdout)}`, image.ref).toBe(image.digest);
    }
    const fsck = await store.fsck();
    expect(fsck.ok).toBe(true);
    expect(fsck.unreferenced).toEqual([]);
  });
});

describe("blob uploads", () => {
  it("chunked: POST, PATCH with Content-Range, status, PUT with the digest; 416 for an out-of-order chunk", async () => {
    const data = randomBytes(300 * 1024);
    const digest = digestOf(data);
    const started = await request("/v2/chunked/blobs/uploads/", { method: "POST" });
    expect(started.status).toBe(202);
    expect(started.headers.get("range")).toBe("0-0");
    const location = started.headers.get("location")!;
    const first = await request(location, {
      method: "PATCH",
      body: data.subarray(0, 100_000),
      headers: { "Content-Range": "0-99999", "Content-Type": "application/octet-stream" },
    });
    expect(first.status).toBe(202);
    expect(first.headers.get("range")).toBe("0-99999");
    const skipped = await request(location, {
      method: "PATCH",
      body: data.subarray(150_000, 200_000),
      headers: { "Content-Range": "150000-199999" },
    });
    expect(skipped.status).toBe(416);
    expect(skipped.headers.get("range")).toBe("0-99999");
    const second = await request(location, {
      method: "PATCH",
      body: data.subarray(100_000),
      headers: { "Content-Range": `100000-${data.byteLength - 1}` },
    });
    expect(second.status).toBe(202);
    const status = await request(location);
    expect(status.status).toBe(204);
    expect(status.headers.get("range")).toBe(`0-${data.byteLength - 1}`);
    const done = await request(`${location}?digest=${digest}`, { method: "PUT" });
    expect(done.status).toBe(201);
    expect(done.headers.get("docker-content-digest")).toBe(digest);
    const served = Buffer.from(await (await request(`/v2/chunked/blobs/${digest}`)).arrayBuffer());
    expect(served.equals(data)).toBe(true);
  });

  it("a digest mismatch on completion is DIGEST_INVALID, and no blob becomes visible", async () => {
    const before = await blobFiles();
    const started = await request("/v2/mismatch/blobs/uploads/", { method: "POST" });
    const location = started.headers.get("location")!;
    await request(location, { method: "PATCH", body: randomBytes(4096) });
    const wrong = digestOf(randomBytes(16));
    const done = await request(`${location}?digest=${wrong}`, { method: "PUT" });
    expect(done.status).toBe(400);
    expect(await errorCode(done)).toBe("DIGEST_INVALID");
    expect((await request(`/v2/mismatch/blobs/${wrong}`, { method: "HEAD" })).status).toBe(404);
    expect(await blobFiles()).toEqual(before);
  });

  it("a cancelled or unknown upload is BLOB_UPLOAD_UNKNOWN", async () => {
    const location = (await request("/v2/cancel/blobs/uploads/", { method: "POST" })).headers.get(
      "location",
    )!;
    expect((await request(location, { method: "DELETE" })).status).toBe(204);
    const gone = await request(location);
    expect(gone.status).toBe(404);
    expect(await errorCode(gone)).toBe("BLOB_UPLOAD_UNKNOWN");
    const unknown = await request("/v2/cancel/blobs/uploads/0123456789abcdef", {
      method: "PATCH",
      body: "x",
    });
    expect(await errorCode(unknown)).toBe("BLOB_UPLOAD_UNKNOWN");
  });

  it("mounts a blob the store holds from another repository without an upload", async () => {
    const digest = await pushBlob("mount-from", randomBytes(2048));
    const mounted = await request(`/v2/mount-to/blobs/uploads/?mount=${digest}&from=mount-from`, {
      method: "POST",
    });
    expect(mounted.status).toBe(201);
    expect(mounted.headers.get("location")).toBe(`/v2/mount-to/blobs/${digest}`);
  });
});

/** Pushes a config and a layer, and returns a manifest over them (not yet pushed). */
async function imageParts(
  name: string,
  extra: Record<string, unknown> = {},
): Promise<{ config: Digest; layer: Digest; manifest: Buffer }> {
  const configBytes = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] } }),
  );
  const layerBytes = randomBytes(1024);
  const config = await pushBlob(name, configBytes);
  const layer = await pushBlob(name, layerBytes);
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: { mediaType: MediaType.OciConfig, digest: config, size: configBytes.byteLength },
      layers: [{ mediaType: MediaType.OciLayer, digest: layer, size: layerBytes.byteLength }],
      ...extra,
    }),
  );
  return { config, layer, manifest };
}

describe("manifest PUT", () => {
  const putManifest = (
    name: string,
    reference: string,
    body: Buffer,
    type: string = MediaType.OciManifest,
  ): Promise<Response> =>
    request(`/v2/${name}/manifests/${reference}`, { method: "PUT", body, headers: { "Content-Type": type } });

  it("stores a manifest by tag: pullable by tag and digest, listed in tags", async () => {
    const { manifest } = await imageParts("app");
    const response = await putManifest("app", "1.0", manifest);
    expect(response.status).toBe(201);
    const digest = digestOf(manifest);
    expect(response.headers.get("docker-content-digest")).toBe(digest);
    for (const reference of ["1.0", digest]) {
      const served = Buffer.from(await (await request(`/v2/app/manifests/${reference}`)).arrayBuffer());
      expect(served.equals(manifest)).toBe(true);
    }
    expect(await (await request("/v2/app/tags/list")).json()).toEqual({ name: "app", tags: ["1.0"] });
  });

  it("answers OCI-Subject for a manifest that names a subject", async () => {
    const { manifest } = await imageParts("subject");
    await putManifest("subject", "base", manifest);
    const doc = JSON.parse(manifest.toString()) as Record<string, unknown>;
    const referrer = Buffer.from(
      JSON.stringify({
        ...doc,
        subject: { mediaType: MediaType.OciManifest, digest: digestOf(manifest), size: manifest.byteLength },
      }),
    );
    const response = await putManifest("subject", digestOf(referrer), referrer);
    expect(response.status).toBe(201);
    expect(response.headers.get("oci-subject")).toBe(digestOf(manifest));
  });

  it("accepts and serves a Docker schema 2 manifest with its own media type", async () => {
    const { manifest } = await imageParts("docker");
    const doc = JSON.parse(manifest.toString()) as {
      config: { mediaType: string };
      layers: { mediaType: string }[];
    };
    const docker = Buffer.from(
      JSON.stringify({
        ...doc,
        mediaType: MediaType.DockerManifest,
        config: { ...doc.config, mediaType: MediaType.DockerConfig },
        layers: doc.layers.map((layer) => ({ ...layer, mediaType: MediaType.DockerLayerGzip })),
      }),
    );
    const response = await putManifest("docker", "v2", docker, MediaType.DockerManifest);
    expect(response.status).toBe(201);
    const served = await request("/v2/docker/manifests/v2", { method: "HEAD" });
    expect(served.headers.get("content-type")).toBe(MediaType.DockerManifest);
    expect(served.headers.get("docker-content-digest")).toBe(digestOf(docker));
  });

  it("refuses a manifest whose layer size differs from the blob's: MANIFEST_BLOB_UNKNOWN, naming the sizes", async () => {
    const { manifest, layer } = await imageParts("sized");
    const doc = JSON.parse(manifest.toString()) as { layers: { digest: string; size: number }[] };
    const wrong = Buffer.from(
      JSON.stringify({ ...doc, layers: doc.layers.map((l) => ({ ...l, size: l.size + 1 })) }),
    );
    const response = await putManifest("sized", "x", wrong);
    expect(response.status).toBe(404);
    const body = (await response.json()) as { errors: { code: string; message: string }[] };
    expect(body.errors[0]).toMatchObject({ code: "MANIFEST_BLOB_UNKNOWN" });
    expect(body.errors[0]!.message).toContain(`${layer} is`);
    expect((await request("/v2/sized/manifests/x", { method: "HEAD" })).status).toBe(404);
  });

  it.each([
    ["a missing blob", "MANIFEST_BLOB_UNKNOWN", 404],
    ["malformed JSON", "MANIFEST_INVALID", 400],
    ["a Content-Type that differs from its mediaType", "MANIFEST_INVALID", 400],
    ["a digest reference it does not hash to", "DIGEST_INVALID", 400],
    ["more than 4 MiB", "MANIFEST_INVALID", 400],
  ])("refuses a manifest with %s: %s, and stores nothing", async (what, code, status) => {
    const { manifest, layer } = await imageParts("bad");
    const before = await blobFiles();
    let response: Response;
    switch (what) {
      case "a missing blob":
        response = await putManifest(
          "bad",
          "x",
          Buffer.from(manifest.toString().replace(layer, digestOf("absent"))),
        );
        break;
      case "malformed JSON":
        response = await putManifest("bad", "x", Buffer.from("{ not json"));
        break;
      case "a Content-Type that differs from its mediaType":
        response = await putManifest("bad", "x", manifest, MediaType.OciIndex);
        break;
      case "a digest reference it does not hash to":
        response = await putManifest("bad", digestOf("other"), manifest);
        break;
      default:
        response = await putManifest("bad", "x", Buffer.alloc(4 * 1024 * 1024 + 1, 32));
    }
    expect(response.status).toBe(status);
    expect(await errorCode(response)).toBe(code);
    expect(await blobFiles()).toEqual(before);
    expect((await request("/v2/bad/manifests/x", { method: "HEAD" })).status).toBe(404);
  });
});

describe("names and digests the spec refuses", () => {
  /** A raw request, so that `..` reaches the server as sent (fetch would resolve it). */
  const raw = (method: string, path: string): Promise<{ status: number; code: string }> =>
    new Promise((resolve, reject) => {
      const url = new URL(registry.url);
      const req = httpRequest({ host: url.hostname, port: url.port, method, path }, (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
        res.on("end", () =>
          resolve({
            status: res.statusCode ?? 0,
            code: (JSON.parse(body) as { errors: { code: string }[] }).errors[0]!.code,
          }),
        );
      });
      req.on("error", reject);
      req.end();
    });

  it.each([
    ["GET", "/v2/hubble/../etc/manifests/latest", 400, "NAME_INVALID"],
    ["POST", "/v2/a/../b/blobs/uploads/", 400, "NAME_INVALID"],
    ["GET", `/v2/${"a".repeat(256)}/tags/list`, 400, "NAME_INVALID"],
    ["POST", "/v2/UPPER/blobs/uploads/", 400, "NAME_INVALID"],
    ["GET", `/v2/app/blobs/md5:${"0".repeat(32)}`, 400, "DIGEST_INVALID"],
    ["GET", `/v2/app/blobs/sha384:${"0".repeat(96)}`, 400, "DIGEST_INVALID"],
    ["POST", `/v2/app/blobs/uploads/?digest=sha384:${"0".repeat(96)}`, 400, "DIGEST_INVALID"],
    ["PATCH", "/v2/app/blobs/uploads/not-an-upload", 404, "BLOB_UPLOAD_UNKNOWN"],
  ])("%s %s → %i %s", async (method, path, status, code) => {
    const before = await blobFiles();
    expect(await raw(method, path)).toEqual({ status, code });
    expect(await blobFiles()).toEqual(before);
  });
});

describe("a read-only registry", () => {
  it("refuses every write with UNSUPPORTED", async () => {
    const readOnly = await startRegistryServer(store, { listen: "127.0.0.1:0" });
    try {
      for (const [method, path] of [
        ["POST", "/v2/app/blobs/uploads/"],
        ["PUT", "/v2/app/manifests/2.0"],
        ["PATCH", "/v2/app/blobs/uploads/abc"],
        ["DELETE", "/v2/app/manifests/1.0"],
      ] as const) {
        const response = await fetch(`${readOnly.url}${path}`, {
          method,
          body: method === "DELETE" ? undefined : "x",
        });
        expect(response.status, `${method} ${path}`).toBe(405);
        expect(await errorCode(response)).toBe("UNSUPPORTED");
      }
    } finally {
      await readOnly.close();
    }
  });
});

describe("referrers and deletes", () => {
  async function pushImage(
    name: string,
    tag: string,
    extra: Record<string, unknown> = {},
  ): Promise<{ manifest: Buffer; layer: Digest }> {
    const { manifest, layer } = await imageParts(name, extra);
    const response = await request(`/v2/${name}/manifests/${tag}`, {
      method: "PUT",
      body: manifest,
      headers: { "Content-Type": MediaType.OciManifest },
    });
    expect(response.status).toBe(201);
    return { manifest, layer };
  }

  it("lists the manifests whose subject a digest is, filtered by artifactType", async () => {
    const { manifest } = await pushImage("signed", "1.0");
    const subject = {
      mediaType: MediaType.OciManifest,
      digest: digestOf(manifest),
      size: manifest.byteLength,
    };
    const { manifest: sbom } = await pushImage("signed", "sbom", {
      artifactType: "application/vnd.example.sbom",
      subject,
    });
    const all = await request(`/v2/signed/referrers/${subject.digest}`);
    expect(all.status).toBe(200);
    expect(all.headers.get("content-type")).toBe(MediaType.OciIndex);
    expect(((await all.json()) as { manifests: unknown[] }).manifests).toEqual([
      {
        mediaType: MediaType.OciManifest,
        digest: digestOf(sbom),
        size: sbom.byteLength,
        artifactType: "application/vnd.example.sbom",
      },
    ]);
    const filtered = await request(
      `/v2/signed/referrers/${subject.digest}?artifactType=application/vnd.example.signature`,
    );
    expect(filtered.headers.get("oci-filters-applied")).toBe("artifactType");
    expect(((await filtered.json()) as { manifests: unknown[] }).manifests).toEqual([]);
  });

  it("deletes a tag, then the manifest by digest; a blob in use is DENIED, an unused one goes", async () => {
    const { manifest, layer } = await pushImage("doomed", "1.0");
    const digest = digestOf(manifest);
    expect((await request("/v2/doomed/manifests/1.0", { method: "DELETE" })).status).toBe(202);
    expect((await request("/v2/doomed/manifests/1.0", { method: "HEAD" })).status).toBe(404);
    expect((await request(`/v2/doomed/manifests/${digest}`, { method: "HEAD" })).status).toBe(200);
    const inUse = await request(`/v2/doomed/blobs/${layer}`, { method: "DELETE" });
    expect(inUse.status).toBe(403);
    expect(await errorCode(inUse)).toBe("DENIED");
    expect((await request(`/v2/doomed/manifests/${digest}`, { method: "DELETE" })).status).toBe(202);
    expect((await request(`/v2/doomed/manifests/${digest}`, { method: "HEAD" })).status).toBe(404);
    const missing = await request(`/v2/doomed/manifests/${digest}`, { method: "DELETE" });
    expect(await errorCode(missing)).toBe("MANIFEST_UNKNOWN");
    expect((await request(`/v2/doomed/blobs/${layer}`, { method: "DELETE" })).status).toBe(202);
    expect((await request(`/v2/doomed/blobs/${layer}`, { method: "HEAD" })).status).toBe(404);
  });

  it("refuses to delete an imported bundle's images, by tag or by digest", async () => {
    await importBundle(store, [bundle]);
    const image = metadata.images.find((i) => i.ref === "hubble/agent:4.5.0")!;
    for (const reference of ["4.5.0", image.digest]) {
      const response = await request(`/v2/hubble/agent/manifests/${reference}`, { method: "DELETE" });
      expect(response.status).toBe(403);
      expect(await errorCode(response)).toBe("DENIED");
    }
    expect((await request("/v2/hubble/agent/manifests/4.5.0", { method: "HEAD" })).status).toBe(200);
    expect((await store.fsck()).ok).toBe(true);
  });
});
