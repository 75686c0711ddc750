import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  AirlockError,
  Digester,
  MAX_MANIFEST_BYTES,
  MAX_REPOSITORY_LENGTH,
  MediaType,
  OCI_ERROR_CODES,
  childDescriptors,
  digestOf,
  errnoCode,
  formatPlatform,
  formatReference,
  isAirlockError,
  isDigest,
  isRegistryHost,
  parseDigest,
  parseManifest,
  parsePlatform,
  parseReference,
  platformMatches,
  sha256Hex,
  type Digest,
} from "../../../registry/oci/index.js";

const HEX64 = "0123456789abcdef".repeat(4);
const HEX128 = HEX64.repeat(2);
const D1: Digest = `sha256:${"a1".repeat(32)}`;
const D2: Digest = `sha256:${"b2".repeat(32)}`;
const D3: Digest = `sha256:${"c3".repeat(32)}`;

/** The AirlockError `fn` throws; fails the test when it returns or throws something else. */
function thrown(fn: () => unknown): AirlockError {
  try {
    fn();
  } catch (error) {
    if (error instanceof AirlockError) return error;
    throw error;
  }
  throw new Error("expected an AirlockError, but the call returned");
}

const bytes = (value: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(value));

function manifestDoc(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaType.OciManifest,
    config: { mediaType: MediaType.OciConfig, digest: D1, size: 120 },
    layers: [
      { mediaType: MediaType.OciLayerGzip, digest: D2, size: 3000 },
      { mediaType: MediaType.OciLayerGzip, digest: D3, size: 0 },
    ],
    ...overrides,
  };
}

function indexDoc(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    schemaVersion: 2,
    mediaType: MediaType.OciIndex,
    manifests: [
      {
        mediaType: MediaType.OciManifest,
        digest: D1,
        size: 500,
        platform: { os: "linux", architecture: "amd64" },
      },
      {
        mediaType: MediaType.OciManifest,
        digest: D2,
        size: 501,
        platform: { os: "linux", architecture: "arm64", variant: "v8" },
      },
    ],
    ...overrides,
  };
}

