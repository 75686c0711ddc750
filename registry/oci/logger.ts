/** What a log line carries besides its message: plain values, and an `err` for a failure's stack. */
export type LogFields = Record<string, unknown>;

export type LogLevel = "debug" | "info" | "warn" | "error";

/**
 * The logger every library takes, in pino's shape (`info(fields, message)`, `child(fields)`), so the
 * CLI's pino logger fits as it is and a library never depends on pino. A caller on a hot path asks
 * `isLevelEnabled` first, so a suppressed line costs no object and no string.
 */
export interface Logger {
  debug(fields: LogFields, message: string): void;
  info(fields: LogFields, message: string): void;
  warn(fields: LogFields, message: string): void;
  error(fields: LogFields, message: string): void;
  /** A logger adding `fields` to every line, e.g. a component's name or a request id. */
  child(fields: LogFields): Logger;
  isLevelEnabled(level: LogLevel): boolean;
}

const ignore = (): void => undefined;

/** A logger that drops everything: the default of a library called without one. */
export const silentLogger: Logger = {
  debug: ignore,
  info: ignore,
  warn: ignore,
  error: ignore,
  child: () => silentLogger,
  isLevelEnabled: () => false,
};
