/**
 * k3s from the bundle under a temporary host root, with systemctl recorded: what lands where, with
 * which modes; what a re-run changes (nothing) and restarts; registries.yaml as the node reads it;
 * the readiness wait; join tokens and their CA pin.
 */
import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import type { ClusterClient, ClusterObject } from "../../../installer/cluster/index.js";
import {
  hostsTomlFiles,
  parseRegistriesYaml,
  pullCredentials,
} from "../../../installer/cluster/node/index.js";
import { HostRoot, Systemd, type CommandRunner } from "../../../installer/host/index.js";
import {
  K3S_BINARY,
  K3S_CONFIG,
  K3S_KUBECONFIG,
  K3S_REGISTRIES,
  K3S_REGISTRY_CA,
  caHashOf,
  createJoinToken,
  decodeJoinToken,
  encodeJoinToken,
  installK3s,
  k3sPaths,
  registriesYaml,
  verifyServerCa,
  waitForK3sServer,
  type JoinToken,
} from "../../../installer/k3s/index.js";
import { rejection } from "../../helpers/errors.js";

let dir: string;
let root: string;
let host: HostRoot;
let binary: string;
let images: string;
let calls: string[];
let active: Set<string>;
let caPem: string;
let caKey: string;

/** systemctl as a recording stand-in: `is-active` answers from what was started. */
const systemctl: CommandRunner = (command, args) => {
  calls.push([command, ...args].join(" "));
  const [verb, unit] = args;
  if (verb === "start" || verb === "restart") active.add(unit!);
  if (verb === "is-active" && !active.has(unit!)) return Promise.reject(new Error("inactive"));
  return Promise.resolve({ stdout: verb === "is-active" ? "active\n" : "", stderr: "", code: 0 });
};

const REGISTRY = "10.1.2.3:5443";
const registries = (password: string): string =>
  registriesYaml({
    registry: REGISTRY,
    mirrorFor: ["docker.io", "registry.vendor.example:5000"],
    prefix: "site",
    caFile: K3S_REGISTRY_CA,
    username: "cluster-pull",
    password,
  });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-k3s-"));
  binary = join(dir, "k3s");
  images = join(dir, "k3s-airgap-images-amd64.tar");
  await writeFile(binary, "#!/bin/sh\necho k3s\n");
  await writeFile(images, "images");
  [caKey, caPem] = [join(dir, "ca.key"), join(dir, "ca.crt")];
  execFileSync(
    "openssl",
    [
      ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"],
      ...[
        "-subj",
        "/CN=k3s-server-ca",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        caKey,
        "-out",
        caPem,
      ],
    ],
    { stdio: "ignore" },
  );
  caPem = await readFile(caPem, "utf8");
  caKey = await readFile(caKey, "utf8");
});
afterAll(() => rm(dir, { recursive: true, force: true }));
beforeEach(async () => {
  root = await mkdtemp(join(dir, "root-"));
  host = new HostRoot(root);
  calls = [];
  active = new Set();
});

async function install(password = "pull-secret") {
  return installK3s({
    host,
    systemd: new Systemd(host, systemctl),
    role: "server",
    binary,
    imageArchives: [{ name: "k3s-airgap-images-amd64.tar", source: images }],
    registries: registries(password),
    registryCaPem: caPem,
    settings: { nodeName: "site-1", tlsSans: ["k3s.site.example"] },
  });
}

describe("installK3s", () => {
  it("places the binary, images, registries.yaml, config, unit and env file, then enables and starts k3s", async () => {
    const result = await install();
    expect(result).toMatchObject({ unit: "k3s.service", nodeName: "site-1", restarted: false });
    const modes = async (path: string) => (await stat(host.path(path))).mode & 0o7777;
    expect(await modes(K3S_BINARY)).toBe(0o755);
    expect(await readFile(host.path(K3S_BINARY), "utf8")).toContain("echo k3s");
    expect(
      await readFile(host.path("/var/lib/rancher/k3s/agent/images/k3s-airgap-images-amd64.tar"), "utf8"),
    ).toBe("images");
    expect(await modes(K3S_REGISTRIES)).toBe(0o600);
    expect(await modes(K3S_CONFIG)).toBe(0o600);
    expect(await modes(k3sPaths("server").envFile)).toBe(0o600);
    expect(parseYaml(await readFile(host.path(K3S_CONFIG), "utf8"))).toEqual({
      "node-name": "site-1",
      "disable-default-registry-endpoint": true,
      "write-kubeconfig-mode": "0600",
      "tls-san": ["k3s.site.example"],
      disable: ["traefik", "servicelb", "metrics-server"],
    });
    const unit = await readFile(host.path("/etc/systemd/system/k3s.service"), "utf8");
    expect(unit).toContain("ExecStart=/usr/local/bin/k3s server");
    expect(unit).toContain("EnvironmentFile=-/etc/systemd/system/k3s.service.env");
    expect(calls).toEqual([
      "systemctl daemon-reload",
      "systemctl is-active k3s.service",
      "systemctl enable k3s.service",
      "systemctl start k3s.service",
    ]);
  });

  it("changes nothing and restarts nothing on a re-run; a changed file restarts the running service", async () => {
    await install();
    calls = [];
    const again = await install();
    expect(again.changed).toEqual([]);
    expect(calls).toEqual(["systemctl is-active k3s.service"]);
    calls = [];
    const rotated = await install("new-pull-secret");
    expect(rotated).toMatchObject({ changed: [K3S_REGISTRIES], restarted: true });
    expect(calls).toEqual([
      "systemctl is-active k3s.service",
      "systemctl enable k3s.service",
      "systemctl restart k3s.service",
    ]);
  });

  it("fails with the command's own message when systemctl does", async () => {
    const failing: CommandRunner = async (command, args) => {
      if (args[0] === "start") throw new Error("Job for k3s.service failed");
      return systemctl(command, args);
    };
    const error = await installK3s({
      host,
      systemd: new Systemd(host, failing),
      role: "server",
      binary,
      registries: registries("x"),
      registryCaPem: caPem,
    }).catch((e: unknown) => e as Error);
    expect((error as Error).message).toContain("Job for k3s.service failed");
  });
});

