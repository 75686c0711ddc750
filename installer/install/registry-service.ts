import { readFile } from "node:fs/promises";
import { request } from "node:https";
import { AirlockError } from "../../registry/oci/index.js";
import { renderUnit, UNIT_DIR, type HostRoot, type Systemd } from "../host/index.js";
import { accountFiles, ensureAccounts, type RegistryAccounts } from "./accounts.js";
import type { StepDefinition } from "./machine.js";
import { localAddress, pullEndpoint } from "./registry-address.js";
import type { PkiDetail } from "./steps-site.js";
import type { InstallContext, RegistryAccess } from "./types.js";

export const REGISTRY_UNIT = "airlock-registry.service";
const ANSWER_TIMEOUT_MS = 30_000;
const PROBE_INTERVAL_MS = 100;

/** A systemd ExecStart word: quoted when it holds what systemd would split or expand. */
function unitWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/(["\\$])/g, "\\$1")}"`;
}

export interface RegistryUnitOptions {
  airlockCommand: string[];
  dataDir: string;
  listen: string;
  tls: { certFile: string; keyFile: string };
  htpasswdFile: string;
  pushUser: string;
}

/** `airlock-registry.service`: Airlock's registry over the store, TLS from the site CA, accounts from htpasswd. */
export function registryUnit(options: RegistryUnitOptions): string {
  const command = [
    ...options.airlockCommand,
    ...["--data-dir", options.dataDir, "--log-format", "json", "registry", "serve"],
    ...["--listen", options.listen, "--tls-cert", options.tls.certFile, "--tls-key", options.tls.keyFile],
    ...["--auth", `htpasswd:${options.htpasswdFile}`, "--push-user", options.pushUser],
  ];
  return renderUnit("the site's OCI registry", [
    [
      "Unit",
      [
        ["Description", "Airlock registry"],
        ["After", "network-online.target"],
      ],
    ],
    [
      "Service",
      [
        ["ExecStart", command.map(unitWord).join(" ")],
        ["ExecReload", "/bin/kill -HUP $MAINPID"],
        ["Restart", "on-failure"],
        ["RestartSec", "2"],
      ],
    ],
    ["Install", [["WantedBy", "multi-user.target"]]],
  ]);
}

const MAX_ANSWER_BYTES = 1024 * 1024;

/** One GET (or HEAD) over TLS with the site CA and an account: the status and (small) body, or the failure. */
export function registryGet(
  address: string,
  path: string,
  caPem: string,
  account: { username: string; password: string },
  method: "GET" | "HEAD" = "GET",
  accept?: string,
): Promise<{ status: number; body: string } | Error> {
  return new Promise((resolve) => {
    const req = request(
      `https://${address}${path}`,
      {
        method,
        ca: caPem,
        timeout: 5000,
        headers: {
          authorization: `Basic ${Buffer.from(`${account.username}:${account.password}`).toString("base64")}`,
          ...(accept === undefined ? {} : { accept }),
        },
      },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (chunk: string) => {
          if (body.length < MAX_ANSWER_BYTES) body += chunk;
        });
        res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
        res.on("error", (error) => resolve(error));
      },
    );
    req.on("timeout", () => req.destroy(new Error("no answer within 5 s")));
    req.on("error", (error) => resolve(error));
    req.end();
  });
}

/** `/v2/` with the pull account: the HTTP status, or the failure. */
export async function probeRegistry(
  address: string,
  caPem: string,
  account: { username: string; password: string },
): Promise<number | Error> {
  const answer = await registryGet(address, "/v2/", caPem, account);
  return answer instanceof Error ? answer : answer.status;
}

