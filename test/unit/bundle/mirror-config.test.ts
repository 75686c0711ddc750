import { describe, expect, it } from "vitest";
import { mirrorClientConfig, type MirrorResult } from "../../../bundle/index.js";

const result: MirrorResult = {
  source: "x.airlock.tar",
  target: "harbor.site:5000/palette",
  dryRun: false,
  bytes: 0,
  failed: 1,
  durationMs: 1,
  images: [
    {
      source: "hubble/msgbroker:4.5.0",
      target: "harbor.site:5000/palette/hubble/msgbroker:4.5.0",
      digest: `sha256:${"a".repeat(64)}`,
      status: "copied",
      blobs: { present: 0, mounted: 0, uploaded: 2 },
      bytesSent: 10,
    },
    {
      source: "hubble/broken:1",
      target: "harbor.site:5000/palette/hubble/broken:1",
      digest: `sha256:${"b".repeat(64)}`,
      status: "failed",
      blobs: { present: 0, mounted: 0, uploaded: 0 },
      bytesSent: 0,
    },
  ],
};

describe("mirrorClientConfig", () => {
  it("maps mirrored refs with digests (failed ones left out), and points k3s and containerd at the prefix", () => {
    const files = mirrorClientConfig(result, {
      host: "harbor.site:5000",
      prefix: "palette",
      caFile: "/etc/airlock/site-ca.crt",
      mirrorFor: ["docker.io", "registry.airlock.local:5443"],
    });
    expect(JSON.parse(files.get("mirror-map.json")!)).toEqual({
      "hubble/msgbroker:4.5.0": `harbor.site:5000/palette/hubble/msgbroker:4.5.0@sha256:${"a".repeat(64)}`,
    });
    expect(files.get("registries.yaml")).toBe(
      [
        "mirrors:",
        '  "docker.io":',
        "    endpoint:",
        '      - "https://harbor.site:5000"',
        "    rewrite:",
        '      "^(.*)$": "palette/$1"',
        '  "registry.airlock.local:5443":',
        "    endpoint:",
        '      - "https://harbor.site:5000"',
        "    rewrite:",
        '      "^(.*)$": "palette/$1"',
        "configs:",
        '  "harbor.site:5000":',
        "    tls:",
        '      ca_file: "/etc/airlock/site-ca.crt"',
        "",
      ].join("\n"),
    );
    expect(files.get("certs.d/docker.io/hosts.toml")).toBe(
      [
        'server = "https://registry-1.docker.io"',
        "",
        '[host."https://harbor.site:5000/v2/palette"]',
        '  capabilities = ["pull", "resolve"]',
        "  override_path = true",
        '  ca = "/etc/airlock/site-ca.crt"',
        "",
      ].join("\n"),
    );
    expect(files.get("certs.d/registry.airlock.local:5443/hosts.toml")).toContain(
      'server = "https://registry.airlock.local:5443"',
    );
  });

  it("without a prefix: no rewrite and no path override; plain HTTP when asked", () => {
    const files = mirrorClientConfig(result, {
      host: "zot:5000",
      prefix: "",
      insecureHttp: true,
      mirrorFor: ["docker.io"],
    });
    expect(files.get("registries.yaml")).not.toContain("rewrite");
    expect(files.get("registries.yaml")).toContain('"http://zot:5000"');
    expect(files.get("certs.d/docker.io/hosts.toml")).not.toContain("override_path");
    expect(files.get("certs.d/docker.io/hosts.toml")).toContain('[host."http://zot:5000"]');
  });
});
