/**
 * The stand-in k3s and systemctl the install and join tests rely on, held to what the real ones do:
 * the unit Airlock writes, started by the stand-in systemctl, runs the stand-in k3s server from
 * under the host root; it writes the node token pinning its CA, the CA, and a kubeconfig that the
 * real client follows to the in-memory API server (waitForK3sServer gets as far as the node); it
 * serves /cacerts; stop ends it by PID, and a restart keeps its CA and token.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  KubeClusterClient,
  MemoryCluster,
  serveClusterApi,
  type RunningClusterApiServer,
} from "../../installer/cluster/index.js";
import { HostRoot, Systemd, type CommandRunner } from "../../installer/host/index.js";
import {
  K3S_BINARY,
  K3S_KUBECONFIG,
  caHashOf,
  k3sPaths,
  k3sUnit,
  verifyServerCa,
  waitForK3sServer,
  type JoinToken,
} from "../../installer/k3s/index.js";
import { freePort } from "../helpers/daemons.js";
import { rejection } from "../helpers/errors.js";
import {
  STANDIN_K3S,
  standinBin,
  standinCalls,
  standinEnv,
  stopStandinServices,
} from "../helpers/standin/index.js";

const API_TOKEN = "standin-api-token";
let dir: string;
let root: string;
let log: string;
let cluster: MemoryCluster;
let api: RunningClusterApiServer;
let systemd: Systemd;
let supervisorUrl: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-standin-"));
  root = join(dir, "root");
  log = join(dir, "standin.log");
  const [key, cert] = [join(dir, "api.key"), join(dir, "api.crt")];
  await promisify(execFile)("openssl", [
    ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"],
    ...[
      "-subj",
      "/CN=kube-apiserver",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
      "-keyout",
      key,
      "-out",
      cert,
    ],
  ]);
  cluster = new MemoryCluster();
  api = await serveClusterApi(cluster, {
    tls: { cert: await readFile(cert, "utf8"), key: await readFile(key, "utf8") },
    token: API_TOKEN,
  });
  const port = await freePort();
  supervisorUrl = `https://127.0.0.1:${port}`;
  const env = standinEnv(await standinBin(dir), root, log, {
    STANDIN_K3S_SUPERVISOR_PORT: String(port),
    STANDIN_K3S_API_URL: api.url,
    STANDIN_K3S_API_TOKEN: API_TOKEN,
    STANDIN_K3S_API_CA_FILE: cert,
  });
  const run: CommandRunner = async (command, args) => {
    const { stdout, stderr } = await promisify(execFile)(command, [...args], { env });
    return { stdout, stderr, code: 0 };
  };
  const host = new HostRoot(root);
  systemd = new Systemd(host, run);
  await host.installFile(STANDIN_K3S, K3S_BINARY, 0o755);
  await systemd.installUnit("k3s.service", k3sUnit("server", k3sPaths("server").envFile));
});

afterAll(async () => {
  await stopStandinServices(root);
  await api.close();
  cluster.close();
  await rm(dir, { recursive: true, force: true });
});

/** The stand-in server's CA and token once it wrote them and /cacerts answers, bounded in time. */
async function started(): Promise<{ caPem: string; nodeToken: string }> {
  const host = new HostRoot(root);
  const paths = k3sPaths("server");
  const deadline = Date.now() + 15_000;
  for (;;) {
    const [caPem, nodeToken] = [await host.readFile(paths.serverCa), await host.readFile(paths.nodeToken)];
    if (caPem !== undefined && nodeToken !== undefined) {
      const pinned: JoinToken = {
        server: supervisorUrl,
        k3sToken: nodeToken.trim(),
        caHash: caHashOf(caPem),
        registry: { address: "unused:5443", caPem, username: "unused", password: "unused" },
      };
      const served = await verifyServerCa(pinned, 2_000).catch(() => undefined);
      if (served === caPem) return { caPem, nodeToken };
    }
    if (Date.now() >= deadline) throw new Error("the stand-in k3s server did not come up within 15 s");
    await delay(50);
  }
}

describe("the stand-in k3s server, run by the stand-in systemctl from the unit Airlock writes", () => {
  it("writes the CA, a node token pinning it and a kubeconfig the real client follows; stop and restart", async () => {
    await systemd.enableAndStart("k3s.service", false);
    expect(await systemd.isActive("k3s.service")).toBe(true);
    const first = await started();
    expect(first.nodeToken.trim()).toMatch(new RegExp(`^K10${caHashOf(first.caPem)}::server:[0-9a-f]{32}$`));
    expect((await stat(join(root, k3sPaths("server").nodeToken))).mode & 0o777).toBe(0o600);
    expect((await stat(join(root, K3S_KUBECONFIG))).mode & 0o777).toBe(0o600);

    const client = KubeClusterClient.fromKubeconfig(join(root, K3S_KUBECONFIG));
    await client.apply(
      { apiVersion: "v1", kind: "Namespace", metadata: { name: "via-k3s-yaml" } },
      { fieldManager: "test" },
    );
    expect(await cluster.get({ apiVersion: "v1", kind: "Namespace", name: "via-k3s-yaml" })).toBeDefined();
    // The API answers through k3s.yaml: what is left to wait for is the node (no kubelet here).
    const waiting = await rejection(
      waitForK3sServer({ host: new HostRoot(root), nodeName: "server-1", timeoutMs: 0 }),
    );
    expect(waiting.message).toBe("k3s did not become ready: still waiting for node server-1 to register");

    await systemd.stop("k3s.service");
    expect(await systemd.isActive("k3s.service")).toBe(false);
    await systemd.enableAndStart("k3s.service", true);
    expect(await started()).toEqual(first);
    const calls = (await standinCalls(log)).map((call) => [call.program, ...call.args].join(" "));
    expect(calls.filter((call) => call.startsWith("systemctl"))).toEqual([
      "systemctl enable k3s.service",
      "systemctl start k3s.service",
      "systemctl is-active k3s.service",
      "systemctl stop k3s.service",
      "systemctl is-active k3s.service",
      "systemctl enable k3s.service",
      "systemctl restart k3s.service",
    ]);
    expect(calls.filter((call) => call === "k3s server")).toHaveLength(2);
  });
});
