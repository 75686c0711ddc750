/**
 * Distribution-spec gaps (issue 10, point 2, and the `%` escapes of point 4): the closing PUT of a
 * chunked upload honours Content-Range, referrers carry annotations, manifests by sha512 digest,
 * blobs belong to repositories (reads, mounts, deletes, gc), non-distributable layers, paging values
 * and UNSUPPORTED statuses, malformed escapes.
 */
import { randomBytes } from "node:crypto";
import { request as httpRequest } from "node:http";
import bcrypt from "bcryptjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { importBundle, type BundleMetadata } from "../../bundle/index.js";
import { digestOf, MediaType, parseReference, type Digest } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { Authenticator, startRegistryServer, type RunningRegistry } from "../../registry/server/index.js";
import { MiB, useFixtures, sampleBundle, type Fixtures } from "../helpers/fixtures.js";

let fx: Fixtures;
let store: Store;
let bundle: string;
let metadata: BundleMetadata;
let registry: RunningRegistry;

beforeAll(async () => {
  fx = await useFixtures({ size: 4 * MiB });
  ({ bundle, metadata } = await sampleBundle(fx));
  store = await Store.open(await fx.dir("data"));
  registry = await startRegistryServer(store, { listen: "127.0.0.1:0", allowPush: true });
});

afterAll(async () => {
  await registry?.close();
  store?.close();
  await fx?.cleanup();
});

const call = (path: string, init: RequestInit = {}, server = registry): Promise<Response> =>
  fetch(`${server.url}${path}`, init);

async function errorCode(response: Response): Promise<string> {
  return ((await response.json()) as { errors: { code: string }[] }).errors[0]!.code;
}

async function pushBlob(name: string, data: Buffer, server = registry): Promise<Digest> {
  const digest = digestOf(data);
  const response = await call(
    `/v2/${name}/blobs/uploads/?digest=${digest}`,
    { method: "POST", body: data },
    server,
  );
  expect(response.status).toBe(201);
  return digest;
}

const status = async (path: string, method = "HEAD"): Promise<number> =>
  (await call(path, { method })).status;

/** Pushes a config and a layer to `name` and returns an image manifest over them (not pushed). */
async function imageManifest(name: string, extra: Record<string, unknown> = {}): Promise<Buffer> {
  const config = Buffer.from(
    JSON.stringify({ architecture: "amd64", os: "linux", seed: randomBytes(8).toString("hex") }),
  );
  const layer = randomBytes(512);
  return Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: MediaType.OciManifest,
      config: {
        mediaType: MediaType.OciConfig,
        digest: await pushBlob(name, config),
        size: config.byteLength,
      },
      layers: [
        { mediaType: MediaType.OciLayer, digest: await pushBlob(name, layer), size: layer.byteLength },
      ],
      ...extra,
    }),
  );
}

const putManifest = (name: string, reference: string, body: Buffer, type: string = MediaType.OciManifest) =>
  call(`/v2/${name}/manifests/${reference}`, { method: "PUT", body, headers: { "Content-Type": type } });

describe("the closing PUT of a chunked upload honours Content-Range", () => {
  it("an out-of-order final chunk is 416 and the session survives: status, then the right chunk completes it", async () => {
    const data = randomBytes(200_000);
    const digest = digestOf(data);
    const location = (await call("/v2/closing/blobs/uploads/", { method: "POST" })).headers.get("location")!;
    const first = await call(location, {
      method: "PATCH",
      body: data.subarray(0, 120_000),
      headers: { "Content-Range": "0-119999" },
    });
    expect(first.status).toBe(202);
    const skipped = await call(`${location}?digest=${digest}`, {
      method: "PUT",
      body: data.subarray(150_000),
      headers: { "Content-Range": `150000-${data.byteLength - 1}` },
    });
    expect(skipped.status).toBe(416);
    expect(skipped.headers.get("range")).toBe("0-119999");
    const state = await call(location);
    expect(state.status).toBe(204);
    expect(state.headers.get("range")).toBe("0-119999");
    const done = await call(`${location}?digest=${digest}`, {
      method: "PUT",
      body: data.subarray(120_000),
      headers: { "Content-Range": `120000-${data.byteLength - 1}` },
    });
    expect(done.status).toBe(201);
    expect(Buffer.from(await (await call(`/v2/closing/blobs/${digest}`)).arrayBuffer()).equals(data)).toBe(
      true,
    );
  });
});

