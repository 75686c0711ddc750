import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, it } from "vitest";
import { bundleSpecJsonSchema, loadBundleSpec, parseBundleSpec } from "../../../bundle/spec.js";
import { AirlockError } from "../../../registry/oci/index.js";

const FILE = "release/bundle.yaml";
const DIGEST = `sha256:${"ab".repeat(32)}`;
const SHA256_HEX = "cd".repeat(32);

function yaml(...lines: string[]): string {
  return `${lines.join("\n")}\n`;
}

function head(): string[] {
  return ["name: mgmt", "version: 4.5.0"];
}

/** The error `parseBundleSpec` throws for `text`; fails the test when it accepts the text. */
function rejection(text: string): AirlockError {
  try {
    parseBundleSpec(text, FILE);
  } catch (error) {
    if (error instanceof AirlockError) return error;
    throw error;
  }
  throw new Error("the spec was accepted");
}

/** Expects SPEC_INVALID at `where` (line:col) whose message starts with the line `firstLine`. */
function expectRejected(text: string, where: string, firstLine: string | RegExp): AirlockError {
  const error = rejection(text);
  expect(error).toMatchObject({ code: "SPEC_INVALID", where: `${FILE}:${where}`, exitCode: 2 });
  if (typeof firstLine === "string") expect(error.message.split("\n")[0]).toBe(firstLine);
  else expect(error.message.split("\n")[0]).toMatch(firstLine);
  return error;
}

