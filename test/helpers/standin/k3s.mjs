#!/usr/bin/env node
/**
 * A stand-in `k3s` for tests under a temporary host root ($STANDIN_HOST_ROOT), self-contained so it
 * can be installed as the bundle's bin/k3s and run from there by the stand-in systemctl. Each run is
 * recorded as one JSON line in $STANDIN_LOG.
 *
 * `k3s server` writes what the real one would: the server CA (`server/tls/server-ca.crt`, made with
 * openssl, kept across restarts), the node token `K10<sha256 of the CA>::server:<secret>`, and
 * `/etc/rancher/k3s/k3s.yaml` naming $STANDIN_K3S_API_URL (with $STANDIN_K3S_API_TOKEN and the CA
 * in $STANDIN_K3S_API_CA_FILE) — the in-memory API server a test runs — or else itself; then serves
 * `/cacerts` over HTTPS on 127.0.0.1:$STANDIN_K3S_SUPERVISOR_PORT (6443 by default, as k3s) until
 * killed. `k3s --version` prints VERSION as k3s does (a test makes a k3s of another version by
 * copying this file with that constant changed). `k3s agent` takes K3S_URL and K3S_TOKEN from its environment, checks the server's
 * `/cacerts` against the token's CA hash as the real agent does, records both, and stays running.
 */
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { appendFileSync, chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, get } from "node:https";
import { dirname, join } from "node:path";
import { setInterval } from "node:timers";

/** This stand-in's k3s version, as `k3s --version` and its server's record say it. */
const VERSION = "v1.32.3+k3s1";
if (process.argv[2] === "--version") {
  process.stdout.write(`k3s version ${VERSION} (0standin)\ngo version go1.23.6\n`);
  process.exit(0);
}

const hostRoot = process.env.STANDIN_HOST_ROOT;
const log = process.env.STANDIN_LOG;
if (hostRoot === undefined || log === undefined) {
  process.stderr.write("stand-in k3s: set STANDIN_HOST_ROOT and STANDIN_LOG\n");
  process.exit(2);
}
const [role] = process.argv.slice(2);
const at = (hostPath) => join(hostRoot, hostPath);
const record = (entry) =>
  appendFileSync(
    log,
    JSON.stringify({ program: "k3s", args: process.argv.slice(2), pid: process.pid, ...entry }) + "\n",
  );
const sha256 = (text) => createHash("sha256").update(text).digest("hex");

function writeHostFile(hostPath, content, mode) {
  mkdirSync(dirname(at(hostPath)), { recursive: true });
  writeFileSync(at(hostPath), content, { mode });
  chmodSync(at(hostPath), mode);
}

function dataDir() {
  const config = at("/etc/rancher/k3s/config.yaml");
  const match = existsSync(config) ? /^data-dir: *(.+)$/m.exec(readFileSync(config, "utf8")) : null;
  return match === null ? "/var/lib/rancher/k3s" : match[1].trim();
}

function serverCa(tls) {
  const [cert, key] = [`${tls}/server-ca.crt`, `${tls}/server-ca.key`];
  if (!existsSync(at(cert))) {
    mkdirSync(at(tls), { recursive: true });
    execFileSync(
      "openssl",
      [
        ...["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "365"],
        ...["-subj", `/CN=k3s-server-ca@${Date.now()}`, "-addext", "subjectAltName=IP:127.0.0.1"],
        ...["-keyout", at(key), "-out", at(cert)],
      ],
      { stdio: "ignore" },
    );
    chmodSync(at(key), 0o600);
  }
  return { cert: readFileSync(at(cert), "utf8"), key: readFileSync(at(key), "utf8") };
}

function kubeconfig(url, caPem, token) {
  return [
    "apiVersion: v1",
    "kind: Config",
    "clusters:",
    "- name: default",
    "  cluster:",
    `    server: ${url}`,
    `    certificate-authority-data: ${Buffer.from(caPem).toString("base64")}`,
    "users:",
    "- name: default",
    "  user:",
    `    token: ${token}`,
    "contexts:",
    "- name: default",
    "  context:",
    "    cluster: default",
    "    user: default",
    "current-context: default",
    "",
  ].join("\n");
}

function server() {
  const data = dataDir();
  const port = Number(process.env.STANDIN_K3S_SUPERVISOR_PORT ?? 6443);
  const ca = serverCa(`${data}/server/tls`);
  const nodeToken = `${data}/server/node-token`;
  if (!existsSync(at(nodeToken)))
    writeHostFile(nodeToken, `K10${sha256(ca.cert)}::server:${randomBytes(16).toString("hex")}\n`, 0o600);
  const apiCaFile = process.env.STANDIN_K3S_API_CA_FILE;
  writeHostFile(
    "/etc/rancher/k3s/k3s.yaml",
    kubeconfig(
      process.env.STANDIN_K3S_API_URL ?? `https://127.0.0.1:${port}`,
      apiCaFile === undefined ? ca.cert : readFileSync(apiCaFile, "utf8"),
      process.env.STANDIN_K3S_API_TOKEN ?? randomBytes(16).toString("hex"),
    ),
    0o600,
  );
  const supervisor = createServer({ cert: ca.cert, key: ca.key }, (req, res) => {
    if (req.url === "/cacerts") res.writeHead(200, { "content-type": "text/plain" }).end(ca.cert);
    else res.writeHead(404).end();
  });
  supervisor.listen(port, "127.0.0.1", () =>
    record({ supervisor: `https://127.0.0.1:${port}`, version: VERSION }),
  );
  process.once("SIGTERM", () => supervisor.close(() => process.exit(0)));
}

function caCerts(url) {
  return new Promise((resolve, reject) => {
    const req = get(new URL("/cacerts", url), { rejectUnauthorized: false, timeout: 10_000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk) => (body += chunk));
      res.on("end", () => resolve(body));
    });
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", reject);
  });
}

async function agent() {
  const { K3S_URL, K3S_TOKEN } = process.env;
  const pinned = /^K10([0-9a-f]{64})::/.exec(K3S_TOKEN ?? "")?.[1];
  let caHashMatches = false;
  try {
    caHashMatches = pinned !== undefined && sha256(await caCerts(K3S_URL)) === pinned;
  } catch (error) {
    process.stderr.write(`stand-in k3s agent: cannot read ${K3S_URL}/cacerts: ${error.message}\n`);
  }
  record({ env: { K3S_URL, K3S_TOKEN }, caHashMatches });
  setInterval(() => undefined, 60_000);
  process.once("SIGTERM", () => process.exit(0));
}

if (role === "server") server();
else if (role === "agent") await agent();
else {
  process.stderr.write(`stand-in k3s: unknown command ${role}\n`);
  process.exit(1);
}