describe("registriesYaml", () => {
  it("sends the plane's registries to Airlock's, with the prefix rewrite, the CA and the pull account — as the node reads it", () => {
    const config = parseRegistriesYaml(registries("pull-secret"));
    expect(config.mirrors[REGISTRY]).toEqual({ endpoint: [`https://${REGISTRY}`] });
    expect(config.mirrors["docker.io"]).toEqual({
      endpoint: [`https://${REGISTRY}`],
      rewrite: { "^(.*)$": "site/$1" },
    });
    expect(config.configs[REGISTRY]).toEqual({
      auth: { username: "cluster-pull", password: "pull-secret" },
      tls: { ca_file: K3S_REGISTRY_CA },
    });
    const hosts = hostsTomlFiles(config);
    expect(hosts.get("docker.io")).toContain(`[host."https://${REGISTRY}/v2/site"]`);
    expect(hosts.get(REGISTRY)).toContain(K3S_REGISTRY_CA);
    expect(pullCredentials(config, "registry.vendor.example:5000/hubble/console:4.5.0")).toBe(
      "cluster-pull:pull-secret",
    );
  });
});

describe("waitForK3sServer", () => {
  const node = (ready: string): ClusterObject => ({
    apiVersion: "v1",
    kind: "Node",
    metadata: { name: "site-1" },
    status: {
      conditions: [
        { type: "Ready", status: ready, reason: ready === "True" ? "KubeletReady" : "KubeletNotReady" },
      ],
    },
  });

  it("returns the kubeconfig once it exists and the node is Ready", async () => {
    const answers = [node("False"), node("True")];
    const client = { get: () => Promise.resolve(answers.shift()) } as unknown as ClusterClient;
    await host.writeFile(K3S_KUBECONFIG, "apiVersion: v1\n", 0o600);
    const connected: string[] = [];
    const path = await waitForK3sServer({
      host,
      nodeName: "site-1",
      timeoutMs: 10_000,
      connect: (kubeconfig) => (connected.push(kubeconfig), client),
    });
    expect(path).toBe(host.path(K3S_KUBECONFIG));
    expect(connected).toEqual([path]);
    expect(answers).toEqual([]);
  });

  it("names what it was still waiting for when time runs out", async () => {
    const error = await rejection(waitForK3sServer({ host, nodeName: "site-1", timeoutMs: 0 }));
    expect(error.code).toBe("K3S_NOT_READY");
    expect(error.message).toContain(`k3s to write ${K3S_KUBECONFIG}`);
    await host.writeFile(K3S_KUBECONFIG, "apiVersion: v1\n", 0o600);
    const notReady = { get: () => Promise.resolve(node("False")) } as unknown as ClusterClient;
    const stuck = await rejection(
      waitForK3sServer({ host, nodeName: "site-1", timeoutMs: 0, connect: () => notReady }),
    );
    expect(stuck.message).toContain("node site-1 to be Ready (KubeletNotReady)");
  });
});

describe("join tokens", () => {
  const registry: JoinToken["registry"] = {
    address: REGISTRY,
    caPem: "-----BEGIN CERTIFICATE-----\nsite\n-----END CERTIFICATE-----\n",
    username: "cluster-pull",
    password: "pull-secret",
  };
  let server: Server;
  let url: string;

  beforeAll(async () => {
    server = createServer({ cert: caPem, key: caKey }, (req, res) => {
      res.writeHead(req.url === "/cacerts" ? 200 : 404).end(req.url === "/cacerts" ? caPem : "");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    url = `https://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("carries the server, its secret, the CA pin and the registry, from a server's files", async () => {
    const paths = k3sPaths("server");
    await host.writeFile(paths.nodeToken, "K10abc::server:secret\n", 0o600);
    await host.writeFile(paths.serverCa, caPem, 0o644);
    const token = decodeJoinToken(await createJoinToken({ host, server: url, registry }));
    expect(token).toEqual({
      server: url,
      k3sToken: "K10abc::server:secret",
      caHash: caHashOf(caPem),
      registry,
    });
    expect(await verifyServerCa(token)).toBe(caPem);
  });

  it("refuses a server whose CA the token does not pin, and a damaged token", async () => {
    const token: JoinToken = { server: url, k3sToken: "K10x", caHash: "0".repeat(64), registry };
    expect((await rejection(verifyServerCa(token))).code).toBe("JOIN_CA_MISMATCH");
    const encoded = encodeJoinToken(token);
    expect(() => decodeJoinToken(encoded.slice(0, -10))).toThrow(/join token is not valid/);
    expect(() => decodeJoinToken("K10abc::server:secret")).toThrow(/does not start with/);
    const wrongKind = encodeJoinToken({ ...token, server: "http://plain:6443" });
    expect(() => decodeJoinToken(wrongKind)).toThrow(/server/);
  });

  it("says plainly when there is no server to take a token from", async () => {
    const error = await rejection(createJoinToken({ host, server: url, registry }));
    expect(error.code).toBe("K3S_NOT_INSTALLED");
  });
});