describe("parseBundleSpec: valid documents", () => {
  it("parses a full document, resolving every path against the spec's directory", () => {
    const spec = parseBundleSpec(
      yaml(
        "name: mgmt",
        "version: 4.5.0",
        'upgradeFrom: ">=4.4.0 <4.5.0"',
        "created: 2026-11-01T00:00:00Z",
        "images:",
        "  - ref: hubble/msgbroker:4.5.0",
        "    source: oci:./images/layout:msgbroker-4.5.0",
        `    digest: ${DIGEST}`,
        "    platforms: [linux/amd64, linux/arm64/v8]",
        "  - ref: hubble/tools:1.0",
        "    source: docker-archive:/srv/archives/tools.tar",
        "  - ref: hubble/console:4.5.0",
        "    source: docker://registry.example.com:5000/vendor/console:4.5.0",
        "    referrers: true",
        "packs:",
        "  - path: ./packs/observability",
        "manifests: ./manifests",
        "files:",
        "  - path: ./k3s/k3s",
        `    sha256: ${SHA256_HEX}`,
        "    mode: 0755",
        "  - path: ./k3s/k3s-airgap-images-amd64.tar.zst",
        "    name: k3s-images/airgap-amd64.tar.zst",
        "registries:",
        "  registry.example.com:5000:",
        "    caFile: ./certs/ca.pem",
        "    authFile: /run/secrets/auth.json",
      ),
      "/srv/release/bundle.yaml",
    );
    expect(spec).toEqual({
      name: "mgmt",
      version: "4.5.0",
      upgradeFrom: ">=4.4.0 <4.5.0",
      upgradeGates: [],
      created: "2026-11-01T00:00:00.000Z",
      images: [
        {
          ref: "hubble/msgbroker:4.5.0",
          source: { transport: "oci", path: "/srv/release/images/layout", ref: "msgbroker-4.5.0" },
          digest: DIGEST,
          platforms: [
            { os: "linux", architecture: "amd64" },
            { os: "linux", architecture: "arm64", variant: "v8" },
          ],
          referrers: false,
        },
        {
          ref: "hubble/tools:1.0",
          source: { transport: "docker-archive", path: "/srv/archives/tools.tar", ref: undefined },
          digest: undefined,
          platforms: undefined,
          referrers: false,
        },
        {
          ref: "hubble/console:4.5.0",
          source: {
            transport: "docker",
            registry: "registry.example.com:5000",
            repository: "vendor/console",
            ref: "4.5.0",
          },
          digest: undefined,
          platforms: undefined,
          referrers: true,
        },
      ],
      packs: [{ path: "/srv/release/packs/observability" }],
      manifests: "/srv/release/manifests",
      files: [
        { path: "/srv/release/k3s/k3s", name: "k3s", sha256: SHA256_HEX, mode: 0o755 },
        {
          path: "/srv/release/k3s/k3s-airgap-images-amd64.tar.zst",
          name: "k3s-images/airgap-amd64.tar.zst",
          sha256: undefined,
          mode: 0o644,
        },
      ],
      registries: {
        "registry.example.com:5000": {
          insecureHttp: false,
          caFile: "/srv/release/certs/ca.pem",
          insecureSkipTlsVerify: false,
          authFile: "/run/secrets/auth.json",
        },
      },
      specDir: "/srv/release",
    });
  });

  it("fills in defaults and anchors a relative spec file at the working directory", () => {
    const spec = parseBundleSpec(yaml("name: mgmt", "version: 4.5.0"), FILE);
    expect(spec).toEqual({
      name: "mgmt",
      version: "4.5.0",
      upgradeFrom: undefined,
      upgradeGates: [],
      created: undefined,
      images: [],
      packs: [],
      manifests: undefined,
      files: [],
      registries: {},
      specDir: resolve("release"),
    });
  });

  it.each([
    ["oci:layout", { transport: "oci", path: "/b/layout", ref: undefined }],
    ["oci:./layout:msgbroker-4.5.0", { transport: "oci", path: "/b/layout", ref: "msgbroker-4.5.0" }],
    ["oci-archive:../x.tar:hubble/x:1.0", { transport: "oci-archive", path: "/x.tar", ref: "hubble/x:1.0" }],
    [
      "docker-archive:/a/x.tar:hubble/x:1.0",
      { transport: "docker-archive", path: "/a/x.tar", ref: "hubble/x:1.0" },
    ],
    ["docker-archive:x.tar:@1", { transport: "docker-archive", path: "/b/x.tar", ref: "@1" }],
    [
      "docker://localhost:5000/hubble/x:1.0",
      { transport: "docker", registry: "localhost:5000", repository: "hubble/x", ref: "1.0" },
    ],
    [
      `docker://registry.example.com/a/b/c@${DIGEST}`,
      { transport: "docker", registry: "registry.example.com", repository: "a/b/c", ref: DIGEST },
    ],
    [
      "docker://127.0.0.1:5000/x:latest",
      { transport: "docker", registry: "127.0.0.1:5000", repository: "x", ref: "latest" },
    ],
  ])("reads the image source %s", (source, expected) => {
    const spec = parseBundleSpec(
      yaml(...head(), "images:", "  - ref: hubble/x:1.0", `    source: "${source}"`),
      "/b/bundle.yaml",
    );
    expect(spec.images[0]?.source).toEqual(expected);
  });

  it.each([
    ["0755", 0o755],
    ["0o755", 0o755],
    ["755", 0o755],
    ['"0755"', 0o755],
    ["0644", 0o644],
    ["0o644", 0o644],
    ['"0644"', 0o644],
  ])("reads mode: %s", (mode, expected) => {
    const spec = parseBundleSpec(yaml(...head(), "files:", "  - path: k3s", `    mode: ${mode}`), FILE);
    expect(spec.files[0]?.mode).toBe(expected);
  });

  it("accepts strict semver with pre-release and build metadata, and writes created in UTC", () => {
    const spec = parseBundleSpec(
      yaml("name: mgmt", "version: 4.5.0-rc.1+build.7", "created: 2026-11-01T02:00:00+02:00"),
      FILE,
    );
    expect(spec.version).toBe("4.5.0-rc.1+build.7");
    expect(spec.created).toBe("2026-11-01T00:00:00.000Z");
  });
});

