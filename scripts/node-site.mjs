// A site for `airlock install` on the containerd node, as test/integration/install-proof.test.ts
// sets one up, for the scripts that run the built CLI (the demo, bench/install.mjs): a containerd of
// the run's own; MemoryCluster on the containerd node, whose registries.yaml is the one install
// writes under the temporary host root (the node reads it at its first pull, as k3s's agent does);
// that cluster behind the kube-apiserver facade over TLS, which the stand-in `k3s server` names in
// the k3s.yaml it writes; and the stand-ins (test/helpers/standin/: k3s, and a systemctl that runs
// the units install writes for real) first in PATH. `close` stops what it started, by PID.
import fs from "node:fs/promises";
import { createServer } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { $ } from "zx";
import { startContainerd } from "../bench/node-setup.mjs";

const REPO = path.resolve(import.meta.dirname, "..");
const STANDIN = path.join(REPO, "test/helpers/standin");
/** The stand-in k3s, self-contained: a bundle carries it as its bin/k3s. */
export const STANDIN_K3S = path.join(STANDIN, "k3s.mjs");
const TOKEN = "standin-k3s-token";

/** Makes the sample project at `sampleDir` carry the stand-in k3s as its bin/k3s (no real k3s runs here). */
export async function useStandinK3s(sampleDir) {
  const target = path.join(sampleDir, "bin", "k3s");
  await fs.copyFile(STANDIN_K3S, target);
  await fs.chmod(target, 0o755);
}

/** A free TCP port on 127.0.0.1. */
export async function freeLoopbackPort() {
  const server = createServer();
  await new Promise((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function selfSigned(dir) {
  await fs.mkdir(dir, { recursive: true });
  const [cert, key] = [path.join(dir, "server.crt"), path.join(dir, "server.key")];
  await $({
    quiet: true,
  })`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout ${key} -out ${cert}`;
  return { cert, key };
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Ends, by PID, every service the stand-in systemctl started under `hostRoot`, and waits (bounded) until each is gone. */
async function stopStandinServices(hostRoot) {
  const state = path.join(hostRoot, "run/systemd/standin");
  for (const file of (await fs.readdir(state).catch(() => [])).filter((name) => name.endsWith(".pid"))) {
    const pid = Number(await fs.readFile(path.join(state, file), "utf8"));
    if (!alive(pid)) continue;
    process.kill(pid, "SIGTERM");
    for (let waited = 0; alive(pid) && waited < 15_000; waited += 50) await sleep(50);
    if (alive(pid)) process.kill(pid, "SIGKILL");
  }
}

/**
 * Starts the site in `work` (made if missing). `load(module)` imports a module of the built library
 * (e.g. "installer/cluster/index.js"); `onEvent` gets the node's events (pull, create, ready…).
 * Returns the host root, the containerd socket, the node, the cluster, the environment to run
 * `airlock install` in (stand-ins first in PATH, their host root and call log, the API they name),
 * the unit log of a service the stand-in runs, and `close`.
 */
export async function startNodeSite({ work, load, nodeName, onEvent = () => {} }) {
  const closers = [];
  const close = async () => {
    for (const closer of closers.reverse()) await closer();
  };
  try {
    await fs.mkdir(work, { recursive: true });
    const { MemoryCluster, serveClusterApi } = await load("installer/cluster/index.js");
    const { createContainerdNode } = await load("installer/cluster/node/index.js");
    const socket = await startContainerd(path.join(work, "containerd"), closers);
    const hostRoot = path.join(work, "host");
    await fs.mkdir(hostRoot, { recursive: true });
    const node = await createContainerdNode({
      containerdSocket: socket,
      dir: path.join(work, "node"),
      registriesFile: "/etc/rancher/k3s/registries.yaml",
      hostRoot,
      backoff: { initialMs: 500, maxMs: 4_000 },
      pullTimeoutMs: 60_000,
      onEvent,
    });
    const cluster = new MemoryCluster({ node, nodeName });
    closers.push(async () => {
      cluster.close();
      await node.close();
    });
    const tls = await selfSigned(path.join(work, "apiserver"));
    const api = await serveClusterApi(cluster, {
      tls: { cert: await fs.readFile(tls.cert, "utf8"), key: await fs.readFile(tls.key, "utf8") },
      token: TOKEN,
    });
    closers.push(() => api.close());
    const bin = path.join(work, "standin-bin");
    await fs.mkdir(bin, { recursive: true });
    for (const name of ["k3s", "systemctl"])
      await fs.symlink(path.join(STANDIN, `${name}.mjs`), path.join(bin, name));
    closers.push(() => stopStandinServices(hostRoot));
    const env = {
      ...process.env,
      PATH: `${bin}:${process.env.PATH}`,
      STANDIN_HOST_ROOT: hostRoot,
      STANDIN_LOG: path.join(work, "standin-calls.jsonl"),
      STANDIN_K3S_API_URL: api.url,
      STANDIN_K3S_API_TOKEN: TOKEN,
      STANDIN_K3S_API_CA_FILE: tls.cert,
      STANDIN_K3S_SUPERVISOR_PORT: String(await freeLoopbackPort()),
    };
    const unitLog = (unit) => path.join(hostRoot, "run/systemd/standin", `${unit}.log`);
    return { hostRoot, socket, node, cluster, env, unitLog, close };
  } catch (error) {
    await close();
    throw error;
  }
}
