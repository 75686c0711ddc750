/**
 * Issue 11, point 3: the CLI's one logger. `--log-format json` writes pino's JSON lines, `text` a
 * line a person reads (`time LEVEL message key=value…`, a failure's stack below it), coloured only
 * when asked; debug lines only with --debug, and a suppressed line never reaches the formatter.
 */
import { describe, expect, it } from "vitest";
import { AirlockError } from "../../../registry/oci/index.js";
import { createCliLogger, formatTextLine } from "../../../installer/cli/logging.js";

function capture(format: "text" | "json", options: { color?: boolean; debug?: boolean } = {}) {
  const lines: string[] = [];
  const logger = createCliLogger({
    format,
    color: options.color ?? false,
    debug: options.debug ?? false,
    write: (line) => lines.push(line),
  });
  return { logger, lines };
}

describe("the CLI logger", () => {
  it("writes one pino JSON line per call with --log-format json, level by name", () => {
    const { logger, lines } = capture("json");
    logger.info({ path: "/v2/", status: 200 }, "request");
    logger.child({ component: "registry" }).warn({}, "reloaded");
    expect(lines).toHaveLength(2);
    const [first, second] = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(first).toMatchObject({
      level: "info",
      msg: "request",
      path: "/v2/",
      status: 200,
      pid: process.pid,
    });
    expect(new Date(first!.time as string).toISOString()).toBe(first!.time);
    expect(second).toMatchObject({ level: "warn", msg: "reloaded", component: "registry" });
    expect(lines.every((line) => line.endsWith("\n") && !line.slice(0, -1).includes("\n"))).toBe(true);
  });

  it("writes time, level, message and key=value in the text form, quoting what has spaces", () => {
    const { logger, lines } = capture("text");
    logger.info({ path: "/v2/x", note: "two words", n: 3, ok: true, list: [1] }, "request");
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}request path=\/v2\/x note="two words" n=3 ok=true list=\[1\]\n$/,
    );
  });

  it("puts a failure's code and stack under its text line", () => {
    const { logger, lines } = capture("text");
    logger.error({ err: new AirlockError("STORE_WRITE_FAILED", "disk said no") }, "internal error");
    const [line, ...stack] = lines[0]!.trimEnd().split("\n");
    expect(line).toMatch(/ ERROR internal error code=STORE_WRITE_FAILED$/);
    expect(stack[0]).toBe("    AirlockError: disk said no");
    expect(stack[1]).toMatch(/^ {4}\s*at /);
  });

  it("colours the level only when asked", () => {
    const plain = capture("text");
    const coloured = capture("text", { color: true });
    plain.logger.warn({}, "w");
    coloured.logger.warn({}, "w");
    expect(plain.lines[0]).not.toContain("\u001b[");
    expect(coloured.lines[0]).toContain("\u001b[33mWARN \u001b[0m w");
  });

  it("emits debug lines only with --debug, and formats nothing it drops", () => {
    const quiet = capture("text");
    const loud = capture("text", { debug: true });
    let serialised = 0;
    const fields = {
      toJSON: () => {
        serialised++;
        return "x";
      },
    };
    quiet.logger.debug({ fields }, "detail");
    expect(quiet.lines).toEqual([]);
    expect(serialised).toBe(0);
    expect(quiet.logger.isLevelEnabled("debug")).toBe(false);
    loud.logger.debug({ fields }, "detail");
    expect(loud.lines).toHaveLength(1);
    expect(serialised).toBe(1);
  });

  it("reads a line whose err is not an object", () => {
    const line = JSON.stringify({ level: "error", time: "t", msg: "lost", err: "a string" });
    expect(formatTextLine(line, false)).toBe('t ERROR lost err="a string"\n');
  });
});