describe("parseBundleSpec: errors name the field and its line:col", () => {
  it("points a missing name at the map that lacks it", () => {
    const error = expectRejected(
      yaml("# the release", "version: 4.5.0"),
      "2:1",
      "name: required field is missing",
    );
    expect(error.hint).toMatch(/lowercase/);
  });

  it("points a missing required image field at that image's map", () => {
    expectRejected(
      yaml(...head(), "images:", "  - ref: hubble/x:1.0", "    source: oci:l", "  - ref: hubble/y:1.0"),
      "6:5",
      "images[1].source: required field is missing",
    );
  });

  it("rejects a version that is not strict semver", () => {
    expectRejected(
      yaml("name: mgmt", "version: v4.5.0"),
      "2:10",
      'version: not a semantic version: "v4.5.0"',
    );
    expectRejected(yaml("name: mgmt", "version: 4.5"), "2:10", "version: expected a string, got a number");
  });

  it("rejects a bad upgradeFrom range, and an empty one", () => {
    expectRejected(
      yaml(...head(), "upgradeFrom: 4.4.x.y"),
      "3:14",
      'upgradeFrom: not a semver range: "4.4.x.y"',
    );
    expectRejected(yaml(...head(), 'upgradeFrom: ""'), "3:14", 'upgradeFrom: not a semver range: ""');
  });

  it("rejects a created that is not an RFC 3339 timestamp", () => {
    expectRejected(
      yaml(...head(), "created: 2026-11-01 00:00"),
      "3:10",
      "created: expected an RFC 3339 timestamp",
    );
  });

  it("rejects a bad digest pin", () => {
    expectRejected(
      yaml(
        ...head(),
        "images:",
        "  - ref: hubble/x:1.0",
        "    source: oci:l",
        "  - ref: hubble/y:1.0",
        "    source: oci:l",
        "    digest: sha256:abc",
      ),
      "8:13",
      'images[1].digest: expected sha256:<64 hex>, got "sha256:abc"',
    );
  });

  it("rejects a bad platform and an empty platform list", () => {
    const error = expectRejected(
      yaml(
        ...head(),
        "images:",
        "  - ref: hubble/x:1.0",
        "    source: oci:l",
        "    platforms: [linux/amd64, linux]",
      ),
      "6:30",
      'images[0].platforms[1]: not a platform: "linux"',
    );
    expect(error.hint).toMatch(/os\/architecture/);
    expectRejected(
      yaml(...head(), "images:", "  - ref: hubble/x:1.0", "    source: oci:l", "    platforms: []"),
      "6:16",
      "images[0].platforms: must list at least one platform",
    );
  });

  it("points an unknown key at the key, naming the keys allowed there", () => {
    expectRejected(
      yaml(...head(), "images:", "  - ref: hubble/x:1.0", "    source: oci:l", "    tag: latest"),
      "6:5",
      "images[0].tag: unknown key (allowed here: ref, source, digest, platforms, referrers)",
    );
    expectRejected(yaml(...head(), "image: []"), "3:1", /^image: unknown key/);
  });

  it("points a duplicate ref at its second occurrence", () => {
    expectRejected(
      yaml(
        ...head(),
        "images:",
        "  - ref: hubble/x:1.0",
        "    source: oci:a",
        "  - ref: hubble/x:1.0",
        "    source: oci:b",
      ),
      "6:10",
      'images[1].ref: duplicate ref "hubble/x:1.0", already images[0].ref',
    );
  });

  it("rejects a ref that names a registry host, carries a digest, or has no tag", () => {
    const images = (ref: string): string =>
      yaml(...head(), "images:", `  - ref: ${ref}`, "    source: oci:l");
    const error = expectRejected(
      images("registry.example.com/hubble/x:1.0"),
      "4:10",
      'images[0].ref: "registry.example.com/hubble/x:1.0" names registry registry.example.com; give only repository:tag',
    );
    expect(error.hint).toMatch(/repository:tag/);
    expectRejected(images("localhost:5000/x:1.0"), "4:10", /names registry localhost:5000/);
    expectRejected(images(`hubble/x:1.0@${DIGEST}`), "4:10", /carries a digest/);
    expectRejected(images("hubble/x"), "4:10", 'images[0].ref: "hubble/x" has no tag');
  });

  it("rejects an unsupported transport with a hint that lists the supported ones", () => {
    const error = expectRejected(
      yaml(...head(), "images:", "  - ref: hubble/x:1.0", "    source: containers-storage:hubble/x:1.0"),
      "5:13",
      'images[0].source: unsupported image source "containers-storage:hubble/x:1.0"',
    );
    expect(error.hint).toContain("oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF]");
    expect(error.hint).toContain("docker://HOST[:PORT]/REPOSITORY:TAG");
    expect(error.hint).toContain("paths containing ':'");
  });

  it.each([
    [
      "docker://hubble/x:1.0",
      'images[0].source: "docker://hubble/x:1.0" names no registry host; write docker://HOST[:PORT]/REPOSITORY:TAG',
    ],
    [
      "docker://localhost:5000/hubble/x",
      'images[0].source: "docker://localhost:5000/hubble/x" names no tag or digest',
    ],
    [
      `docker://localhost:5000/hubble/x:1.0@${DIGEST}`,
      `images[0].source: "docker://localhost:5000/hubble/x:1.0@${DIGEST}" names both a tag and a digest; give one (pin a tag with digest:)`,
    ],
    [
      "docker://localhost:5000/Hubble/x:1.0",
      /^images\[0\]\.source: invalid image reference .*repository "Hubble\/x"/,
    ],
    ["docker://localhost:5000/x@sha256:12", /^images\[0\]\.source: invalid image reference .*digest/],
  ])("rejects the registry source %s", (source, message) => {
    const error = expectRejected(
      yaml(...head(), "images:", "  - ref: hubble/x:1.0", `    source: "${source}"`),
      "5:13",
      message,
    );
    expect(error.hint).toContain("docker://HOST[:PORT]/REPOSITORY:TAG");
  });

  it("rejects referrers: true on a source that cannot list referrers", () => {
    const error = expectRejected(
      yaml(...head(), "images:", "  - ref: hubble/x:1.0", "    source: oci:l", "    referrers: true"),
      "6:16",
      "images[0].referrers: referrers: true needs a docker:// source, not oci:",
    );
    expect(error.hint).toContain("referrers API");
  });

  it.each([
    ["oci:", 'images[0].source: image source "oci:" names no path'],
    [
      "oci-archive:x.tar:",
      "images[0].source: image source \"oci-archive:x.tar:\" ends in ':' with no reference",
    ],
    ["layout", 'images[0].source: unsupported image source "layout"'],
  ])("rejects the malformed source %s", (source, message) => {
    expectRejected(
      yaml(...head(), "images:", "  - ref: hubble/x:1.0", `    source: "${source}"`),
      "5:13",
      message,
    );
  });

  it("rejects a file name that climbs out of bin/", () => {
    expectRejected(
      yaml(...head(), "files:", "  - path: ./k3s", "    name: ../k3s"),
      "5:11",
      'files[0].name: "../k3s" is not a relative path of safe segments',
    );
    expectRejected(
      yaml(...head(), "files:", "  - path: ./k3s", "    name: /usr/bin/k3s"),
      "5:11",
      'files[0].name: "/usr/bin/k3s" is not a relative path of safe segments',
    );
  });

  it("rejects a file whose own name would make an unsafe entry name", () => {
    expectRejected(
      yaml(...head(), "files:", "  - path: ./k3s v1.31"),
      "4:11",
      'files[0].path: its file name "k3s v1.31" is not a safe entry name; set name:',
    );
  });

  it("rejects modes other than 0644 and 0755", () => {
    expectRejected(
      yaml(...head(), "files:", "  - path: ./k3s", "    mode: 0777"),
      "5:11",
      "files[0].mode: expected 0644 or 0755",
    );
  });

  it("rejects a bad sha256 pin", () => {
    expectRejected(
      yaml(...head(), "files:", "  - path: ./k3s", `    sha256: sha256:${SHA256_HEX}`),
      "5:13",
      "files[0].sha256: expected 64 lowercase hex characters",
    );
  });

  it("rejects files that land on the same entry, pointing at the field that named it", () => {
    expectRejected(
      yaml(...head(), "files:", "  - path: ./a/k3s", "  - path: ./b/k3s"),
      "5:11",
      "files[1].path: duplicate entry bin/k3s, already files[0]",
    );
    expectRejected(
      yaml(...head(), "files:", "  - path: ./k3s", "  - path: ./other", "    name: k3s"),
      "6:11",
      "files[1].name: duplicate entry bin/k3s, already files[0]",
    );
    expectRejected(
      yaml(...head(), "files:", "  - path: ./k3s", "  - path: ./images.tar", "    name: k3s/images.tar"),
      "6:11",
      "files[1].name: entry bin/k3s/images.tar would sit inside bin/k3s, which is a file",
    );
  });

  it("rejects two packs naming the same directory", () => {
    expectRejected(
      yaml(...head(), "packs:", "  - path: ./packs/a", "  - path: packs/a/"),
      "5:11",
      'packs[1].path: duplicate pack "packs/a/", the same directory as packs[0].path',
    );
  });

  it("reports a YAML syntax error at its position", () => {
    expectRejected(yaml(...head(), "name: other"), "3:1", "YAML syntax: Map keys must be unique");
  });

  it("rejects a document whose aliases expand without bound", () => {
    const levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"];
    for (let level = 1; level < 8; level++) {
      levels.push(
        `a${level}: &a${level} [${Array(10)
          .fill(level === 1 ? "*a" : `*a${level - 1}`)
          .join(", ")}]`,
      );
    }
    const error = rejection(yaml(...levels));
    expect(error).toMatchObject({ code: "SPEC_INVALID", where: FILE, exitCode: 2 });
    expect(error.message).toMatch(/^YAML: Excessive alias count/);
  });

  it("rejects a document that is not a mapping", () => {
    expectRejected("", "1:1", "expected a mapping, got an empty value");
    expectRejected(yaml("- name: mgmt"), "1:1", "expected a mapping, got a list");
  });

  it("names the first problem in the document in where, and lists the others after it", () => {
    const error = expectRejected(
      yaml("version: 4", "name: Mgmt", "files:", "  - path: ./k3s", "    mode: 0777"),
      "1:10",
      "version: expected a string, got a number",
    );
    expect(error.message.split("\n").slice(1)).toEqual([
      `${FILE}:2:7: name: must be lowercase letters, digits and '-', starting with a letter or digit`,
      `${FILE}:5:11: files[0].mode: expected 0644 or 0755`,
    ]);
  });
});

