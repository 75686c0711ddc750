/**
 * `airlock install --kubeconfig` through the built CLI, as an operator runs it: the sample bundle,
 * signed, into an in-memory cluster behind a kube-apiserver facade this test process hosts, with a
 * stand-in systemctl that runs the registry unit's ExecStart for real. Then a re-run (nothing to
 * do), `airlock status --json`, a wrong key refused with nothing written, and the writer lock.
 */
import { existsSync } from "node:fs";
import { readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { get as plainGet } from "node:http";
import { request } from "node:https";
import { createServer } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildBundle, generateKeyPair } from "../../bundle/index.js";
import {
  MemoryCluster,
  clusterApiKubeconfig,
  serveClusterApi,
  type RunningClusterApiServer,
} from "../../installer/cluster/index.js";
import type { InstallResult, SiteStatus } from "../../installer/install/index.js";
import { openState } from "../../installer/state/index.js";
import { UserRecords } from "../../ui-lite/index.js";
import { freePort, freePorts, siteDaemonListenArgs } from "../helpers/daemons.js";
import {
  runCli,
  runTool,
  selfSignedCertificate,
  useFixtures,
  waitFor,
  type Fixtures,
} from "../helpers/fixtures.js";
import { fakeSystemctl, type FakeSystemctl } from "../helpers/systemctl.js";

const TOKEN = "install-e2e-token";
const UNIT = "airlock.service";
const LEGACY_UNIT = "airlock-registry.service";
let fx: Fixtures;
let bundle: string;
let publicKey: string;
let wrongKey: string;
let signKeyFile: string;
let cluster: MemoryCluster;
let api: RunningClusterApiServer;
let kubeconfig: string;
let apiCaFile: string;
let hostRoot: string;
let dataDir: string;
let listen: string;
/** The site daemon's console and /healthz ports, and the flags that put them there. */
let consolePort: number;
let healthPort: number;
let daemonListen: string[];
let systemctl: FakeSystemctl;
/** The admin account's line of the first install's output: its password is shown that once. */
let firstAdminLine: string | undefined;
/** The console admin's one-time password, shown by the first install only. */
let consolePassword: string | undefined;

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * 1024 * 1024 });
  const keys = await fx.dir("keys");
  ({ publicKey } = await generateKeyPair(join(keys, "vendor.key"), join(keys, "vendor.pub")));
  ({ publicKey: wrongKey } = await generateKeyPair(join(keys, "other.key"), join(keys, "other.pub")));
  bundle = join(await fx.dir("work"), "mgmt.airlock.tar");
  signKeyFile = join(keys, "vendor.key");
  await buildBundle({ specFile: fx.spec, output: bundle, signKey: signKeyFile });

  const tls = await selfSignedCertificate(await fx.dir("apiserver"));
  apiCaFile = tls.certFile;
  const caPem = await readFile(tls.certFile, "utf8");
  cluster = new MemoryCluster();
  api = await serveClusterApi(cluster, {
    tls: { cert: caPem, key: await readFile(tls.keyFile, "utf8") },
    token: TOKEN,
  });
  kubeconfig = join(fx.root, "kubeconfig");
  await writeFile(kubeconfig, clusterApiKubeconfig(api.url, caPem, TOKEN));

  hostRoot = await fx.dir("host");
  dataDir = join(await fx.dir("data"), "airlock");
  listen = `127.0.0.1:${await freePort()}`;
  [consolePort, healthPort] = (await freePorts(2)) as [number, number];
  daemonListen = [
    ...["--console-listen", `127.0.0.1:${consolePort}`],
    ...["--health-listen", `127.0.0.1:${healthPort}`],
  ];
  systemctl = await fakeSystemctl(await fx.dir("systemctl"), hostRoot);
}, 120_000);

afterAll(async () => {
  await systemctl?.stopAll();
  await api?.close();
  cluster?.close();
  await fx?.cleanup();
});

function install(args: string[] = [], kubeconfigFile = kubeconfig): ReturnType<typeof runCli> {
  return runCli(
    [
      ...["--data-dir", dataDir, "install", "--bundle", bundle, "--kubeconfig", kubeconfigFile],
      ...["--host-root", hostRoot, "--registry-listen", listen, "--timeout", "60s", ...daemonListen, ...args],
    ],
    { env: systemctl.env },
  );
}

