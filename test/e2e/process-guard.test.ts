/**
 * The process guard of `registry serve` (issue 10), as built in dist/: a rejection nobody handles and
 * an exception nobody catches are each logged at error with their stack (through the CLI's logger,
 * issue 11), and the process lives on
 * (it answers afterwards, then exits 0 on its own); once undone, Node's default (exit) is back.
 */
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { REPO_ROOT, runTool } from "../helpers/fixtures.js";

const GUARD = pathToFileURL(join(REPO_ROOT, "dist", "installer", "cli", "process-guard.js")).href;
const LOGGING = pathToFileURL(join(REPO_ROOT, "dist", "installer", "cli", "logging.js")).href;

function runGuarded(body: string): ReturnType<typeof runTool> {
  return runTool(process.execPath, [
    "--input-type=module",
    "-e",
    [
      `import { guardProcess } from ${JSON.stringify(GUARD)};`,
      `import { createCliLogger } from ${JSON.stringify(LOGGING)};`,
      `const logger = createCliLogger({ format: "text", color: false, debug: false });`,
      body,
    ].join("\n"),
  ]);
}

describe("guardProcess", () => {
  it("logs an unhandled rejection and an uncaught exception with their stacks, and keeps the process running", async () => {
    const result = await runGuarded(`
      const stop = guardProcess("registry", logger);
      Promise.reject(new Error("lost rejection"));
      setImmediate(() => { throw new Error("lost exception"); });
      setTimeout(() => { stop(); console.log("still here"); }, 100);
    `);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.toString()).toBe("still here\n");
    expect(result.stderr).toMatch(
      / ERROR registry: unhandled rejection, still serving\n {4}Error: lost rejection\n\s+at /,
    );
    expect(result.stderr).toMatch(
      / ERROR registry: uncaught exception, still serving\n {4}Error: lost exception\n\s+at /,
    );
  });

  it("once undone, an unhandled rejection ends the process again", async () => {
    const result = await runGuarded(`
      guardProcess("registry", logger)();
      Promise.reject(new Error("lost rejection"));
    `);
    expect(result.code).toBe(1);
    expect(result.stderr).not.toMatch(/still serving/);
    expect(result.stderr).toContain("lost rejection");
  });
});
