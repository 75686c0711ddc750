/**
 * `airlock node join-token` and `airlock node join` through the built CLI, with the stand-in k3s
 * and systemctl: a k3s server installed under one temporary host root (A) and started by the
 * stand-in systemctl; its join token; a second root (B) joined as an agent from the same signed
 * bundle with the same registry configuration, started with the token's server and secret; a re-run
 * that changes nothing; and tokens refused (a wrong CA pin, damage) with nothing written.
 */
import { execFile } from "node:child_process";
import { appendFile, copyFile, chmod, readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, generateKeyPair } from "../../bundle/index.js";
import { HostRoot, Systemd, type CommandRunner } from "../../installer/host/index.js";
import {
  K3S_BINARY,
  K3S_REGISTRIES,
  K3S_REGISTRY_CA,
  caHashOf,
  decodeJoinToken,
  encodeJoinToken,
  installK3s,
  k3sPaths,
  registriesYaml,
} from "../../installer/k3s/index.js";
import { freePort } from "../helpers/daemons.js";
import { runCli, runTool, useFixtures, type CliResult, type Fixtures } from "../helpers/fixtures.js";
import {
  STANDIN_K3S,
  standinBin,
  standinCalls,
  standinEnv,
  stopStandinServices,
  waitForCall,
} from "../helpers/standin/index.js";

const IMAGES = "k3s-airgap-images-amd64.tar";
const REGISTRY = "10.20.0.5:5443";

let fx: Fixtures;
let bin: string;
let bundle: string;
let pub: string;
let otherPub: string;
let serverRoot: string;
let serverLog: string;
let serverUrl: string;
let registryCaPem: string;
/** Every host root made, so their started services end with the tests. */
const roots: string[] = [];

async function hostRootDir(name: string): Promise<string> {
  const root = await fx.dir(name);
  roots.push(root);
  return root;
}

/** The stand-in systemctl as the server's runner: the host root and log are its environment. */
function standinSystemctl(env: NodeJS.ProcessEnv): CommandRunner {
  return async (command, args) => {
    const { stdout, stderr } = await promisify(execFile)(command, [...args], { env });
    return { stdout, stderr, code: 0 };
  };
}

/** The sample bundle, signed, with the stand-in as its bin/k3s and an air-gap images archive. */
async function signedBundle(work: string): Promise<string> {
  const { privateKey } = await generateKeyPair(join(work, "key.pem"), (pub = join(work, "pub.pem")));
  await generateKeyPair(join(work, "other-key.pem"), (otherPub = join(work, "other-pub.pem")));
  await copyFile(STANDIN_K3S, join(fx.sampleDir, "bin/k3s"));
  await chmod(join(fx.sampleDir, "bin/k3s"), 0o755);
  await writeFile(join(fx.sampleDir, "bin", IMAGES), "air-gap images\n");
  const spec = join(fx.sampleDir, "bundle-join.yaml");
  await copyFile(fx.spec, spec);
  await appendFile(spec, `  - path: ./bin/${IMAGES}\n`);
  const output = join(work, "mgmt-4.5.0.airlock.tar");
  await buildBundle({ specFile: spec, output, signKey: privateKey });
  return output;
}

async function siteCa(work: string): Promise<string> {
  const [key, cert] = [join(work, "site-ca.key"), join(work, "site-ca.crt")];
  const made = await runTool("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"],
    ...["-subj", "/CN=airlock-site-ca", "-keyout", key, "-out", cert],
  ]);
  expect(made.code, made.stderr).toBe(0);
  return readFile(cert, "utf8");
}

/** k3s server under root A, as install places it, started by the stand-in systemctl. */
async function startServer(): Promise<void> {
  serverRoot = await hostRootDir("root-a");
  serverLog = join(serverRoot, "..", "standin-a.log");
  const port = await freePort();
  serverUrl = `https://127.0.0.1:${port}`;
  const env = standinEnv(bin, serverRoot, serverLog, { STANDIN_K3S_SUPERVISOR_PORT: String(port) });
  const host = new HostRoot(serverRoot);
  await installK3s({
    host,
    systemd: new Systemd(host, standinSystemctl(env)),
    role: "server",
    binary: STANDIN_K3S,
    registries: registriesYaml({
      registry: REGISTRY,
      mirrorFor: ["docker.io", "registry.vendor.example:5000"],
      prefix: "site",
      caFile: K3S_REGISTRY_CA,
      username: "cluster-pull",
      password: "pull-secret-1",
    }),
    registryCaPem,
    settings: { nodeName: "server-1" },
  });
  await waitForCall(serverLog, (call) => call.program === "k3s" && call.supervisor === serverUrl);
}

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * 1024 * 1024 });
  const work = await fx.dir("work");
  bin = await standinBin(work);
  registryCaPem = await siteCa(work);
  bundle = await signedBundle(work);
  await startServer();
}, 120_000);

afterAll(async () => {
  for (const root of roots) await stopStandinServices(root);
  await fx.cleanup();
});

function expectError(result: CliResult, code: string, exitCode: number): void {
  expect(result.code, result.stderr).toBe(exitCode);
  expect(result.stderr.split("\n")[0]).toMatch(new RegExp(`^error ${code}: \\S`));
  expect(result.stderr).toMatch(/^ {2}hint: +\S/m);
}

async function joinToken(): Promise<string> {
  const result = await runCli(["node", "join-token", "--host-root", serverRoot, "--server", serverUrl]);
  expect(result.code, result.stderr).toBe(0);
  return result.stdout.trim();
}

async function joinAs(
  root: string,
  token: string,
  extra: string[] = [],
): Promise<{ result: CliResult; log: string }> {
  const log = join(root, "..", `${root.split("/").pop()}.log`);
  const result = await runCli(
    ["--json", "node", "join", "--token", token, "--bundle", bundle, "--host-root", root, ...extra],
    { env: standinEnv(bin, root, log) },
  );
  return { result, log };
}