/** GET over TLS with the site CA and an account: the status code. */
function get(path: string, caPem: string, user: string, password: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      `https://${listen}${path}`,
      {
        ca: caPem,
        headers: {
          authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`,
          accept: "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", reject);
    req.end();
  });
}

/** A GET over TLS with the site CA: the status and body. */
function httpsText(url: string, caPem: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca: caPem }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A plain-HTTP GET: the status and body. */
function httpText(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    plainGet(url, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    }).on("error", reject);
  });
}

describe("airlock install into an existing cluster", () => {
  it("refuses a bundle that does not verify against --key, with nothing written", async () => {
    const result = await install(["--key", wrongKey]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error BUNDLE_SIGNATURE_INVALID");
    expect(existsSync(dataDir)).toBe(false);
    expect(await readdir(hostRoot)).toEqual([]);
    expect(await systemctl.calls()).toEqual([]);
  });

  it("a values file with a bad field is refused before anything is written, naming the field", async () => {
    const values = join(fx.root, "bad-values.yaml");
    await writeFile(values, "msgbroker:\n  replicas: -1\n");
    const result = await install(["--key", publicKey, "--values", values]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("error VALUES_INVALID");
    expect(result.stderr).toMatch(/where: .*bad-values\.yaml: msgbroker\.replicas/);
    expect(existsSync(dataDir)).toBe(false);
    expect(await systemctl.calls()).toEqual([]);
  });

  it("without --kubeconfig, a bundle that carries no k3s is refused at once, writing nothing", async () => {
    const withoutK3s = join(await fx.dir("work"), "mgmt-4.4.0.airlock.tar");
    await buildBundle({ specFile: fx.spec440, output: withoutK3s, signKey: signKeyFile });
    const result = await runCli(
      ["--data-dir", dataDir, "install", "--bundle", withoutK3s, "--host-root", hostRoot],
      { env: systemctl.env },
    );
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error BUNDLE_K3S_MISSING");
    expect(result.stderr).toContain("--kubeconfig");
    expect(existsSync(dataDir)).toBe(false);
  });

  it("a failing preflight (the registry's port taken) stops it before anything is written", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen({ host: "127.0.0.1", port: 0 }, resolve));
    try {
      const { port } = taken.address() as { port: number };
      const result = await runCli(
        [
          ...["--data-dir", dataDir, "install", "--bundle", bundle, "--kubeconfig", kubeconfig],
          ...["--host-root", hostRoot, "--registry-listen", `127.0.0.1:${port}`, ...daemonListen],
        ],
        { env: systemctl.env },
      );
      expect(result.code).toBe(1);
      expect(result.stderr).toContain("error PREFLIGHT_FAILED");
      expect(result.stderr).toContain(`port:registry (127.0.0.1:${port} is in use by another program)`);
      expect(existsSync(dataDir)).toBe(false);
      expect(await readdir(hostRoot)).toEqual([]);
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it("a cluster that does not answer stops the install at its cluster step, the registry already serving", async () => {
    const unreachable = join(fx.root, "unreachable.kubeconfig");
    const caPem = await readFile(apiCaFile, "utf8");
    await writeFile(unreachable, clusterApiKubeconfig(`https://127.0.0.1:${await freePort()}`, caPem, TOKEN));
    const result = await install(["--key", publicKey], unreachable);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error CLUSTER_UNREACHABLE");
    expect(result.stdout).toMatch(/^FAIL +Cluster +\d+\.\d s {2}CLUSTER_UNREACHABLE: /m);
    expect(result.stdout).toMatch(/^ok +Registry service +\d+\.\d s {2}airlock\.service answers/m);
    const state = openState(dataDir);
    try {
      expect(state.installs.steps(1).map((step) => [step.name, step.state])).toEqual([
        ["preflight", "done"],
        ["import", "done"],
        ["pki", "done"],
        ["registry", "done"],
        ["cluster", "failed"],
        ["render", "pending"],
        ["apply", "pending"],
        ["wait", "pending"],
        ["record", "pending"],
      ]);
      expect(state.installs.step(1, "cluster").errorCode).toBe("CLUSTER_UNREACHABLE");
      expect(state.releases.list()).toEqual([]);
    } finally {
      state.close();
    }
    expect(await systemctl.calls()).toEqual(["daemon-reload", `enable ${UNIT}`, `restart ${UNIT}`]);
    firstAdminLine = /^new account admin .*$/m.exec(result.stdout)?.[0];
    expect(firstAdminLine).toBeDefined();
    // The console's first admin, with a one-time password, shown once like the accounts.
    const consoleLines = result.stdout.split("\n").filter((line) => line.startsWith("new console user "));
    expect(consoleLines).toHaveLength(1);
    consolePassword = /one-time password (\S+)/.exec(consoleLines[0]!)?.[1];
    expect(consolePassword).toBeDefined();
  }, 120_000);

  it("the re-run resumes at the cluster step: applies the plane, waits and records one release", async () => {
    const result = await install();
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const lines = result.stdout.split("\n");
    for (const title of ["Preflight", "Verify and import", "Site PKI", "Registry service"]) {
      expect(
        lines.some((line) => new RegExp(`^ok +${title} +\\d+\\.\\d s {2}already done$`).test(line)),
        title,
      ).toBe(true);
    }
    // Accounts were made, and shown, by the first run only.
    expect(result.stdout).not.toContain("new account");
    expect(result.stdout).not.toContain("new console user");
    const admin = /password (\S+)/.exec(firstAdminLine!)?.[1];
    for (const title of [
      "Cluster",
      "Render the plane",
      "Apply",
      "Wait for the plane",
      "Record the release",
    ]) {
      expect(
        lines.some((line) => new RegExp(`^ok +${title} +\\d+\\.\\d s {2}`).test(line)),
        title,
      ).toBe(true);
    }
    expect(result.stdout).toMatch(/^installed mgmt 4\.5\.0 in \d+\.\d s: release 1$/m);
    expect(admin).toBeDefined();

    // The unit install wrote is the one the stand-in started: its process serves the store over TLS.
    const unit = await readFile(join(hostRoot, "etc/systemd/system", UNIT), "utf8");
    expect(unit).toContain(`serve --registry-listen ${listen} --tls-cert ${dataDir}/pki/registry.crt`);
    expect(unit).toContain(`--auth htpasswd:${dataDir}/registry/htpasswd --push-user admin`);
    expect(unit).toContain(
      `--console-listen 127.0.0.1:${consolePort} --health-listen 127.0.0.1:${healthPort}`,
    );
    // The re-run only asked whether the unit runs: it kept the service the first run started.
    expect(await systemctl.calls()).toEqual([
      "daemon-reload",
      `enable ${UNIT}`,
      `restart ${UNIT}`,
      `is-active ${UNIT}`,
    ]);
    expect(await systemctl.pid(UNIT)).toEqual(expect.any(Number));
    expect((await stat(join(dataDir, "registry/htpasswd"))).mode & 0o777).toBe(0o600);
    const htpasswd = await readFile(join(dataDir, "registry/htpasswd"), "utf8");
    expect(htpasswd).toMatch(/^cluster-pull:\$2[aby]\$10\$/m);
    expect(htpasswd).toMatch(/^admin:\$2[aby]\$10\$/m);
    expect(htpasswd).not.toContain(admin!);

    const caPem = await readFile(join(dataDir, "pki/ca.crt"), "utf8");
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
    // The image the plane names is served by the registry unit to the cluster's pull account.
    const pullPassword = (await readFile(join(dataDir, "registry/pull-password"), "utf8")).trim();
    expect(
      await get(`/v2/hubble/msgbroker/manifests/${image.split("@")[1]}`, caPem, "cluster-pull", pullPassword),
    ).toBe(200);
    expect(await get("/v2/", caPem, "admin", admin!)).toBe(200);

    const nodeFiles = join(dataDir, "node-config");
    expect(await readFile(join(nodeFiles, "registries.yaml"), "utf8")).toContain(`password: ${pullPassword}`);
    expect(await readFile(join(nodeFiles, `certs.d/${listen}/hosts.toml`), "utf8")).toContain(
      `server = "https://${listen}"`,
    );
    expect(result.stdout).toContain(`node files in ${nodeFiles}`);

    const state = openState(dataDir);
    try {
      const releases = state.releases.list();
      expect(releases.map((release) => [release.status, release.current])).toEqual([["deployed", true]]);
      expect(state.installs.steps(1).every((step) => step.state === "done")).toBe(true);
      // Four steps ran once, the cluster step failed then ran again, four ran on the re-run only.
      expect(state.events.list({ action: "install.step" }).length).toBe(4 * 2 + 2 * 2 + 4 * 2);
      expect(state.events.list({ object: "install/1/step/cluster" }).map((event) => event.outcome)).toEqual([
        "started",
        "failed",
        "started",
        "ok",
      ]);
    } finally {
      state.close();
    }
  }, 120_000);

  it("a re-run says installed, nothing to do, and changes nothing", async () => {
    const htpasswd = await readFile(join(dataDir, "registry/htpasswd"), "utf8");
    const calls = (await systemctl.calls()).length;
    const result = await install();
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^installed, nothing to do: mgmt 4\.5\.0 runs as release 1$/m);
    expect(result.stdout).not.toContain("new account");
    expect(await readFile(join(dataDir, "registry/htpasswd"), "utf8")).toBe(htpasswd);
    expect((await systemctl.calls()).length).toBe(calls);

    const json = await runCli(
      [
        "--data-dir",
        dataDir,
        "--json",
        "install",
        "--bundle",
        bundle,
        "--kubeconfig",
        kubeconfig,
        "--host-root",
        hostRoot,
        "--registry-listen",
        listen,
        ...daemonListen,
      ],
      { env: systemctl.env },
    );
    expect(json.code).toBe(0);
    const parsed = JSON.parse(json.stdout) as InstallResult;
    expect(parsed).toMatchObject({ outcome: "unchanged", release: { id: 1, name: "mgmt" }, newAccounts: [] });
  }, 60_000);

  it("the unit serves the console over TLS with the site CA and /healthz; the one-time password must be changed", async () => {
    const caPem = await readFile(join(dataDir, "pki/ca.crt"), "utf8");
    const login = await httpsText(`https://127.0.0.1:${consolePort}/login`, caPem);
    expect(login.status).toBe(200);
    expect(login.body).toContain("<h1>Sign in to Airlock</h1>");
    const health = await httpText(`http://127.0.0.1:${healthPort}/healthz`);
    expect(health.status).toBe(200);
    expect(JSON.parse(health.body)).toMatchObject({
      ok: true,
      pid: await systemctl.pid(UNIT),
      registry: { state: "up" },
      console: { state: "up" },
    });
    const state = openState(dataDir);
    try {
      const users = new UserRecords(state);
      expect(users.list().map((user) => [user.name, user.role, user.mustChangePassword])).toEqual([
        ["admin", "admin", true],
      ]);
      expect(await users.authenticate("admin", consolePassword!)).toMatchObject({ mustChangePassword: true });
    } finally {
      state.close();
    }
  }, 30_000);

  it("a re-run on a site whose registry runs as the old airlock-registry.service replaces it with the daemon's unit", async () => {
    const unitDir = join(hostRoot, "etc/systemd/system");
    const current = await readFile(join(unitDir, UNIT), "utf8");
    // What an install before the site daemon left: the registry alone, under the old unit's name.
    const legacy = current
      .replace(/ serve --registry-listen /, " registry serve --listen ")
      .replace(/ --console-listen \S+ --health-listen \S+/, "");
    expect(await runTool("systemctl", ["stop", UNIT], { env: systemctl.env })).toMatchObject({ code: 0 });
    await rm(join(unitDir, UNIT));
    await writeFile(join(unitDir, LEGACY_UNIT), legacy);
    expect(await runTool("systemctl", ["start", LEGACY_UNIT], { env: systemctl.env })).toMatchObject({
      code: 0,
    });
    const before = (await systemctl.calls()).length;
    const result = await install();
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^ok +Registry service +\d+\.\d s {2}airlock\.service answers/m);
    expect(result.stdout).toMatch(/^installed, nothing to do: mgmt 4\.5\.0 runs as release 1$/m);
    expect((await systemctl.calls()).slice(before)).toEqual([
      `stop ${LEGACY_UNIT}`,
      `disable ${LEGACY_UNIT}`,
      "daemon-reload",
      `enable ${UNIT}`,
      `restart ${UNIT}`,
    ]);
    expect(existsSync(join(unitDir, LEGACY_UNIT))).toBe(false);
    expect(await systemctl.pid(LEGACY_UNIT)).toBeUndefined();
    expect(await readFile(join(unitDir, UNIT), "utf8")).toBe(current);
    // The registry answered before install went on; the daemon's other listeners follow it up.
    await waitFor(
      () =>
        httpText(`http://127.0.0.1:${healthPort}/healthz`).then(
          (answer) => answer.status === 200,
          () => false,
        ),
      10_000,
      "the new unit's /healthz",
    );
    const state = openState(dataDir);
    try {
      expect(state.installs.step(1, "registry").detail).toMatchObject({ unit: UNIT });
      expect(state.releases.list()).toHaveLength(1);
    } finally {
      state.close();
    }
  }, 60_000);

  it("airlock status --json: healthy, with the plane, the registry and the certificates", async () => {
    const result = await runCli(["--data-dir", dataDir, "--json", "status"]);
    expect(result.stderr).toBe("");
    expect(result.code).toBe(0);
    const status = JSON.parse(result.stdout) as SiteStatus;
    expect(status.healthy).toBe(true);
    expect(status.problems).toEqual([]);
    expect(status.release).toMatchObject({ id: 1, bundle: "mgmt", version: "4.5.0" });
    expect(status.plane?.msgbroker).toMatchObject({ ready: 2, desired: 2, rolledOut: true });
    expect(status.plane?.pods.map((pod) => [pod.name, pod.ready, pod.restarts])).toEqual([
      ["msgbroker-0", true, 0],
      ["msgbroker-1", true, 0],
    ]);
    expect(status.registry).toMatchObject({ url: `https://${listen}`, answering: true });
    expect(status.registry?.repositories).toEqual(
      expect.arrayContaining(["hubble/msgbroker", "hubble/console", "hubble/agent"]),
    );
    expect(status.disk.freeBytes).toBeGreaterThan(0);
    expect(status.disk.totalBytes).toBeGreaterThanOrEqual(status.disk.freeBytes);
    const text = await runCli(["--data-dir", dataDir, "status"]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^healthy: /);
    expect(text.stdout).toMatch(/^msgbroker +2\/2 ready, revision \S+$/m);
    expect(text.stdout).toMatch(
      /^registry +https:\/\/\S+: answers \(HTTP 200 to \/v2\/\), \d+ repositories$/m,
    );
    expect(status.certificates.map((certificate) => certificate.name)).toEqual(
      expect.arrayContaining(["registry", "msgbroker-peer", "msgbroker-server"]),
    );
    expect(status.certificates.every((certificate) => certificate.daysLeft > 700)).toBe(true);
    expect(status.events.length).toBeGreaterThan(0);
  }, 60_000);

  it("a second install while one holds the writer lock fails at once, naming its PID", async () => {
    const state = openState(dataDir);
    const lock = state.lock("airlock install");
    try {
      const started = Date.now();
      const result = await install();
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(
        `error LOCK_HELD: another airlock is changing this site: process ${process.pid}`,
      );
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      lock.release();
      state.close();
    }
  }, 30_000);

  it("a --key other than the one the site was installed with is refused", async () => {
    const result = await install(["--key", wrongKey]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("error BUNDLE_KEY_MISMATCH");
  }, 30_000);

  it("status exits 1 and names the problem once the registry is down", async () => {
    await systemctl.stopAll();
    const result = await runCli(["--data-dir", dataDir, "--json", "status"]);
    expect(result.code).toBe(1);
    const status = JSON.parse(result.stdout) as SiteStatus;
    expect(status.healthy).toBe(false);
    expect(status.registry).toMatchObject({ answering: false });
    expect(status.problems).toEqual([
      expect.stringContaining(`the registry at https://${listen} does not answer`),
    ]);
    expect(result.stderr).toContain("error SITE_UNHEALTHY");
  }, 30_000);
});