describe("referrers carry each manifest's annotations", () => {
  it("lists a pushed referrer with the annotations of its manifest", async () => {
    const base = await imageManifest("annotated");
    expect((await putManifest("annotated", "1.0", base)).status).toBe(201);
    const annotations = {
      "org.opencontainers.image.created": "2026-12-01T00:00:00Z",
      "org.example.format": "json",
    };
    const sbom = await imageManifest("annotated", {
      artifactType: "application/vnd.example.sbom",
      subject: { mediaType: MediaType.OciManifest, digest: digestOf(base), size: base.byteLength },
      annotations,
    });
    expect((await putManifest("annotated", digestOf(sbom), sbom)).status).toBe(201);
    const listed = (await (await call(`/v2/annotated/referrers/${digestOf(base)}`)).json()) as {
      manifests: unknown[];
    };
    expect(listed.manifests).toEqual([
      {
        mediaType: MediaType.OciManifest,
        digest: digestOf(sbom),
        size: sbom.byteLength,
        artifactType: "application/vnd.example.sbom",
        annotations,
      },
    ]);
  });
});

describe("manifests by sha512 digest", () => {
  it("stores and serves a manifest under its sha512 digest, tags included (?tag= answered as OCI-Tag)", async () => {
    const manifest = await imageManifest("five12");
    const digest = digestOf(manifest, "sha512");
    const pushed = await call(`/v2/five12/manifests/${digest}?tag=v1&tag=stable`, {
      method: "PUT",
      body: manifest,
      headers: { "Content-Type": MediaType.OciManifest },
    });
    expect(pushed.status).toBe(201);
    expect(pushed.headers.get("docker-content-digest")).toBe(digest);
    expect(pushed.headers.get("location")).toBe(`/v2/five12/manifests/${digest}`);
    expect(pushed.headers.get("oci-tag")).toBe("v1, stable");
    for (const reference of [digest, "v1", "stable"]) {
      const served = await call(`/v2/five12/manifests/${reference}`);
      expect(served.status, reference).toBe(200);
      expect(served.headers.get("docker-content-digest")).toBe(digest);
      expect(Buffer.from(await served.arrayBuffer()).equals(manifest)).toBe(true);
    }
    expect(await (await call("/v2/five12/tags/list")).json()).toEqual({
      name: "five12",
      tags: ["stable", "v1"],
    });
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaType.OciIndex,
        manifests: [{ mediaType: MediaType.OciManifest, digest, size: manifest.byteLength }],
      }),
    );
    const indexed = await putManifest("five12", "all", index, MediaType.OciIndex);
    expect(indexed.status).toBe(201);
    const wrong = await putManifest("five12", digestOf(randomBytes(4), "sha512"), manifest);
    expect(wrong.status).toBe(400);
    expect(await errorCode(wrong)).toBe("DIGEST_INVALID");
  });
});

