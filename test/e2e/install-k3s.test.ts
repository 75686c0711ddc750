/**
 * `airlock install` without --kubeconfig: k3s from the bundle under a temporary host root. The
 * bundle carries the stand-in k3s as its bin/k3s, so the binary install places is the one the
 * stand-in systemctl starts from the unit install wrote; it writes a kubeconfig naming the
 * in-memory cluster's API server (hosted by this test), whose node reports Ready. Then `upgrade
 * plan` of next bundles carrying other stand-in k3s versions, on the host root install recorded.
 */
import { existsSync } from "node:fs";
import { chmod, copyFile, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, generateKeyPair } from "../../bundle/index.js";
import { MemoryCluster } from "../../installer/cluster/index.js";
import type { InstallResult } from "../../installer/install/index.js";
import { K3S_BINARY, K3S_STAGED } from "../../installer/k3s/index.js";
import { freePort, siteDaemonListenArgs } from "../helpers/daemons.js";
import { runCli, useFixtures, type Fixtures } from "../helpers/fixtures.js";
import { serveStandinClusterApi, type StandinClusterApi } from "../helpers/standin/cluster-api.js";
import {
  STANDIN_K3S,
  standinBin,
  standinCalls,
  standinEnv,
  standinK3sOfVersion,
  stopStandinServices,
} from "../helpers/standin/index.js";

const NODE = "site-1";
let fx: Fixtures;
let bundle: string;
let publicKey: string;
let signKey: string;
let cluster: MemoryCluster;
let api: StandinClusterApi;
let hostRoot: string;
let dataDir: string;
let listen: string;
let daemonListen: string[];
let log: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * 1024 * 1024 });
  const keys = await fx.dir("keys");
  signKey = join(keys, "vendor.key");
  ({ publicKey } = await generateKeyPair(signKey, join(keys, "vendor.pub")));
  await copyFile(STANDIN_K3S, join(fx.sampleDir, "bin", "k3s"));
  await chmod(join(fx.sampleDir, "bin", "k3s"), 0o755);
  bundle = join(await fx.dir("work"), "mgmt.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: bundle, signKey });

  cluster = new MemoryCluster({ nodeName: NODE });
  api = await serveStandinClusterApi(cluster, await fx.dir("apiserver"));
  hostRoot = await fx.dir("host");
  dataDir = join(await fx.dir("data"), "airlock");
  listen = `127.0.0.1:${await freePort()}`;
  daemonListen = await siteDaemonListenArgs();
  const standin = await fx.dir("standin");
  log = join(standin, "calls.jsonl");
  env = standinEnv(await standinBin(standin), hostRoot, log, api.env);
}, 120_000);

afterAll(async () => {
  if (hostRoot !== undefined) await stopStandinServices(hostRoot);
  await api?.close();
  cluster?.close();
  await fx?.cleanup();
});

/** The next release of the installed 4.5.0, its bin/k3s the stand-in saying `k3sVersion`. */
async function nextBundle(version: string, k3sVersion: string): Promise<string> {
  await standinK3sOfVersion(join(fx.sampleDir, "bin", `k3s-${k3sVersion}`), k3sVersion);
  const spec = join(fx.sampleDir, `bundle-${version}.yaml`);
  const text = (await readFile(fx.spec, "utf8"))
    .replace(/^version: .*$/m, `version: ${version}`)
    // The plane runs the broker image its version names: the same image, under that tag.
    .replace("- ref: hubble/msgbroker:4.5.0", `- ref: hubble/msgbroker:${version}`)
    .replace(/^upgradeFrom: .*$/m, 'upgradeFrom: ">=4.5.0 <4.6.0"')
    .replace("path: ./bin/k3s\n", `path: ./bin/k3s-${k3sVersion}\n`);
  await writeFile(spec, text);
  const output = join(await fx.dir("work"), `mgmt-${version}.airlock.tar`);
  await buildBundle({ specFile: spec, output, signKey });
  return output;
}

const install = () =>
  runCli(
    [
      ...["--data-dir", dataDir, "--json", "install", "--bundle", bundle, "--key", publicKey],
      ...["--host-root", hostRoot, "--registry-listen", listen, "--node-name", NODE, "--timeout", "2m"],
      ...daemonListen,
    ],
    { env },
  );

