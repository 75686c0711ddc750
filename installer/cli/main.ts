#!/usr/bin/env node
import { Command, CommanderError, Option } from "commander";
import { AirlockError } from "../../registry/oci/index.js";
import { contextOf, type Runner } from "./context.js";
import { reportError } from "./output.js";

type Register = (program: Command, run: Runner) => void;

/**
 * Each command group's module, in the order help lists them, loaded only when needed: all of them
 * together (the cluster client, the X.509 stack, the console) cost ~1.4 s of CPU on the build machine,
 * where `bundle import` alone loads 0.2 s (docs/performance.md).
 */
const GROUPS: Record<string, () => Promise<Register>> = {
  keys: async () => (await import("./keys.js")).registerKeys,
  bundle: async () => (await import("./bundle.js")).registerBundle,
  store: async () => (await import("./store.js")).registerStore,
  registry: async () => (await import("./registry.js")).registerRegistry,
  pki: async () => (await import("./pki.js")).registerPki,
  preflight: async () => (await import("./preflight.js")).registerPreflight,
  ui: async () => (await import("./ui.js")).registerUi,
  node: async () => (await import("./node.js")).registerNode,
  install: async () => (await import("./install.js")).registerInstall,
  status: async () => (await import("./status.js")).registerStatus,
  upgrade: async () => (await import("./upgrade.js")).registerUpgrade,
  serve: async () => (await import("./serve.js")).registerServe,
};

/**
 * The command group `args` name (the first word that is not a global option or its value), when it
 * is one of GROUPS; undefined for help, a mistyped group or none, which need every group registered.
 */
function namedGroup(program: Command, args: string[]): string | undefined {
  const takesValue = new Set(
    program.options
      .filter((option) => option.required || option.optional)
      .flatMap((option) => [option.long, option.short]),
  );
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (!arg.startsWith("-")) return Object.hasOwn(GROUPS, arg) ? arg : undefined;
    if (takesValue.has(arg)) i++;
  }
  return undefined;
}

/**
 * `airlock <group> <verb>`: a thin shell over the libraries. Every handler runs through `run`, the one
 * place errors become exit codes (0 ok, 1 failed, 2 usage, 130 interrupted).
 */
export async function createProgram(
  signal: AbortSignal,
  argv: string[],
): Promise<{ program: Command; exitCode: () => number }> {
  let exitCode = 0;
  const program = new Command("airlock")
    .description("ship and run a Kubernetes management plane in air-gapped sites")
    .version("0.1.0")
    .option("--data-dir <dir>", "state directory (default $AIRLOCK_HOME or /var/lib/airlock)")
    .option("--json", "print results as one JSON document on stdout")
    .addOption(
      new Option(
        "--log-format <format>",
        "log lines on stderr: text (time level message key=value) or json (pino)",
      )
        .choices(["text", "json"])
        .default("text"),
    )
    .option("--no-color", "no colour (also NO_COLOR)")
    .option("--no-progress", "no progress output")
    .option("--debug", "debug log lines, and stacks with errors")
    .showHelpAfterError()
    .exitOverride();

  const run: Runner = async (command, fn) => {
    const context = contextOf(command, signal);
    try {
      await fn(context);
    } catch (error) {
      if (signal.aborted) {
        const message = "interrupted: nothing half-done was kept; re-run to finish";
        if (context.output.logFormat === "json") context.logger.warn({ code: "INTERRUPTED" }, message);
        else process.stderr.write(message + "\n");
        exitCode = 130;
      } else exitCode = reportError(error, context.output);
    }
  };
  const group = namedGroup(program, argv.slice(2));
  const needed = group === undefined ? Object.values(GROUPS) : [GROUPS[group]!];
  for (const register of await Promise.all(needed.map((load) => load()))) register(program, run);
  return { program, exitCode: () => exitCode };
}

export async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new AirlockError("INTERRUPTED", "interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const { program, exitCode } = await createProgram(controller.signal, argv);
  try {
    await program.parseAsync(argv);
    // A command that returns after an interrupt handled it (the registry stopping on SIGTERM) exits 0.
    return exitCode();
  } catch (error) {
    if (error instanceof CommanderError) {
      return error.exitCode === 0 ? 0 : 2;
    }
    return reportError(error, { json: false, debug: argv.includes("--debug"), color: false });
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

process.exitCode = await main(process.argv);