describe("blobs belong to repositories", () => {
  it("a blob pushed to one repository is unknown under another, by HEAD and by GET", async () => {
    const digest = await pushBlob("owner", randomBytes(1000));
    expect(await status(`/v2/owner/blobs/${digest}`)).toBe(200);
    for (const method of ["HEAD", "GET"])
      expect(await status(`/v2/stranger/blobs/${digest}`, method)).toBe(404);
    const get = await call(`/v2/stranger/blobs/${digest}`);
    expect(await errorCode(get)).toBe("BLOB_UNKNOWN");
  });

  it("a manifest may not name a blob of another repository", async () => {
    const manifest = await imageManifest("lender");
    const response = await putManifest("borrower", "x", manifest);
    expect(response.status).toBe(404);
    expect(await errorCode(response)).toBe("MANIFEST_BLOB_UNKNOWN");
  });

  it("mounts only from a repository that holds the blob; otherwise an upload session (202)", async () => {
    const digest = await pushBlob("mount-a", randomBytes(700));
    const elsewhere = await call(`/v2/mount-b/blobs/uploads/?mount=${digest}&from=mount-empty`, {
      method: "POST",
    });
    expect(elsewhere.status).toBe(202);
    const unnamed = await call(`/v2/mount-b/blobs/uploads/?mount=${digest}`, { method: "POST" });
    expect(unnamed.status).toBe(202);
    expect(await status(`/v2/mount-b/blobs/${digest}`)).toBe(404);
    const mounted = await call(`/v2/mount-b/blobs/uploads/?mount=${digest}&from=mount-a`, { method: "POST" });
    expect(mounted.status).toBe(201);
    expect(await status(`/v2/mount-b/blobs/${digest}`)).toBe(200);
  });

  it("a mount needs pull access to from=: a token without it gets an upload session instead", async () => {
    const users = new Map([["bob", bcrypt.hashSync("bob-pushes", 4)]]);
    const auth = new Authenticator({
      mode: "token",
      users,
      pushUsers: new Set(["bob"]),
      anonymousPull: false,
    });
    const guarded = await startRegistryServer(store, { listen: "127.0.0.1:0", auth, allowPush: true });
    try {
      const token = async (...scopes: string[]): Promise<string> => {
        const query = scopes.map((scope) => `scope=${encodeURIComponent(scope)}`).join("&");
        const response = await call(
          `/token?service=airlock&${query}`,
          {
            headers: { Authorization: `Basic ${Buffer.from("bob:bob-pushes").toString("base64")}` },
          },
          guarded,
        );
        return ((await response.json()) as { token: string }).token;
      };
      const source = await token("repository:secret:pull,push");
      const data = randomBytes(300);
      const pushed = digestOf(data);
      const upload = await call(
        `/v2/secret/blobs/uploads/?digest=${pushed}`,
        {
          method: "POST",
          body: data,
          headers: { Authorization: `Bearer ${source}` },
        },
        guarded,
      );
      expect(upload.status).toBe(201);
      const mountAs = async (jwt: string): Promise<number> =>
        (
          await call(
            `/v2/public/blobs/uploads/?mount=${pushed}&from=secret`,
            {
              method: "POST",
              headers: { Authorization: `Bearer ${jwt}` },
            },
            guarded,
          )
        ).status;
      expect(await mountAs(await token("repository:public:pull,push"))).toBe(202);
      expect(store.hasBlob("public", pushed)).toBe(false);
      expect(await mountAs(await token("repository:public:pull,push", "repository:secret:pull"))).toBe(201);
      expect(store.hasBlob("public", pushed)).toBe(true);
    } finally {
      await guarded.close();
    }
  });

  it("DELETE unlinks from that repository only, never 403 for another's use; gc takes the bytes when none links them", async () => {
    const manifest = await imageManifest("keeper");
    expect((await putManifest("keeper", "1", manifest)).status).toBe(201);
    const layer = (JSON.parse(manifest.toString()) as { layers: { digest: Digest }[] }).layers[0]!.digest;
    expect(
      (await call(`/v2/sharer/blobs/uploads/?mount=${layer}&from=keeper`, { method: "POST" })).status,
    ).toBe(201);
    const own = await call(`/v2/keeper/blobs/${layer}`, { method: "DELETE" });
    expect(own.status).toBe(403);
    expect(await errorCode(own)).toBe("DENIED");
    expect((await call(`/v2/sharer/blobs/${layer}`, { method: "DELETE" })).status).toBe(202);
    expect(await status(`/v2/sharer/blobs/${layer}`)).toBe(404);
    expect(await status(`/v2/keeper/blobs/${layer}`)).toBe(200);
    const again = await call(`/v2/sharer/blobs/${layer}`, { method: "DELETE" });
    expect(await errorCode(again)).toBe("BLOB_UNKNOWN");

    const lone = await pushBlob("lone-a", randomBytes(400));
    expect(
      (await call(`/v2/lone-b/blobs/uploads/?mount=${lone}&from=lone-a`, { method: "POST" })).status,
    ).toBe(201);
    expect((await call(`/v2/lone-a/blobs/${lone}`, { method: "DELETE" })).status).toBe(202);
    expect((await store.gc()).removed.map((blob) => blob.digest)).not.toContain(lone);
    expect(await status(`/v2/lone-b/blobs/${lone}`)).toBe(200);
    expect((await call(`/v2/lone-b/blobs/${lone}`, { method: "DELETE" })).status).toBe(202);
    expect((await store.gc()).removed.map((blob) => blob.digest)).toContain(lone);
    expect(await store.blobs.stat(lone)).toBeUndefined();
    expect(await store.blobs.stat(layer)).toBeDefined();
  });

  it("an imported bundle's blobs are served under their own repositories, and only there", async () => {
    await importBundle(store, [bundle]);
    for (const image of metadata.images) {
      const { repository } = parseReference(image.ref);
      const top = await call(`/v2/${repository}/manifests/${image.digest}`);
      expect(top.status, image.ref).toBe(200);
      const doc = (await top.json()) as { manifests?: { digest: Digest }[]; layers?: { digest: Digest }[] };
      const child = doc.manifests?.[0]?.digest ?? doc.layers![0]!.digest;
      expect(await status(`/v2/${repository}/blobs/${child}`), image.ref).toBe(200);
      expect(await status(`/v2/not-${repository}/blobs/${child}`), image.ref).toBe(404);
    }
    expect((await store.fsck()).ok).toBe(true);
  });
});

