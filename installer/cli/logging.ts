import { pino } from "pino";
import type { Logger } from "../../registry/oci/index.js";

export type LogFormat = "text" | "json";

export interface CliLoggerOptions {
  format: LogFormat;
  /** Colour the level in text lines (a TTY without --no-color or NO_COLOR). */
  color: boolean;
  /** --debug: debug lines too; info and up otherwise. */
  debug: boolean;
  /** Where lines go; stderr unless a test captures them. */
  write?: (line: string) => void;
}

/** Fields every line has, shown in the text form's fixed columns rather than as key=value. */
const FIXED_FIELDS = new Set(["level", "time", "msg", "pid", "hostname", "err"]);

const LEVEL_COLORS: Record<string, string> = {
  debug: "\u001b[90m",
  info: "\u001b[36m",
  warn: "\u001b[33m",
  error: "\u001b[31m",
  fatal: "\u001b[31m",
};
const RESET = "\u001b[0m";

/** A value as key=value shows it: bare when it has no space, quote or `=`, else as a JSON string. */
function formatValue(value: unknown): string {
  if (typeof value === "string") return /^[^\s"=]+$/.test(value) ? value : JSON.stringify(value);
  if (typeof value === "number" || typeof value === "boolean" || value === null) return String(value);
  return JSON.stringify(value);
}

interface SerializedError {
  message?: string;
  stack?: string;
  code?: string;
}

/**
 * One of pino's JSON lines as a person reads it: `time LEVEL message key=value…`, then a failure's
 * code and stack on the lines below, indented.
 */
export function formatTextLine(json: string, color: boolean): string {
  const record = JSON.parse(json) as Record<string, unknown>;
  const level = String(record.level);
  const shownLevel = level.toUpperCase().padEnd(5);
  const parts = [
    String(record.time),
    color ? `${LEVEL_COLORS[level] ?? ""}${shownLevel}${RESET}` : shownLevel,
    typeof record.msg === "string" ? record.msg : "",
  ];
  for (const [key, value] of Object.entries(record)) {
    if (!FIXED_FIELDS.has(key) && value !== undefined) parts.push(`${key}=${formatValue(value)}`);
  }
  const err = record.err;
  if (err !== undefined && (typeof err !== "object" || err === null)) parts.push(`err=${formatValue(err)}`);
  let text = parts.join(" ");
  if (typeof err === "object" && err !== null) {
    const { code, stack, message } = err as SerializedError;
    if (code !== undefined) text += ` code=${formatValue(code)}`;
    text += "\n" + (stack ?? message ?? JSON.stringify(err)).replace(/^/gm, "    ");
  }
  return text + "\n";
}

/**
 * The CLI's one logger, pino writing to stderr: pino's JSON lines with `--log-format json`, the text
 * form of each otherwise. Only emitted lines reach the formatter: pino drops a suppressed level
 * before any serialisation.
 */
export function createCliLogger(options: CliLoggerOptions): Logger {
  const write = options.write ?? ((line: string) => process.stderr.write(line));
  const destination = {
    write: options.format === "json" ? write : (line: string) => write(formatTextLine(line, options.color)),
  };
  return pino(
    {
      level: options.debug ? "debug" : "info",
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