describe("airlock install of a new site that succeeds at once", () => {
  it("shows each new account's password once, as it is made, and not again in the summary", async () => {
    const siteHost = await fx.dir("fresh-host");
    const siteSystemctl = await fakeSystemctl(await fx.dir("fresh-systemctl"), siteHost);
    try {
      const result = await runCli(
        [
          ...["--data-dir", join(await fx.dir("fresh-data"), "airlock"), "install", "--bundle", bundle],
          ...["--kubeconfig", kubeconfig, "--host-root", siteHost],
          ...["--registry-listen", `127.0.0.1:${await freePort()}`, "--timeout", "60s"],
          ...(await siteDaemonListenArgs()),
        ],
        { env: siteSystemctl.env },
      );
      expect(result.stderr).toBe("");
      expect(result.code).toBe(0);
      expect(result.stdout).toMatch(/^installed mgmt 4\.5\.0 in /m);
      const accountLines = result.stdout.split("\n").filter((line) => line.startsWith("new account "));
      expect(accountLines.filter((line) => /^new account admin .*shown once/.test(line))).toHaveLength(1);
      expect(new Set(accountLines).size).toBe(accountLines.length);
      const consoleLines = result.stdout.split("\n").filter((line) => line.startsWith("new console user "));
      expect(consoleLines).toHaveLength(1);
      expect(consoleLines[0]).toMatch(
        /^new console user admin \(console admin; .*\): one-time password \S+ {2}— shown once$/,
      );
    } finally {
      await siteSystemctl.stopAll();
    }
  }, 120_000);
});