describe("parseReference", () => {
  it("splits registry host:port, nested repository, tag and digest", () => {
    const digest: Digest = `sha256:${HEX64}`;
    expect(parseReference(`localhost:5000/hubble/msgbroker:4.5.0@${digest}`)).toEqual({
      registry: "localhost:5000",
      repository: "hubble/msgbroker",
      tag: "4.5.0",
      digest,
    });
    expect(parseReference("registry.example.com:443/team/app:v1")).toEqual({
      registry: "registry.example.com:443",
      repository: "team/app",
      tag: "v1",
      digest: undefined,
    });
    expect(parseReference("[::1]:5000/app:v1")).toMatchObject({
      registry: "[::1]:5000",
      repository: "app",
      tag: "v1",
    });
  });

  it("recognises a registry only by a dot, a port or localhost in the first component", () => {
    expect(parseReference("localhost/app")).toMatchObject({ registry: "localhost", repository: "app" });
    expect(parseReference("quay.io/app")).toMatchObject({ registry: "quay.io", repository: "app" });
    expect(parseReference("library/app")).toMatchObject({ registry: undefined, repository: "library/app" });
  });

  it("defaults the tag to latest only when neither tag nor digest is given", () => {
    expect(parseReference("hubble/agent")).toEqual({
      registry: undefined,
      repository: "hubble/agent",
      tag: "latest",
      digest: undefined,
    });
    const byDigest = parseReference(`hubble/agent@sha256:${HEX64}`);
    expect(byDigest.tag).toBeUndefined();
    expect(byDigest.digest).toBe(`sha256:${HEX64}`);
    expect(parseReference(`hubble/agent@sha512:${HEX128}`).digest).toBe(`sha512:${HEX128}`);
  });

  it("does not take a registry port for a tag", () => {
    const ref = parseReference("localhost:5000/app");
    expect(ref).toMatchObject({ registry: "localhost:5000", repository: "app", tag: "latest" });
  });

  it("allows uppercase in tags and hosts, never in repositories", () => {
    expect(parseReference("Registry.Example.COM/app:V1.0-RC_1")).toMatchObject({
      registry: "Registry.Example.COM",
      tag: "V1.0-RC_1",
    });
    const error = thrown(() => parseReference("hubble/MsgBroker:1", "bundle.yaml:3:5"));
    expect(error).toMatchObject({ code: "REFERENCE_INVALID", where: "bundle.yaml:3:5" });
    expect(error.message).toContain('repository "hubble/MsgBroker"');
  });

  it.each([
    ["a path with ..", "hubble/../etc:1"],
    ["a doubled dot", "hubble/a..b:1"],
    ["a leading separator", "-app:1"],
    ["a trailing slash", "app/:1"],
    ["an empty component", "a//b"],
    ["an empty string", ""],
    ["a bad digest", "app@sha256:abc"],
    ["an uppercase digest", `app@sha256:${HEX64.toUpperCase()}`],
    ["a tag starting with a dot", "app:.v1"],
    ["a tag over 128 characters", `app:${"t".repeat(129)}`],
    ["a bad host", "bad_host.example.com:x/app"],
  ])("refuses %s", (_what, value) => {
    expect(thrown(() => parseReference(value)).code).toBe("REFERENCE_INVALID");
  });

  it("limits the repository to 255 characters and tags to 128", () => {
    const at = (n: number): string => "a".repeat(n);
    expect(MAX_REPOSITORY_LENGTH).toBe(255);
    expect(parseReference(`${at(255)}:${"t".repeat(128)}`).repository).toHaveLength(255);
    expect(thrown(() => parseReference(`${at(256)}:1`)).code).toBe("REFERENCE_INVALID");
    const nested = `${at(100)}/${at(100)}/${at(54)}`;
    expect(nested).toHaveLength(256);
    expect(thrown(() => parseReference(nested)).code).toBe("REFERENCE_INVALID");
  });

  it("tells a registry host[:port] as a reference's first component would name one", () => {
    for (const host of [
      "localhost",
      "localhost:5000",
      "registry.example.com",
      "127.0.0.1:5443",
      "[::1]:5000",
    ]) {
      expect(isRegistryHost(host), host).toBe(true);
    }
    for (const value of ["hubble", "http://x.io", "x.io/team", "not a host", "x.io:port", ""]) {
      expect(isRegistryHost(value), value).toBe(false);
    }
  });

  it("formats back to the same string", () => {
    for (const value of [
      "localhost:5000/hubble/msgbroker:4.5.0",
      `quay.io/x/y@sha256:${HEX64}`,
      `app:1@sha256:${HEX64}`,
      "app:latest",
    ]) {
      expect(formatReference(parseReference(value))).toBe(value);
    }
  });
});

