/**
 * The containerd node's registry configuration: k3s's registries.yaml as containerd hosts.toml files
 * and pull credentials, the way k3s's agent translates it.
 */
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  NodeRegistries,
  hostsTomlFiles,
  parseRegistriesYaml,
  pullCredentials,
} from "../../../installer/cluster/node/index.js";
import { rejection } from "../../helpers/errors.js";

const YAML = `
mirrors:
  "registry.airlock.local:5443":
    endpoint:
      - "https://127.0.0.1:5443"
  docker.io:
    endpoint:
      - "https://mirror.site:5000/v2"
    rewrite:
      "^(.*)$": "airlock/$1"
configs:
  "127.0.0.1:5443":
    auth:
      username: puller
      password: "p:ss"
    tls:
      ca_file: /etc/airlock/ca.crt
      cert_file: /etc/airlock/client.crt
      key_file: /etc/airlock/client.key
  "mirror.site:5000":
    auth:
      auth: ${Buffer.from("site:word").toString("base64")}
  "direct.site":
    tls:
      ca_file: /etc/direct/ca.crt
`;

describe("registries.yaml on the containerd node", () => {
  it("gives each mirrored registry a hosts.toml naming its endpoints with their TLS files, no upstream fallback", () => {
    const files = hostsTomlFiles(parseRegistriesYaml(YAML));
    // Mirrored names, and every configured host (a pull may name an endpoint directly).
    expect([...files.keys()]).toEqual([
      "registry.airlock.local:5443",
      "docker.io",
      "127.0.0.1:5443",
      "mirror.site:5000",
      "direct.site",
    ]);
    const site = files.get("registry.airlock.local:5443")!;
    // The registry name itself is never dialled: it may not even resolve in the site.
    expect(site).toContain(
      'server = "https://127.0.0.1:5443/v2"\noverride_path = true\nca = ["/etc/airlock/ca.crt"]',
    );
    expect(site).not.toContain("https://registry.airlock.local");
    expect(site).toContain('[host."https://127.0.0.1:5443/v2"]');
    expect(site).toContain('  capabilities = ["pull", "resolve"]');
    expect(site).toContain("  override_path = true");
    expect(site).toContain('  ca = ["/etc/airlock/ca.crt"]');
    expect(site).toContain('  client = [["/etc/airlock/client.crt", "/etc/airlock/client.key"]]');
    expect(site).not.toContain("skip_verify");
    // A prefix rewrite becomes the endpoint's path.
    expect(files.get("docker.io")).toContain('[host."https://mirror.site:5000/v2/airlock"]');
    expect(files.get("direct.site")).toContain('server = "https://direct.site"\nca = ["/etc/direct/ca.crt"]');
  });

  it("takes pull credentials from the mirror endpoint's config: username/password, or auth as base64", () => {
    const config = parseRegistriesYaml(YAML);
    expect(pullCredentials(config, "registry.airlock.local:5443/hubble/msgbroker:4.5.0")).toBe("puller:p:ss");
    expect(pullCredentials(config, "nginx:1")).toBe("site:word");
    expect(pullCredentials(config, "direct.site/a/b:1")).toBeUndefined();
  });

  it("refuses a rewrite containerd 1.6 cannot follow, and a malformed file, naming where", async () => {
    const rewrite = parseRegistriesYaml(
      'mirrors:\n  docker.io:\n    endpoint: ["https://m:5000"]\n    rewrite:\n      "^rancher/(.*)": "mirrored/$1"\n',
    );
    expect(() => hostsTomlFiles(rewrite)).toThrow(
      expect.objectContaining({ code: "NODE_REWRITE_UNSUPPORTED" }),
    );
    const error = await rejection(
      Promise.resolve().then(() => parseRegistriesYaml("mirrors:\n  x:\n    endpoints: []\n")),
    );
    expect(error.code).toBe("NODE_REGISTRIES_INVALID");
    expect(error.message).toContain("mirrors.x");
  });
});

describe("a node's registries.yaml file under its host root", () => {
  it("is read at the first pull, its paths taken under the root, and again once it changed", async () => {
    const root = await mkdtemp(join(tmpdir(), "airlock-node-registries-"));
    try {
      const hostsDir = join(root, "certs.d");
      const registries = new NodeRegistries(hostsDir, {
        registriesFile: "/etc/rancher/k3s/registries.yaml",
        hostRoot: join(root, "host"),
      });
      // Not written yet (k3s is not installed): the pull fails, typed, and a later one reads it.
      const missing = await rejection(registries.current());
      expect(missing).toMatchObject({ code: "NODE_REGISTRIES_INVALID" });
      expect(missing.message).toContain(join(root, "host/etc/rancher/k3s/registries.yaml"));

      await mkdir(join(root, "host/etc/rancher/k3s"), { recursive: true });
      await writeFile(join(root, "host/etc/rancher/k3s/registries.yaml"), YAML);
      const config = await registries.current();
      expect(config.configs["127.0.0.1:5443"]?.tls?.ca_file).toBe(join(root, "host/etc/airlock/ca.crt"));
      expect(pullCredentials(config, "registry.airlock.local:5443/hubble/msgbroker:4.5.0")).toBe(
        "puller:p:ss",
      );
      expect(await readdir(hostsDir)).toEqual(
        expect.arrayContaining(["registry.airlock.local:5443", "docker.io"]),
      );
      expect(await readFile(join(hostsDir, "registry.airlock.local:5443/hosts.toml"), "utf8")).toContain(
        `ca = [${JSON.stringify(join(root, "host/etc/airlock/ca.crt"))}]`,
      );

      await writeFile(
        join(root, "host/etc/rancher/k3s/registries.yaml"),
        'mirrors:\n  "127.0.0.1:6000":\n    endpoint: ["https://127.0.0.1:6000"]\n',
      );
      const changed = await registries.current();
      expect(Object.keys(changed.mirrors)).toEqual(["127.0.0.1:6000"]);
      // The hosts.toml files of registries no longer named are gone.
      expect(await readdir(hostsDir)).toEqual(["127.0.0.1:6000"]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
