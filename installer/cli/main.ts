#!/usr/bin/env node
import { Command, CommanderError, Option } from "commander";
import { AirlockError } from "../../registry/oci/index.js";
import { contextOf, type Runner } from "./context.js";
import { reportError } from "./output.js";
import { registerBundle } from "./bundle.js";
import { registerKeys } from "./keys.js";
import { registerPki } from "./pki.js";
import { registerStore } from "./store.js";
import { registerRegistry } from "./registry.js";
import { registerPreflight } from "./preflight.js";
import { registerUi } from "./ui.js";
import { registerNode } from "./node.js";
import { registerInstall } from "./install.js";
import { registerStatus } from "./status.js";
import { registerUpgrade } from "./upgrade.js";
import { registerServe } from "./serve.js";

/**
 * `airlock <group> <verb>`: a thin shell over the libraries. Every handler runs through `run`, the one
 * place errors become exit codes (0 ok, 1 failed, 2 usage, 130 interrupted).
 */
export function createProgram(signal: AbortSignal): { program: Command; exitCode: () => number } {
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
  registerKeys(program, run);
  registerBundle(program, run);
  registerStore(program, run);
  registerRegistry(program, run);
  registerPki(program, run);
  registerPreflight(program, run);
  registerUi(program, run);
  registerNode(program, run);
  registerInstall(program, run);
  registerStatus(program, run);
  registerUpgrade(program, run);
  registerServe(program, run);
  return { program, exitCode: () => exitCode };
}

export async function main(argv: string[]): Promise<number> {
  const controller = new AbortController();
  const onSignal = (): void => controller.abort(new AirlockError("INTERRUPTED", "interrupted"));
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  const { program, exitCode } = createProgram(controller.signal);
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