describe("non-distributable layers", () => {
  it.each([
    [
      "a nondistributable media type",
      { mediaType: "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" },
    ],
    ["urls", { mediaType: MediaType.OciLayerGzip, urls: ["https://example.invalid/layer.tar.gz"] }],
  ])(
    "a manifest whose layer has %s is accepted without the blob, and fsck stays clean",
    async (_what, layer) => {
      const config = Buffer.from(JSON.stringify({ architecture: "amd64", os: "windows" }));
      const absent = { ...layer, digest: digestOf(randomBytes(32)), size: 12345 };
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: MediaType.OciManifest,
          config: {
            mediaType: MediaType.OciConfig,
            digest: await pushBlob("foreign", config),
            size: config.byteLength,
          },
          layers: [absent],
        }),
      );
      const response = await putManifest("foreign", "win", manifest);
      expect(response.status).toBe(201);
      expect(await status(`/v2/foreign/manifests/win`)).toBe(200);
      expect((await store.fsck()).missing).toEqual([]);
    },
  );
});

describe("status codes from distribution's table", () => {
  it.each(["-1", "abc", "1.5", "0x10", "1e2"])(
    "tags/list and _catalog with n=%j are 400 PAGINATION_NUMBER_INVALID",
    async (n) => {
      await pushBlob("paged", randomBytes(10));
      expect((await putManifest("paged", "1", await imageManifest("paged"))).status).toBe(201);
      for (const path of [`/v2/paged/tags/list?n=${n}`, `/v2/_catalog?n=${n}`]) {
        const response = await call(path);
        expect(response.status, path).toBe(400);
        expect(await errorCode(response)).toBe("PAGINATION_NUMBER_INVALID");
      }
    },
  );

  it("a method a route lacks is 405 UNSUPPORTED, with Allow", async () => {
    const response = await call("/v2/paged/tags/list", { method: "DELETE" });
    expect(response.status).toBe(405);
    expect(await errorCode(response)).toBe("UNSUPPORTED");
    expect(response.headers.get("allow")).toBe("GET, HEAD");
  });
});

describe("malformed % escapes", () => {
  /** Sent as is: fetch would not alter these, but a raw request makes sure. */
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
    ["GET", "/v2/app/manifests/%E0%A4%A"],
    ["GET", "/v2/app/blobs/%zz"],
    ["PATCH", "/v2/app/blobs/uploads/%"],
    ["GET", "/v2/app/referrers/%C0"],
  ])("%s %s → 400 NAME_INVALID", async (method, path) => {
    expect(await raw(method, path)).toEqual({ status: 400, code: "NAME_INVALID" });
  });
});
