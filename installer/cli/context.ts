import type { Command } from "commander";
import type { Logger } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { createCliLogger, type LogFormat } from "./logging.js";
import type { OutputOptions } from "./output.js";

/** What every command handler gets: the resolved global flags, the interrupt signal and the logger. */
export interface CommandContext {
  output: OutputOptions;
  dataDir: string;
  signal: AbortSignal;
  /** The one logger of the process (stderr, per --log-format), for every library the command calls. */
  logger: Logger;
}

/** Runs a command handler with its context; the one place errors become exit codes (main.ts). */
export type Runner = (command: Command, fn: (context: CommandContext) => Promise<void>) => Promise<void>;

export const DEFAULT_DATA_DIR = "/var/lib/airlock";

export function contextOf(command: Command, signal: AbortSignal): CommandContext {
  const flags = command.optsWithGlobals<{
    json?: boolean;
    progress?: boolean;
    color?: boolean;
    debug?: boolean;
    dataDir?: string;
    logFormat?: LogFormat;
  }>();
  const color = flags.color !== false && process.env.NO_COLOR === undefined && process.stderr.isTTY;
  const debug = flags.debug === true;
  const logFormat = flags.logFormat ?? "text";
  const logger = createCliLogger({ format: logFormat, color, debug });
  return {
    output: {
      json: flags.json === true,
      progress: flags.progress !== false,
      color,
      debug,
      logFormat,
      logger,
    },
    dataDir: flags.dataDir ?? process.env.AIRLOCK_HOME ?? DEFAULT_DATA_DIR,
    signal,
    logger,
  };
}

export async function withStore<T>(context: CommandContext, fn: (store: Store) => Promise<T>): Promise<T> {
  const store = await Store.open(context.dataDir);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}