describe("digests", () => {
  it("accepts sha256 with 64 and sha512 with 128 lowercase hex characters only", () => {
    expect(isDigest(`sha256:${HEX64}`)).toBe(true);
    expect(isDigest(`sha512:${HEX128}`)).toBe(true);
    for (const bad of [
      `sha256:${HEX64.slice(1)}`,
      `sha256:${HEX64}0`,
      `sha256:${HEX128}`,
      `sha512:${HEX64}`,
      `sha256:${HEX64.toUpperCase()}`,
      `sha256:${HEX64.slice(1)}g`,
      `md5:${HEX64.slice(0, 32)}`,
      `sha384:${HEX64}`,
      "sha256:",
      HEX64,
      ` sha256:${HEX64}`,
      `sha256:${HEX64}\n`,
      `sha256:../../${HEX64}`,
    ]) {
      expect(isDigest(bad), bad).toBe(false);
    }
  });

  it("parseDigest splits algorithm and hex, and throws DIGEST_INVALID with a where", () => {
    expect(parseDigest(`sha512:${HEX128}`)).toEqual({ algorithm: "sha512", hex: HEX128 });
    const error = thrown(() => parseDigest("sha256:xyz", "layers[2]"));
    expect(error).toMatchObject({ code: "DIGEST_INVALID", where: "layers[2]" });
    expect(error.hint).toBeDefined();
  });

  it("digestOf matches well-known values, and Digester matches digestOf across chunks", () => {
    expect(digestOf("")).toBe("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(digestOf("", "sha512")).toBe(
      "sha512:cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e",
    );
    const data = new Uint8Array(10_000).map((_, i) => (i * 31) % 251);
    for (const algorithm of ["sha256", "sha512"] as const) {
      const digester = new Digester(algorithm);
      for (let i = 0; i < data.length; i += 777) digester.update(data.subarray(i, i + 777));
      expect(digester.size).toBe(10_000);
      const digest = digester.digest();
      expect(digest).toBe(`${algorithm}:${createHash(algorithm).update(data).digest("hex")}`);
      expect(digest).toBe(digestOf(data, algorithm));
    }
  });

  it("sha256Hex returns bare hex and refuses sha512", () => {
    expect(sha256Hex(`sha256:${HEX64}`)).toBe(HEX64);
    expect(thrown(() => sha256Hex(`sha512:${HEX128}`)).code).toBe("DIGEST_UNSUPPORTED");
    expect(thrown(() => sha256Hex("sha256:zz")).code).toBe("DIGEST_INVALID");
  });
});

