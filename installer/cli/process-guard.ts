/**
 * The last line of defence of a long-running server (`registry serve`): a failure that escaped the
 * handling of one request — an unhandled rejection or an uncaught exception — is written to stderr
 * with its stack, and the process goes on serving every other client instead of exiting. Tests of
 * the server assert this message never appears, so the guard cannot hide a bug. Returns the undo.
 */
export function guardProcess(
  name: string,
  write: (line: string) => void = (line) => process.stderr.write(line),
): () => void {
  const report =
    (kind: string) =>
    (error: unknown): void => {
      const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
      write(`${name}: ${kind}, still serving: ${text}\n`);
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
