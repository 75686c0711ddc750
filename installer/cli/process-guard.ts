import type { Logger } from "../../registry/oci/index.js";

/**
 * The last line of defence of a long-running server (`registry serve`): a failure that escaped the
 * handling of one request — an unhandled rejection or an uncaught exception — is logged at error with
 * its stack, and the process goes on serving every other client instead of exiting. Tests of the
 * server assert this message never appears, so the guard cannot hide a bug. Returns the undo.
 */
export function guardProcess(name: string, logger: Logger): () => void {
  const report =
    (kind: string) =>
    (error: unknown): void => {
      logger.error({ err: error }, `${name}: ${kind}, still serving`);
    };
  const onRejection = report("unhandled rejection");
  const onException = report("uncaught exception");
  process.on("unhandledRejection", onRejection);
  process.on("uncaughtException", onException);
  return () => {
    process.off("unhandledRejection", onRejection);
    process.off("uncaughtException", onException);
  };
}