describe("airlock install with k3s from the bundle", () => {
  it("installs the bundle's k3s pointed at Airlock's registry, starts it, and applies the plane on its cluster", async () => {
    const result = await install();
    expect(result.code, result.stderr).toBe(0);
    const report = JSON.parse(result.stdout) as InstallResult;
    expect(report.outcome).toBe("installed");
    expect(report.steps.find((step) => step.name === "cluster")?.summary).toContain(`node ${NODE}, Ready`);

    const k3s = join(hostRoot, "usr/local/bin/k3s");
    expect(await readFile(k3s, "utf8")).toBe(await readFile(STANDIN_K3S, "utf8"));
    expect((await stat(k3s)).mode & 0o777).toBe(0o755);
    const registries = parseYaml(
      await readFile(join(hostRoot, "etc/rancher/k3s/registries.yaml"), "utf8"),
    ) as {
      mirrors: Record<string, { endpoint: string[] }>;
      configs: Record<string, { auth: { username: string }; tls: { ca_file: string } }>;
    };
    expect(registries.mirrors[listen]?.endpoint).toEqual([`https://${listen}`]);
    expect(registries.configs[listen]?.tls.ca_file).toBe("/etc/rancher/k3s/airlock-registry-ca.pem");
    expect(report.newAccounts.map((account) => account.username)).toContain(
      registries.configs[listen]?.auth.username,
    );
    expect(await readFile(join(hostRoot, "etc/rancher/k3s/airlock-registry-ca.pem"), "utf8")).toBe(
      await readFile(report.registry.caFile, "utf8"),
    );
    const config = parseYaml(await readFile(join(hostRoot, "etc/rancher/k3s/config.yaml"), "utf8")) as Record<
      string,
      unknown
    >;
    expect(config["node-name"]).toBe(NODE);

    const calls = await standinCalls(log);
    const systemctl = calls.filter((call) => call.program === "systemctl").map((call) => call.args.join(" "));
    expect(systemctl).toEqual(expect.arrayContaining(["enable k3s.service", "start k3s.service"]));
    expect(calls.some((call) => call.program === "k3s" && call.args[0] === "server")).toBe(true);

    const broker = await cluster.get({
      apiVersion: "apps/v1",
      kind: "StatefulSet",
      name: "msgbroker",
      namespace: "hubble-system",
    });
    expect(broker?.status?.readyReplicas).toBe(2);
    const image = (broker as unknown as { spec: { template: { spec: { containers: { image: string }[] } } } })
      .spec.template.spec.containers[0]!.image;
    expect(image).toMatch(
      new RegExp(`^${listen.replace(/\./g, "\\.")}/hubble/msgbroker@sha256:[0-9a-f]{64}$`),
    );
  });

  it("a re-run finds everything in place: nothing to do, k3s not restarted", async () => {
    const before = (await standinCalls(log)).length;
    const result = await install();
    expect(result.code, result.stderr).toBe(0);
    expect((JSON.parse(result.stdout) as InstallResult).outcome).toBe("unchanged");
    const since = (await standinCalls(log))
      .slice(before)
      .map((call) => `${call.program} ${call.args.join(" ")}`);
    expect(since.filter((call) => /start|restart/.test(call))).toEqual([]);
  });

  it("upgrade plan of a bundle with a newer k3s says it goes first; one skipping a minor is refused", async () => {
    const airlock = (args: string[]) => runCli(["--data-dir", dataDir, ...args], { env });
    const skipping = await airlock([
      "upgrade",
      "plan",
      "--bundle",
      await nextBundle("4.5.2", "v1.34.0+k3s1"),
    ]);
    expect(skipping.code).toBe(1);
    expect(skipping.stderr).toContain("K3S_SKEW_REFUSED");
    expect(skipping.stderr).toContain("v1.32.3+k3s1 → v1.34.0+k3s1 skips a minor version");
    expect(skipping.stderr).toContain("the running k3s is v1.32.3+k3s1");
    const planned = await airlock(["upgrade", "plan", "--bundle", await nextBundle("4.5.1", "v1.33.1+k3s1")]);
    expect(planned.code, planned.stderr).toBe(0);
    expect(planned.stdout).toMatch(
      /^k3s {10}v1\.32\.3\+k3s1 → v1\.33\.1\+k3s1 \(.+\): upgraded first, then the plane$/m,
    );
    // The plan asked the staged binary its version and left the running one alone.
    expect(existsSync(join(hostRoot, K3S_STAGED))).toBe(false);
    expect(await readFile(join(hostRoot, K3S_BINARY), "utf8")).toBe(await readFile(STANDIN_K3S, "utf8"));
  });
});
