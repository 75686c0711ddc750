import { rename, writeFile } from "node:fs/promises";
import { AirlockError, formatBytes, type Logger, type Progress } from "../../registry/oci/index.js";
import type { LogFormat } from "./logging.js";

/** How the operator asked to be spoken to: the global flags, resolved once. */
export interface OutputOptions {
  json: boolean;
  progress: boolean;
  color: boolean;
  debug: boolean;
  /** With json, what the CLI says on stderr (progress lines, errors) are the logger's JSON lines. */
  logFormat: LogFormat;
  logger: Logger;
}

/** A file the operator asked for, written whole or not at all: a crash leaves no half-written one. */
export async function writeFileAtomically(path: string, text: string): Promise<void> {
  await writeFile(`${path}.partial`, text);
  await rename(`${path}.partial`, path);
}

function formatCount(progress: Progress, value: number): string {
  return progress.unit === "items" ? String(value) : formatBytes(value);
}

const SIZE_UNITS: Record<string, number> = { "": 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/** `3.9G`, `700MiB`, `1048576`: binary units, as FAT32's 4 GiB limit is. */
export function parseSize(text: string, flag: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(text.trim());
  const bytes = match === null ? NaN : Math.floor(Number(match[1]) * SIZE_UNITS[match[2]!.toUpperCase()]!);
  if (!Number.isFinite(bytes) || bytes < 1024 * 1024) {
    throw new AirlockError("USAGE", `${flag} ${JSON.stringify(text)} is not a size of at least 1M`, {
      hint: `write e.g. ${flag} 3.9G (binary units: K, M, G, T)`,
    });
  }
  return bytes;
}

const DURATION_UNITS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 } as const;

/** `90s`, `15m`, `250ms`, `2h`: a duration flag's value in ms; `allowZero` for a grace that may be none. */
export function parseDuration(text: string, flag: string, example: string, allowZero = false): number {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text.trim());
  if (match === null || (!allowZero && Number(match[1]) === 0)) {
    throw new AirlockError("USAGE", `${flag} ${JSON.stringify(text)} is not a duration`, {
      hint: `e.g. ${flag} ${example} (ms, s, m, h)`,
    });
  }
  return Number(match[1]) * DURATION_UNITS[match[2] as keyof typeof DURATION_UNITS];
}

/** `12.3 s`. */
export function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

/** Writes a command's result: one JSON document with --json, else the text the command renders. */
export function emit(options: OutputOptions, result: unknown, text: () => string): void {
  if (options.json) process.stdout.write(JSON.stringify(result, null, 2) + "\n");
  else process.stdout.write(text() + "\n");
}

/**
 * Progress on stderr: a bar redrawn in place on a TTY, a plain line every few seconds elsewhere
 * (logs, CI), nothing with --no-progress or --json.
 */
export async function progressReporter(
  options: OutputOptions,
  label: string,
): Promise<{ onProgress: (p: Progress) => void; stop: () => void }> {
  if (!options.progress || options.json) return { onProgress: () => undefined, stop: () => undefined };
  if (process.stderr.isTTY) {
    const { SingleBar, Presets } = await import("cli-progress");
    const bar = new SingleBar(
      {
        format: `${label} [{bar}] {percentage}% {done}/{all} {item}`,
        stream: process.stderr,
        hideCursor: true,
        clearOnComplete: true,
      },
      Presets.shades_classic,
    );
    let started = false;
    return {
      onProgress: (p) => {
        const payload = {
          done: formatCount(p, p.done),
          all: formatCount(p, p.total),
          item: p.item?.slice(-40) ?? "",
        };
        if (!started) {
          bar.start(p.total, p.done, payload);
          started = true;
        } else {
          bar.setTotal(p.total);
          bar.update(p.done, payload);
        }
      },
      stop: () => {
        if (started) bar.stop();
      },
    };
  }
  let last = 0;
  return {
    onProgress: (p) => {
      const now = Date.now();
      if (now - last < 5000 && p.done < p.total) return;
      last = now;
      const percent = p.total === 0 ? 100 : Math.floor((p.done / p.total) * 100);
      if (options.logFormat === "json") {
        const { phase, done, total, unit } = p;
        options.logger.info({ phase, done, total, unit, percent }, label);
        return;
      }
      process.stderr.write(
        `${label}: ${p.phase} ${percent}% (${formatCount(p, p.done)} of ${formatCount(p, p.total)})\n`,
      );
    },
    stop: () => undefined,
  };
}

/** A failed command with --log-format json: one error line, its stack only with --debug. */
function logError(error: unknown, options: Pick<OutputOptions, "debug">, logger: Logger): number {
  const err = options.debug ? { err: error } : {};
  if (error instanceof AirlockError) {
    logger.error({ ...error.toJSON(), ...err }, error.message);
    return error.exitCode;
  }
  if (error instanceof Error && error.name === "AbortError") {
    logger.error({ code: "INTERRUPTED" }, "interrupted");
    return 130;
  }
  const message = error instanceof Error ? error.message : String(error);
  logger.error({ code: "INTERNAL", ...err }, message);
  return 1;
}

/** The one place errors are printed. A stack only with --debug, and never for an AirlockError's user. */
export function reportError(
  error: unknown,
  options: Pick<OutputOptions, "json" | "debug" | "color"> &
    Partial<Pick<OutputOptions, "logFormat" | "logger">>,
): number {
  if (error instanceof AirlockError && options.json) {
    process.stdout.write(JSON.stringify({ error: error.toJSON() }, null, 2) + "\n");
  }
  if (options.logFormat === "json" && options.logger !== undefined)
    return logError(error, options, options.logger);
  if (error instanceof AirlockError) {
    const red = options.color ? "\u001b[31m" : "";
    const reset = options.color ? "\u001b[0m" : "";
    const lines = [`${red}error${reset} ${error.code}: ${error.message}`];
    if (error.where !== undefined) lines.push(`  where: ${error.where}`);
    if (error.hint !== undefined) lines.push(`  hint:  ${error.hint}`);
    if (options.debug && error.stack !== undefined) lines.push(error.stack);
    process.stderr.write(lines.join("\n") + "\n");
    return error.exitCode;
  }
  if (error instanceof Error && error.name === "AbortError") {
    process.stderr.write("interrupted\n");
    return 130;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`error INTERNAL: ${message}\n`);
  if (options.debug && error instanceof Error && error.stack !== undefined)
    process.stderr.write(error.stack + "\n");
  else process.stderr.write("  hint:  re-run with --debug for the stack, and report it\n");
  return 1;
}