/** Polls until the registry answers 200 to the pull account, or fails naming the last answer. */
async function waitForRegistry(
  address: string,
  caPem: string,
  access: RegistryAccess,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + ANSWER_TIMEOUT_MS;
  let last: number | Error = new Error("not asked yet");
  while (Date.now() < deadline) {
    signal?.throwIfAborted();
    last = await probeRegistry(address, caPem, access);
    if (last === 200) return;
    await new Promise((resolve) => setTimeout(resolve, PROBE_INTERVAL_MS));
  }
  throw new AirlockError(
    "REGISTRY_NOT_ANSWERING",
    `Airlock's registry at ${address} did not answer /v2/ within ${ANSWER_TIMEOUT_MS / 1000} s: ${last instanceof Error ? last.message : `HTTP ${last}`}`,
    {
      where: `${REGISTRY_UNIT} (${address})`,
      hint: `look at the service: \`systemctl status ${REGISTRY_UNIT}\` and \`journalctl -u ${REGISTRY_UNIT}\``,
    },
  );
}

/** The registry step's detail: what the cluster step and status read. Passwords stay in their 0600 file. */
export interface RegistryDetail {
  url: string;
  /** The address it listens on, `host:port`. */
  listen: string;
  unit: string;
  htpasswdFile: string;
  access: Omit<RegistryAccess, "password"> & { passwordFile: string };
}

/** How nodes reach the registry, with the pull account's password read from its file. */
export async function registryAccessOf(detail: RegistryDetail): Promise<RegistryAccess> {
  const { passwordFile, ...access } = detail.access;
  return { ...access, password: (await readFile(passwordFile, "utf8")).trim() };
}

function unitOptions(
  context: InstallContext,
  pki: PkiDetail,
  accounts: RegistryAccounts,
): RegistryUnitOptions {
  return {
    airlockCommand: context.options.airlockCommand,
    dataDir: context.dataDir,
    listen: context.registryListen,
    tls: pki.registry,
    htpasswdFile: accounts.htpasswdFile,
    pushUser: "admin",
  };
}

async function unitUnchanged(host: HostRoot, content: string): Promise<boolean> {
  return (await host.readFile(`${UNIT_DIR}/${REGISTRY_UNIT}`)) === content;
}

async function startUnit(systemd: Systemd, changed: boolean): Promise<void> {
  if (changed) await systemd.daemonReload();
  await systemd.enableAndStart(REGISTRY_UNIT, changed);
}

export const registryStep: StepDefinition<InstallContext> = {
  name: "registry",
  title: "Registry service",
  async stillDone(context, detail) {
    const access = await registryAccessOf(detail as unknown as RegistryDetail);
    const caPem = await readFile(access.caFile, "utf8");
    return (
      (await context.systemd.isActive(REGISTRY_UNIT)) &&
      (await probeRegistry(localAddress(context.registryListen), caPem, access)) === 200
    );
  },
  async run(context) {
    const pki = context.details.get("pki") as unknown as PkiDetail;
    const accounts = await ensureAccounts(context.dataDir);
    for (const account of accounts.created) {
      context.newAccounts.push(account);
      context.options.onAccountCreated?.(account);
    }
    const unit = registryUnit(unitOptions(context, pki, accounts));
    const sameUnit = await unitUnchanged(context.host, unit);
    await context.systemd.installUnit(REGISTRY_UNIT, unit);
    // New accounts or a new unit: the running registry must read them again.
    await startUnit(context.systemd, !sameUnit || accounts.created.length > 0);
    const endpoint = pullEndpoint(context.registryListen);
    const access: RegistryAccess = { endpoint, caFile: pki.caFile, ...accounts.pull };
    await waitForRegistry(
      localAddress(context.registryListen),
      await readFile(pki.caFile, "utf8"),
      access,
      context.options.signal,
    );
    const { password: _password, ...kept } = access;
    const detail: RegistryDetail = {
      url: `https://${endpoint}`,
      listen: context.registryListen,
      unit: REGISTRY_UNIT,
      htpasswdFile: accounts.htpasswdFile,
      access: { ...kept, passwordFile: accountFiles(context.dataDir).pullPasswordFile },
    };
    return {
      detail: { ...detail },
      summary: `${REGISTRY_UNIT} answers at https://${endpoint}${accounts.created.length > 0 ? `; accounts made: ${accounts.created.map((a) => a.username).join(", ")}` : ""}`,
    };
  },
};
