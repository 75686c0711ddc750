import type { Command } from "commander";
import { Store } from "../../registry/store/index.js";
import type { OutputOptions } from "./output.js";

/** What every command handler gets: the resolved global flags and the interrupt signal. */
export interface CommandContext {
  output: OutputOptions;
  dataDir: string;
  signal: AbortSignal;
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
  }>();
  return {
    output: {
      json: flags.json === true,
      progress: flags.progress !== false,
      color: flags.color !== false && process.env.NO_COLOR === undefined && process.stderr.isTTY,
      debug: flags.debug === true,
    },
    dataDir: flags.dataDir ?? process.env.AIRLOCK_HOME ?? DEFAULT_DATA_DIR,
    signal,
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