describe("parseManifest", () => {
  it("parses an OCI image manifest and lists config then layers as children", () => {
    const parsed = parseManifest(bytes(manifestDoc()));
    expect(parsed.kind).toBe("manifest");
    expect(parsed.mediaType).toBe(MediaType.OciManifest);
    expect(childDescriptors(parsed).map((d) => d.digest)).toEqual([D1, D2, D3]);
  });

  it("parses an OCI index and lists its manifests as children", () => {
    const parsed = parseManifest(bytes(indexDoc()), MediaType.OciIndex);
    expect(parsed).toMatchObject({ kind: "index", mediaType: MediaType.OciIndex });
    expect(childDescriptors(parsed).map((d) => d.digest)).toEqual([D1, D2]);
  });

  it("accepts Docker schema 2 manifests and manifest lists", () => {
    const docker = parseManifest(
      bytes(
        manifestDoc({
          mediaType: MediaType.DockerManifest,
          config: { mediaType: MediaType.DockerConfig, digest: D1, size: 10 },
          layers: [{ mediaType: MediaType.DockerLayerGzip, digest: D2, size: 20 }],
        }),
      ),
      MediaType.DockerManifest,
    );
    expect(docker).toMatchObject({ kind: "manifest", mediaType: MediaType.DockerManifest });
    const list = parseManifest(bytes(indexDoc({ mediaType: MediaType.DockerManifestList })));
    expect(list).toMatchObject({ kind: "index", mediaType: MediaType.DockerManifestList });
  });

  it("takes the media type from the declaration, or the shape, when the document omits it", () => {
    const bare = { ...manifestDoc(), mediaType: undefined };
    const bareIndex = { ...indexDoc(), mediaType: undefined };
    expect(parseManifest(bytes(bare)).mediaType).toBe(MediaType.OciManifest);
    expect(parseManifest(bytes(bareIndex))).toMatchObject({ kind: "index", mediaType: MediaType.OciIndex });
    expect(parseManifest(bytes(bareIndex), MediaType.DockerManifestList)).toMatchObject({
      kind: "index",
      mediaType: MediaType.DockerManifestList,
    });
    expect(parseManifest(bytes(bare), MediaType.DockerManifest).mediaType).toBe(MediaType.DockerManifest);
  });

  it("refuses a document whose mediaType differs from the declared one", () => {
    const error = thrown(() => parseManifest(bytes(manifestDoc()), MediaType.OciIndex, "app:1"));
    expect(error).toMatchObject({ code: "MANIFEST_INVALID", where: "app:1" });
    expect(error.message).toContain("differs");
  });

  it.each<[string, Record<string, unknown>]>([
    ["no config", { config: undefined }],
    ["no layers", { layers: undefined }],
    ["layers not an array", { layers: {} }],
    ["config without mediaType", { config: { digest: D1, size: 1 } }],
    [
      "config with an invalid digest",
      { config: { mediaType: MediaType.OciConfig, digest: "sha256:1", size: 1 } },
    ],
    ["a negative layer size", { layers: [{ mediaType: MediaType.OciLayer, digest: D2, size: -1 }] }],
    ["a fractional layer size", { layers: [{ mediaType: MediaType.OciLayer, digest: D2, size: 1.5 }] }],
    ["a string layer size", { layers: [{ mediaType: MediaType.OciLayer, digest: D2, size: "3" }] }],
    ["a null layer", { layers: [null] }],
    ["schemaVersion 1", { schemaVersion: 1 }],
    ["no schemaVersion", { schemaVersion: undefined }],
    ["an invalid subject", { subject: { mediaType: MediaType.OciManifest, digest: "nope", size: 1 } }],
    ["an unsupported media type", { mediaType: "application/json" }],
  ])("refuses a manifest with %s", (_what, overrides) => {
    expect(thrown(() => parseManifest(bytes(manifestDoc(overrides)))).code).toBe("MANIFEST_INVALID");
  });

  it("names the bad descriptor of an index", () => {
    const doc = indexDoc();
    (doc.manifests as Record<string, unknown>[])[1]!.digest = "sha256:short";
    const error = thrown(() => parseManifest(bytes(doc), undefined, "hubble/agent:1"));
    expect(error).toMatchObject({ code: "MANIFEST_INVALID", where: "hubble/agent:1 manifests[1]" });
    expect(thrown(() => parseManifest(bytes(indexDoc({ manifests: "x" })))).code).toBe("MANIFEST_INVALID");
  });

  it.each([
    ["bad JSON", new TextEncoder().encode('{"schemaVersion": 2,')],
    ["invalid UTF-8", Uint8Array.from([0x7b, 0xff, 0xfe, 0x7d])],
    ["a JSON array", bytes([manifestDoc()])],
    ["JSON null", bytes(null)],
    ["a JSON string", bytes("manifest")],
    ["no bytes", new Uint8Array(0)],
  ])("refuses %s", (_what, data) => {
    expect(thrown(() => parseManifest(data)).code).toBe("MANIFEST_INVALID");
  });

  it("accepts exactly 4 MiB and refuses one byte more", () => {
    expect(MAX_MANIFEST_BYTES).toBe(4 * 1024 * 1024);
    const base = bytes(manifestDoc({ annotations: { pad: "" } })).byteLength;
    const padded = (total: number): Uint8Array =>
      bytes(manifestDoc({ annotations: { pad: "x".repeat(total - base) } }));
    const atLimit = padded(MAX_MANIFEST_BYTES);
    expect(atLimit.byteLength).toBe(MAX_MANIFEST_BYTES);
    expect(parseManifest(atLimit).kind).toBe("manifest");
    const over = padded(MAX_MANIFEST_BYTES + 1);
    const error = thrown(() => parseManifest(over));
    expect(error.code).toBe("MANIFEST_INVALID");
    expect(error.message).toContain(String(MAX_MANIFEST_BYTES + 1));
  });
});