describe("parseBundleSpec: registries:", () => {
  const withRegistry = (...entry: string[]): string =>
    yaml(
      ...head(),
      "images:",
      "  - ref: hubble/x:1.0",
      "    source: docker://localhost:5000/hubble/x:1.0",
      "registries:",
      ...entry,
    );

  it("reads insecureHttp, and resolves caFile and authFile against the spec's directory", () => {
    const spec = parseBundleSpec(
      withRegistry("  localhost:5000:", "    insecureHttp: true"),
      "/b/bundle.yaml",
    );
    expect(spec.registries).toEqual({
      "localhost:5000": {
        insecureHttp: true,
        caFile: undefined,
        insecureSkipTlsVerify: false,
        authFile: undefined,
      },
    });
    const tls = parseBundleSpec(
      withRegistry("  localhost:5000:", "    caFile: ca.pem", "    authFile: ../auth.json"),
      "/b/c/bundle.yaml",
    );
    expect(tls.registries["localhost:5000"]).toMatchObject({
      caFile: "/b/c/ca.pem",
      authFile: "/b/auth.json",
    });
  });

  it("points an entry no source uses at its key, listing the hosts sources name", () => {
    const error = expectRejected(
      withRegistry("  localhost:5001:", "    insecureHttp: true"),
      "7:3",
      'registries["localhost:5001"]: no image\'s docker:// source names localhost:5001',
    );
    expect(error.hint).toContain("sources name: localhost:5000");
  });

  it("rejects a key that is not a host[:port]", () => {
    const error = expectRejected(
      withRegistry("  not a host:", "    insecureHttp: true"),
      "7:3",
      'registries["not a host"]: "not a host" is not a registry host[:port]',
    );
    expect(error.hint).toContain("host[:port]");
  });

  it("rejects plain HTTP together with TLS settings", () => {
    const error = expectRejected(
      withRegistry("  localhost:5000:", "    insecureHttp: true", "    caFile: ca.pem"),
      "8:19",
      'registries["localhost:5000"].insecureHttp: plain HTTP leaves no TLS for caFile to apply to',
    );
    expect(error.hint).toContain("cannot be combined");
  });

  it("points an unknown or mistyped setting at its line", () => {
    expectRejected(
      withRegistry("  localhost:5000:", "    insecure: true"),
      "8:5",
      'registries["localhost:5000"].insecure: unknown key (allowed here: insecureHttp, caFile, insecureSkipTlsVerify, authFile)',
    );
    expectRejected(
      withRegistry("  localhost:5000:", "    insecureHttp: yes please"),
      "8:19",
      'registries["localhost:5000"].insecureHttp: expected true or false, got a string',
    );
  });
});

