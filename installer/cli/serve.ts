import { resolve } from "node:path";
import type { Command } from "commander";
import {
  DEFAULT_CONSOLE_LISTEN,
  DEFAULT_HEALTH_LISTEN,
  DEFAULT_REGISTRY_LISTEN,
  parseListen,
} from "../preflight/index.js";
import { emit } from "./output.js";
import type { Logger } from "../../registry/oci/index.js";
import type { SiteDaemon } from "../daemon/index.js";
import type { CommandContext, Runner } from "./context.js";
import { guardProcess } from "./process-guard.js";
import { untilAborted } from "./registry.js";
import { addRegistryOptions, loadDaemon, registryConfigOf, type RegistryFlags } from "./registry-flags.js";
import { addGateOptions, gatesOf, type GateFlags } from "./upgrade-run.js";

interface ServeFlags extends RegistryFlags, GateFlags {
  registryListen?: string;
  consoleListen: string;
  healthListen: string;
}

export function registerServe(program: Command, run: Runner): void {
  addGateOptions(
    addRegistryOptions(
      program
        .command("serve")
        .description(
          "the site daemon: the registry, the web console and the upgrade scheduler in one process, with /healthz; SIGHUP reloads accounts, certificates and schedules, SIGTERM stops cleanly",
        )
        .option(
          "--registry-listen <host:port>",
          `where the registry listens (default: the install's, else ${DEFAULT_REGISTRY_LISTEN})`,
        )
        .option(
          "--console-listen <host:port>",
          "where the web console listens (HTTPS)",
          DEFAULT_CONSOLE_LISTEN,
        )
        .option(
          "--health-listen <host:port>",
          "where /healthz is answered (plain HTTP)",
          DEFAULT_HEALTH_LISTEN,
        ),
    ),
  ).action(async (flags: ServeFlags, command: Command) =>
    run(command, async (context) => {
      // Handled from the start: the CLI's wake-up (SIGHUP to the daemon lock's PID) may come while
      // the daemon starts, which would otherwise end the process; the starting scheduler looks anyway.
      let daemon: SiteDaemon | undefined;
      const onHangup = (): void => {
        context.logger.info({}, "serve: SIGHUP: reloading accounts, certificates and schedules");
        void daemon?.reload();
      };
      process.on("SIGHUP", onHangup);
      try {
        daemon = await startDaemon(context.dataDir, flags, context.logger);
        await serveUntilAborted(daemon, context);
      } finally {
        process.off("SIGHUP", onHangup);
      }
    }),
  );
}

async function startDaemon(dataDirFlag: string, flags: ServeFlags, logger: Logger): Promise<SiteDaemon> {
  const { installedSite, startSiteDaemon } = await loadDaemon();
  const dataDir = resolve(dataDirFlag);
  const installed = installedSite(dataDir);
  const registryListen = flags.registryListen ?? installed.registryListen ?? DEFAULT_REGISTRY_LISTEN;
  parseListen(registryListen);
  return startSiteDaemon({
    dataDir,
    registry: registryConfigOf(registryListen, flags, installed),
    console: {
      listen: parseListen(flags.consoleListen, "--console-listen"),
      hostnames: flags.hostname,
    },
    healthListen: flags.healthListen,
    gates: gatesOf(flags),
    logger,
  });
}

/** Says where the daemon serves, then serves until SIGTERM or SIGINT, and stops it cleanly. */
async function serveUntilAborted(daemon: SiteDaemon, context: CommandContext): Promise<void> {
  const stopGuarding = guardProcess("serve", context.logger);
  try {
    emit(
      context.output,
      {
        pid: process.pid,
        registry: { url: daemon.registryUrl, ca: daemon.registryCaFile },
        console: { url: daemon.consoleUrl },
        health: { url: daemon.healthUrl },
      },
      () =>
        [
          `serving ${resolve(context.dataDir)} as process ${process.pid}`,
          `  registry ${daemon.registryUrl}${daemon.registryCaFile === undefined ? "" : ` (clients trust ${daemon.registryCaFile})`}`,
          `  console  ${daemon.consoleUrl}`,
          `  health   ${daemon.healthUrl}`,
        ].join("\n"),
    );
    await untilAborted(context.signal);
  } finally {
    await daemon.stop();
    stopGuarding();
  }
}