describe("platforms", () => {
  it("parses os/arch and os/arch/variant", () => {
    expect(parsePlatform("linux/amd64")).toEqual({ os: "linux", architecture: "amd64" });
    expect(parsePlatform("linux/arm64/v8")).toEqual({ os: "linux", architecture: "arm64", variant: "v8" });
    expect(formatPlatform(parsePlatform("linux/arm/v7"))).toBe("linux/arm/v7");
    expect(formatPlatform({ os: "windows", architecture: "amd64" })).toBe("windows/amd64");
  });

  it.each(["linux", "linux/amd64/v8/extra", "Linux/amd64", "linux//amd64", "", "linux/amd 64", "/amd64"])(
    "refuses %j with PLATFORM_INVALID",
    (value) => {
      const error = thrown(() => parsePlatform(value, "bundle.yaml:7:9"));
      expect(error).toMatchObject({ code: "PLATFORM_INVALID", where: "bundle.yaml:7:9" });
    },
  );

  it("matches os and architecture, and the variant only when one is wanted", () => {
    const arm64v8 = { os: "linux", architecture: "arm64", variant: "v8" };
    expect(platformMatches(arm64v8, { os: "linux", architecture: "arm64" })).toBe(true);
    expect(platformMatches(arm64v8, { os: "linux", architecture: "arm64", variant: "v8" })).toBe(true);
    expect(platformMatches(arm64v8, { os: "linux", architecture: "arm64", variant: "v9" })).toBe(false);
    expect(platformMatches({ os: "linux", architecture: "arm64" }, arm64v8)).toBe(false);
    expect(
      platformMatches({ os: "linux", architecture: "amd64" }, { os: "linux", architecture: "arm64" }),
    ).toBe(false);
    expect(
      platformMatches({ os: "windows", architecture: "amd64" }, { os: "linux", architecture: "amd64" }),
    ).toBe(false);
    expect(platformMatches(undefined, { os: "linux", architecture: "amd64" })).toBe(false);
  });
});

describe("AirlockError", () => {
  it("carries code, where, hint and its code's exit code, and serialises without undefined fields", () => {
    const cause = new Error("root cause");
    const error = new AirlockError("USAGE", "x failed", { where: "here", hint: "do y", cause });
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({
      name: "AirlockError",
      code: "USAGE",
      where: "here",
      hint: "do y",
      exitCode: 2,
    });
    expect(error.cause).toBe(cause);
    expect(JSON.parse(JSON.stringify(error))).toEqual({
      code: "USAGE",
      message: "x failed",
      where: "here",
      hint: "do y",
    });
    const plain = new AirlockError("STORE_EMPTY", "y");
    expect(plain.exitCode).toBe(1);
    expect(plain.toJSON()).toEqual({ code: "STORE_EMPTY", message: "y" });
    expect("cause" in plain).toBe(false);
  });

  it("isAirlockError checks the class and optionally the code or codes; errnoCode reads system codes", () => {
    const error = new AirlockError("STORE_LOCKED", "a");
    expect(isAirlockError(error)).toBe(true);
    expect(isAirlockError(error, "STORE_LOCKED")).toBe(true);
    expect(isAirlockError(error, "LOCK_HELD")).toBe(false);
    expect(isAirlockError(error, ["LOCK_HELD", "STORE_LOCKED"])).toBe(true);
    expect(isAirlockError(error, ["LOCK_HELD", "PKI_LOCKED"])).toBe(false);
    expect(isAirlockError(Object.assign(new Error("a"), { code: "STORE_LOCKED" }), "STORE_LOCKED")).toBe(
      false,
    );
    expect(errnoCode(Object.assign(new Error("full"), { code: "ENOSPC" }))).toBe("ENOSPC");
    expect(errnoCode({ code: 28 })).toBeUndefined();
    expect(errnoCode(null)).toBeUndefined();
    expect(errnoCode("ENOSPC")).toBeUndefined();
  });

  it("maps OCI error codes to the distribution spec's HTTP statuses", () => {
    expect(OCI_ERROR_CODES).toMatchObject({
      BLOB_UNKNOWN: 404,
      MANIFEST_UNKNOWN: 404,
      NAME_UNKNOWN: 404,
      DIGEST_INVALID: 400,
      UNAUTHORIZED: 401,
      DENIED: 403,
      UNSUPPORTED: 405,
      TOOMANYREQUESTS: 429,
    });
  });
});
