import { resolve } from "node:path";
import type { Command } from "commander";
import { runInstall, type InstallResult, type NewAccount, type StepEvent } from "../install/index.js";
import {
  DEFAULT_CONSOLE_LISTEN,
  DEFAULT_HEALTH_LISTEN,
  DEFAULT_REGISTRY_LISTEN,
  parseListen,
} from "../preflight/index.js";
import type { State } from "../state/index.js";
import { emit, parseDuration, seconds, type OutputOptions } from "./output.js";
import type { Runner } from "./context.js";
import { loadUi } from "./ui.js";

interface InstallFlags {
  bundle: string[];
  key?: string;
  values?: string;
  kubeconfig?: string;
  hostRoot: string;
  nodeName?: string;
  registryListen: string;
  consoleListen: string;
  healthListen: string;
  timeout: string;
}

/** The console's first admin, made by the first install. */
const CONSOLE_ADMIN = "admin";

/** The console's first admin with a one-time password, unless the site has an admin already. */
async function ensureConsoleAdmin(state: State): Promise<NewAccount | undefined> {
  const { UserRecords } = await loadUi();
  const users = new UserRecords(state);
  if (users.list().some((user) => user.role === "admin")) return undefined;
  const { password } = await users.add(CONSOLE_ADMIN, "admin", "install");
  return {
    service: "console",
    username: CONSOLE_ADMIN,
    password,
    role: "console admin; a one-time password, changed at first sign-in",
  };
}

/** The console's address as an operator on this host opens it. */
function consoleUrl(listen: string): string {
  const { host, port } = parseListen(listen, "--console-listen");
  const shown = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return `https://${shown}:${port}/`;
}

const MARKS = { start: "... ", done: "ok  ", "already-done": "ok  ", failed: "FAIL" } as const;

/** One line per finished step, as it finishes: what an operator watching a pipe or a log needs. */
function stepLine(event: StepEvent): string {
  const what = event.phase === "failed" ? `${event.error?.code}: ${event.error?.message}` : event.summary;
  return `${MARKS[event.phase]}  ${event.title.padEnd(20)} ${seconds(event.durationMs ?? 0).padStart(8)}  ${what ?? ""}`;
}

/**
 * What install writes on stdout as it goes: a line per finished step and each new account. On a
 * terminal the running step shows as `...` until it ends, then its line replaces it; in a pipe
 * only finished steps are written.
 */
function progressWriter(output: OutputOptions): { step(event: StepEvent): void; line(text: string): void } {
  const live = output.progress && process.stdout.isTTY;
  let running: string | undefined;
  const clear = (): string => (live && running !== undefined ? "\r\u001b[2K" : "");
  return {
    step(event) {
      if (output.json) return;
      if (event.phase === "start") {
        running = `${MARKS.start}  ${event.title}`;
        if (live) process.stdout.write(running);
        return;
      }
      process.stdout.write(`${clear()}${stepLine(event)}\n`);
      running = undefined;
    },
    line(text) {
      process.stdout.write(`${clear()}${text}\n${live && running !== undefined ? running : ""}`);
    },
  };
}

function accountLine(account: NewAccount): string {
  if (account.service === "console") {
    return `new console user ${account.username} (${account.role}): one-time password ${account.password}  — shown once`;
  }
  return `new account ${account.username} (${account.role}): password ${account.password}  — shown once, keep it`;
}

function renderResult(result: InstallResult, consoleListen: string): string {
  const lines: string[] = [];
  if (result.outcome === "unchanged") {
    lines.push(
      `installed, nothing to do: ${result.bundle.name} ${result.bundle.version} runs as release ${result.release?.id}`,
    );
  } else {
    const total = result.steps.reduce((sum, step) => sum + step.durationMs, 0);
    lines.push(
      "",
      `installed ${result.bundle.name} ${result.bundle.version} in ${seconds(total)}: release ${result.release?.id}`,
    );
  }
  // New accounts are not repeated here: their lines were written the moment each was made.
  lines.push(`registry ${result.registry.url} (clients trust ${result.registry.caFile})`);
  lines.push(`console  ${consoleUrl(consoleListen)} (the same CA)`);
  if (result.nodeConfig !== undefined) {
    lines.push(
      `node files in ${result.nodeConfig.dir}: ${result.nodeConfig.files.join(", ")}`,
      `  ${result.nodeConfig.instructions}`,
    );
  }
  return lines.join("\n");
}

export function registerInstall(program: Command, run: Runner): void {
  program
    .command("install")
    .description("install the plane from a bundle: resumable, a re-run finishes what an earlier one left")
    .requiredOption("--bundle <file...>", "the bundle (its tar, its parts, or its .parts.json)")
    .option("--key <pub.pem>", "the vendor's public key the bundle must be signed with")
    .option("--values <values.yaml>", "the operator's values, over the bundle's")
    .option("--kubeconfig <file>", "install into this existing cluster instead of k3s from the bundle")
    .option("--host-root <dir>", "where host files go (the registry's unit, k3s)", "/")
    .option("--node-name <name>", "the k3s node's name (default: the host name)")
    .option("--registry-listen <host:port>", "where Airlock's registry listens", DEFAULT_REGISTRY_LISTEN)
    .option("--console-listen <host:port>", "where the web console listens (HTTPS)", DEFAULT_CONSOLE_LISTEN)
    .option("--health-listen <host:port>", "where the site daemon answers /healthz", DEFAULT_HEALTH_LISTEN)
    .option("--timeout <duration>", "how long the plane may take to roll out", "15m")
    .action(async (flags: InstallFlags, command: Command) =>
      run(command, async (context) => {
        const timeoutMs = parseDuration(flags.timeout, "--timeout", "15m");
        const made: NewAccount[] = [];
        const progress = progressWriter(context.output);
        const installing = runInstall({
          dataDir: context.dataDir,
          bundle: flags.bundle,
          publicKey: flags.key,
          valuesFile: flags.values,
          cluster:
            flags.kubeconfig === undefined
              ? { kind: "k3s" }
              : { kind: "kubeconfig", kubeconfig: resolve(flags.kubeconfig) },
          hostRoot: flags.hostRoot,
          nodeName: flags.nodeName,
          registryListen: flags.registryListen,
          consoleListen: flags.consoleListen,
          healthListen: flags.healthListen,
          ensureConsoleAdmin,
          airlockCommand: [process.execPath, resolve(process.argv[1]!)],
          timeoutMs,
          signal: context.signal,
          onStep: (event) => progress.step(event),
          // Shown as soon as made in text; with --json in the result, or on stderr if the install fails.
          onAccountCreated: (account) => {
            if (context.output.json) made.push(account);
            else progress.line(accountLine(account));
          },
        });
        const result = await installing.catch((error: unknown) => {
          for (const account of made) process.stderr.write(`${accountLine(account)}\n`);
          throw error;
        });
        emit(context.output, result, () => renderResult(result, flags.consoleListen));
      }),
    );
}