describe("airlock node join-token", () => {
  it("prints one token carrying the server, its secret, its CA's hash and the server's registry configuration", async () => {
    const server = new HostRoot(serverRoot);
    const paths = k3sPaths("server");
    const result = await runCli([
      "--json",
      ...["node", "join-token", "--host-root", serverRoot, "--server", serverUrl],
    ]);
    expect(result.code, result.stderr).toBe(0);
    const printed = JSON.parse(result.stdout) as { token: string; caHash: string };
    const token = decodeJoinToken(printed.token);
    expect(token).toEqual({
      server: serverUrl,
      k3sToken: (await server.readFile(paths.nodeToken))!.trim(),
      caHash: caHashOf((await server.readFile(paths.serverCa))!),
      registry: {
        address: REGISTRY,
        caPem: registryCaPem,
        username: "cluster-pull",
        password: "pull-secret-1",
        mirrorFor: ["docker.io", "registry.vendor.example:5000"],
        prefix: "site",
      },
    });
    expect(token.k3sToken).toMatch(new RegExp(`^K10${token.caHash}::server:[0-9a-f]{32}$`));
    expect(printed).toMatchObject({ server: serverUrl, caHash: token.caHash });
    // Without --json stdout is the token alone, so `$(airlock node join-token)` works.
    expect(decodeJoinToken(await joinToken())).toEqual(token);
  });

  it("is refused on a host with no k3s server", async () => {
    const empty = await hostRootDir("root-empty");
    const result = await runCli(["node", "join-token", "--host-root", empty, "--server", serverUrl]);
    expectError(result, "K3S_NOT_INSTALLED", 1);
  });
});

describe("airlock node join", () => {
  it("installs the k3s agent from the bundle with the server's registry configuration, and starts it joined", async () => {
    const token = await joinToken();
    const k3sToken = decodeJoinToken(token).k3sToken;
    const root = await hostRootDir("root-b");
    const { result, log } = await joinAs(root, token, ["--key", pub, "--node-name", "node-2"]);
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as Record<string, unknown>;
    expect(report).toMatchObject({
      unit: "k3s-agent.service",
      nodeName: "node-2",
      server: serverUrl,
      restarted: false,
      bundle: { name: "mgmt", version: "4.5.0", signature: { status: "verified" } },
    });
    const at = (path: string) => join(root, path);
    const mode = async (path: string) => (await stat(at(path))).mode & 0o777;
    expect(await readFile(at(K3S_BINARY))).toEqual(await readFile(STANDIN_K3S));
    expect(await mode(K3S_BINARY)).toBe(0o755);
    expect(await readFile(at(`/var/lib/rancher/k3s/agent/images/${IMAGES}`), "utf8")).toBe(
      "air-gap images\n",
    );
    expect(await readFile(at(K3S_REGISTRIES), "utf8")).toBe(
      await readFile(join(serverRoot, K3S_REGISTRIES), "utf8"),
    );
    expect(await mode(K3S_REGISTRIES)).toBe(0o600);
    expect(await readFile(at(K3S_REGISTRY_CA), "utf8")).toBe(registryCaPem);
    const unit = await readFile(at("/etc/systemd/system/k3s-agent.service"), "utf8");
    expect(unit).toContain("ExecStart=/usr/local/bin/k3s agent");
    const envFile = k3sPaths("agent").envFile;
    expect(await mode(envFile)).toBe(0o600);
    expect(await readFile(at(envFile), "utf8")).toContain(`K3S_URL="${serverUrl}"`);
    expect(
      (await standinCalls(log)).filter((call) => call.program === "systemctl").map((c) => c.args),
    ).toEqual([
      ["daemon-reload"],
      ["is-active", "k3s-agent.service"],
      ["enable", "k3s-agent.service"],
      ["start", "k3s-agent.service"],
    ]);
    const agent = await waitForCall(log, (call) => call.program === "k3s");
    expect(agent).toMatchObject({
      args: ["agent"],
      env: { K3S_URL: serverUrl, K3S_TOKEN: k3sToken },
      caHashMatches: true,
    });

    const again = await joinAs(root, token, ["--key", pub, "--node-name", "node-2"]);
    expect(again.result.code, again.result.stderr).toBe(0);
    expect(JSON.parse(again.result.stdout)).toMatchObject({ changed: [], restarted: false });
    const calls = await standinCalls(log);
    expect(calls.slice(5).map((call) => [call.program, ...call.args])).toEqual([
      ["systemctl", "is-active", "k3s-agent.service"],
    ]);
  });

  it("refuses a token whose CA hash the server does not match, writing nothing", async () => {
    const token = decodeJoinToken(await joinToken());
    const forged = encodeJoinToken({ ...token, caHash: caHashOf(registryCaPem) });
    const root = await hostRootDir("root-c");
    const { result, log } = await joinAs(root, forged);
    expectError(result, "JOIN_CA_MISMATCH", 1);
    expect(await readdir(root)).toEqual([]);
    expect(await standinCalls(log)).toEqual([]);
  });

  it("refuses a damaged token as a usage error, and a bundle signed by another key, writing nothing", async () => {
    const token = await joinToken();
    const root = await hostRootDir("root-d");
    const damaged = await joinAs(root, token.slice(0, -12));
    expectError(damaged.result, "JOIN_TOKEN_INVALID", 2);
    const wrongKey = await joinAs(root, token, ["--key", otherPub]);
    expectError(wrongKey.result, "BUNDLE_SIGNATURE_INVALID", 1);
    expect(await readdir(root)).toEqual([]);
    expect(await standinCalls(damaged.log)).toEqual([]);
  });
});