describe("loadBundleSpec", () => {
  it("reads the file and resolves paths against its directory", async () => {
    const dir = await mkdtemp(join(tmpdir(), "airlock-spec-"));
    try {
      const file = join(dir, "bundle.yaml");
      await writeFile(file, yaml(...head(), "manifests: ./manifests"));
      const spec = await loadBundleSpec(file);
      expect(spec.specDir).toBe(dir);
      expect(spec.manifests).toBe(join(dir, "manifests"));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("reports a missing file as SPEC_NOT_FOUND", async () => {
    await expect(loadBundleSpec("/nonexistent/bundle.yaml")).rejects.toMatchObject({
      code: "SPEC_NOT_FOUND",
      where: "/nonexistent/bundle.yaml",
      exitCode: 2,
    });
  });
});

describe("bundle.schema.json", () => {
  it("is the committed output of bundleSpecJsonSchema (regenerate: npm run build && node scripts/write-bundle-schema.mjs)", async () => {
    const committed: unknown = JSON.parse(
      await readFile(new URL("../../../bundle/bundle.schema.json", import.meta.url), "utf8"),
    );
    expect(committed).toEqual(bundleSpecJsonSchema());
  });

  it("describes the input document: identified, strict, with optional lists", () => {
    const schema = bundleSpecJsonSchema();
    expect(schema).toMatchObject({
      $id: "https://airlock.dev/schemas/bundle.schema.json",
      type: "object",
      required: ["name", "version"],
      additionalProperties: false,
    });
  });
});
