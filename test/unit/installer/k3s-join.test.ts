/**
 * The pieces of joining a node: the server's registry configuration read back from what installK3s
 * wrote (and refused when edited), the join token from a server with its own data dir, and the k3s
 * files streamed out of a verified bundle (kept only when the bundle verifies).
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, indexTarFile } from "../../../bundle/index.js";
import { HostRoot } from "../../../installer/host/index.js";
import {
  K3S_CONFIG,
  K3S_REGISTRIES,
  K3S_REGISTRY_CA,
  agentRegistries,
  decodeJoinToken,
  extractK3sFiles,
  registriesYaml,
  serverJoinToken,
  serverRegistry,
} from "../../../installer/k3s/index.js";
import { rejection } from "../../helpers/errors.js";

const CA = "-----BEGIN CERTIFICATE-----\nsite\n-----END CERTIFICATE-----\n";
let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-k3s-join-"));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

async function serverHost(registries: string): Promise<HostRoot> {
  const host = new HostRoot(await mkdtemp(join(dir, "root-")));
  await host.writeFile(K3S_REGISTRIES, registries, 0o600);
  await host.writeFile(K3S_REGISTRY_CA, CA, 0o644);
  return host;
}

const written = registriesYaml({
  registry: "10.0.0.9:5443",
  mirrorFor: ["docker.io", "quay.io"],
  prefix: "site",
  caFile: K3S_REGISTRY_CA,
  username: "cluster-pull",
  password: "s3cret",
});

describe("serverRegistry", () => {
  it("reads back what registriesYaml wrote, so the agent's registries.yaml is the same bytes", async () => {
    const registry = await serverRegistry(await serverHost(written));
    expect(registry).toEqual({
      address: "10.0.0.9:5443",
      caPem: CA,
      username: "cluster-pull",
      password: "s3cret",
      mirrorFor: ["docker.io", "quay.io"],
      prefix: "site",
    });
    expect(agentRegistries(registry)).toBe(written);
  });

  it("refuses a registries.yaml edited by hand, and a host without one", async () => {
    const edited = written.replace("https://10.0.0.9:5443", "https://10.0.0.10:5443");
    const error = await rejection(serverRegistry(await serverHost(edited)));
    expect(error.code).toBe("K3S_REGISTRIES_UNKNOWN");
    expect(error.where).toBe(K3S_REGISTRIES);
    const empty = new HostRoot(await mkdtemp(join(dir, "root-")));
    expect((await rejection(serverRegistry(empty))).code).toBe("K3S_NOT_INSTALLED");
  });
});

describe("serverJoinToken", () => {
  it("reads the node token and CA from the data dir config.yaml names", async () => {
    const host = await serverHost(written);
    await host.writeFile(K3S_CONFIG, "node-name: s1\ndata-dir: /data/k3s\n", 0o600);
    await host.writeFile("/data/k3s/server/node-token", "K10abc::server:x\n", 0o600);
    await host.writeFile("/data/k3s/server/tls/server-ca.crt", CA, 0o644);
    const token = decodeJoinToken(await serverJoinToken(host, "https://10.0.0.1:6443"));
    expect(token).toMatchObject({ server: "https://10.0.0.1:6443", k3sToken: "K10abc::server:x" });
    expect(token.registry.prefix).toBe("site");
  });
});

describe("extractK3sFiles", () => {
  async function bundleWith(files: Record<string, string>): Promise<string> {
    const project = await mkdtemp(join(dir, "project-"));
    const entries = [];
    for (const [name, content] of Object.entries(files)) {
      await writeFile(join(project, name), content);
      entries.push(`  - path: ./${name}\n    name: ${name}\n`);
    }
    const spec = join(project, "bundle.yaml");
    await writeFile(
      spec,
      `name: mgmt\nversion: 1.0.0\ncreated: "2026-11-01T00:00:00Z"\nfiles:\n${entries.join("")}`,
    );
    const output = join(project, "out.airlock.tar");
    await buildBundle({ specFile: spec, output });
    return output;
  }

  it("streams bin/k3s and its image archives out of a verified bundle, and nothing else", async () => {
    const bundle = await bundleWith({
      k3s: "k3s binary",
      "k3s-airgap-images-amd64.tar.zst": "images",
      "helm-chart.tgz": "other",
    });
    const out = await mkdtemp(join(dir, "out-"));
    const files = await extractK3sFiles([bundle], out, {});
    expect(await readFile(files.binary, "utf8")).toBe("k3s binary");
    expect(files.imageArchives).toEqual([
      { name: "k3s-airgap-images-amd64.tar.zst", source: join(out, "k3s-airgap-images-amd64.tar.zst") },
    ]);
    expect((await readdir(out)).sort()).toEqual(["k3s", "k3s-airgap-images-amd64.tar.zst"]);
    expect(files.verified).toMatchObject({ name: "mgmt", version: "1.0.0" });
  });

  it("refuses a bundle without bin/k3s before reading on, and one whose bin/k3s is damaged", async () => {
    const out = await mkdtemp(join(dir, "out-"));
    const without = await bundleWith({ "helm-chart.tgz": "other" });
    expect((await rejection(extractK3sFiles([without], out, {}))).code).toBe("BUNDLE_K3S_MISSING");
    expect(await readdir(out)).toEqual([]);

    const bundle = await bundleWith({ k3s: "k3s binary" });
    const entry = (await indexTarFile(bundle)).get("bin/k3s")!;
    const bytes = await readFile(bundle);
    bytes[entry.dataOffset] = bytes[entry.dataOffset]! ^ 0xff;
    await writeFile(bundle, bytes);
    expect((await rejection(extractK3sFiles([bundle], out, {}))).code).toBe("BUNDLE_ENTRY_CORRUPT");
  });
});
