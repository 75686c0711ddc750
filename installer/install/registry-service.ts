import { readFile } from "node:fs/promises";
import { request } from "node:https";
import { AirlockError } from "../../registry/oci/index.js";
import { renderUnit, UNIT_DIR, type HostRoot, type Systemd } from "../host/index.js";
import { DEFAULT_CONSOLE_LISTEN, DEFAULT_HEALTH_LISTEN } from "../preflight/index.js";
import { ADMIN_USER, accountFiles, ensureAccounts, type RegistryAccounts } from "./accounts.js";
import type { StepDefinition } from "./machine.js";
import { localAddress, pullEndpoint } from "./registry-address.js";
import type { PkiDetail } from "./steps-site.js";
import type { InstallContext, NewAccount, RegistryAccess } from "./types.js";

/** The site daemon's unit: `airlock serve`, the registry, the console and the upgrade scheduler. */
export const SITE_UNIT = "airlock.service";
/** The unit installs before the site daemon wrote (`airlock registry serve`): replaced by SITE_UNIT. */
export const LEGACY_REGISTRY_UNIT = "airlock-registry.service";

const ANSWER_TIMEOUT_MS = 30_000;
const PROBE_INTERVAL_MS = 100;

/** A systemd ExecStart word: quoted when it holds what systemd would split or expand. */
function unitWord(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `"${word.replace(/(["\\$])/g, "\\$1")}"`;
}

export interface SiteUnitOptions {
  airlockCommand: string[];
  dataDir: string;
  listen: string;
  tls: { certFile: string; keyFile: string };
  htpasswdFile: string;
  pushUser: string;
  /** Where the console listens, `host:port`. */
  consoleListen: string;
  /** Where `/healthz` is answered, `host:port`. */
  healthListen: string;
}

/**
 * `airlock.service`: `airlock serve` — Airlock's registry over the store (TLS from the site CA,
 * accounts from htpasswd), the web console on its own port, the upgrade scheduler, `/healthz`.
 */
export function siteUnit(options: SiteUnitOptions): string {
  const command = [
    ...options.airlockCommand,
    ...["--data-dir", options.dataDir, "--log-format", "json", "serve"],
    ...["--registry-listen", options.listen],
    ...["--tls-cert", options.tls.certFile, "--tls-key", options.tls.keyFile],
    ...["--auth", `htpasswd:${options.htpasswdFile}`, "--push-user", options.pushUser],
    ...["--console-listen", options.consoleListen, "--health-listen", options.healthListen],
  ];
  return renderUnit("the site daemon (registry, console, upgrade scheduler)", [
    [
      "Unit",
      [
        ["Description", "Airlock site daemon: registry, console, upgrade scheduler"],
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
      where: `${SITE_UNIT} (${address})`,
      hint: `look at the service: \`systemctl status ${SITE_UNIT}\` and \`journalctl -u ${SITE_UNIT}\``,
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

function unitOptions(context: InstallContext, pki: PkiDetail, accounts: RegistryAccounts): SiteUnitOptions {
  return {
    airlockCommand: context.options.airlockCommand,
    dataDir: context.dataDir,
    listen: context.registryListen,
    tls: pki.registry,
    htpasswdFile: accounts.htpasswdFile,
    pushUser: ADMIN_USER,
    consoleListen: context.options.consoleListen ?? DEFAULT_CONSOLE_LISTEN,
    healthListen: context.options.healthListen ?? DEFAULT_HEALTH_LISTEN,
  };
}

/**
 * The accounts this run made — the registry's, and the console's admin on a first install — each
 * told once, the moment it is made.
 */
async function announceNewAccounts(
  context: InstallContext,
  accounts: RegistryAccounts,
): Promise<NewAccount[]> {
  const made: NewAccount[] = accounts.created.map((account) => ({ ...account, service: "registry" }));
  const consoleAdmin = await context.options.ensureConsoleAdmin?.(context.state);
  if (consoleAdmin !== undefined) made.push(consoleAdmin);
  for (const account of made) {
    context.newAccounts.push(account);
    context.options.onAccountCreated?.(account);
  }
  return made;
}

async function unitUnchanged(host: HostRoot, content: string): Promise<boolean> {
  return (await host.readFile(`${UNIT_DIR}/${SITE_UNIT}`)) === content;
}

async function startUnit(systemd: Systemd, changed: boolean): Promise<void> {
  if (changed) await systemd.daemonReload();
  await systemd.enableAndStart(SITE_UNIT, changed);
}

export const registryStep: StepDefinition<InstallContext> = {
  name: "registry",
  title: "Registry service",
  async stillDone(context, detail) {
    const access = await registryAccessOf(detail as unknown as RegistryDetail);
    const caPem = await readFile(access.caFile, "utf8");
    return (
      (await context.systemd.isActive(SITE_UNIT)) &&
      (await probeRegistry(localAddress(context.registryListen), caPem, access)) === 200
    );
  },
  async run(context) {
    const pki = context.details.get("pki") as unknown as PkiDetail;
    const accounts = await ensureAccounts(context.dataDir);
    const made = await announceNewAccounts(context, accounts);
    // A site installed before the daemon runs the registry alone: its unit goes, the daemon's replaces it.
    const replaced = await context.systemd.removeUnit(LEGACY_REGISTRY_UNIT);
    const unit = siteUnit(unitOptions(context, pki, accounts));
    const sameUnit = !replaced && (await unitUnchanged(context.host, unit));
    await context.systemd.installUnit(SITE_UNIT, unit);
    // New accounts or a new unit: the running daemon must read them again.
    await startUnit(context.systemd, !sameUnit || made.length > 0);
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
      unit: SITE_UNIT,
      htpasswdFile: accounts.htpasswdFile,
      access: { ...kept, passwordFile: accountFiles(context.dataDir).pullPasswordFile },
    };
    return {
      detail: { ...detail },
      summary: `${SITE_UNIT} answers at https://${endpoint}${made.length > 0 ? `; accounts made: ${made.map((a) => `${a.username} (${a.service})`).join(", ")}` : ""}`,
    };
  },
};
