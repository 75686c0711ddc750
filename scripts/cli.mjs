// The command line of the scripts that make something and print what they made as one JSON document
// (scripts/fixtures.mjs, scripts/msgbroker-image.mjs).
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

/**
 * Runs `run(toOptions(values))` when the module of `meta` is the program node was started with, and
 * does nothing when it is imported. `options` are parseArgs' (--help is added); every name in
 * `required` must be given. Exit codes: 0 with the result as JSON on stdout; 2 for bad arguments
 * (an unknown option, a missing one, whatever `toOptions` throws) and for a RangeError from `run` (a
 * value out of range); 1 for any other failure, printed without a stack.
 */
export async function runIfMain(meta, { name, usage, options, required = [], toOptions, run }) {
  if (!process.argv[1] || meta.url !== pathToFileURL(process.argv[1]).href) return;
  let runOptions;
  try {
    const { values } = parseArgs({
      args: process.argv.slice(2),
      options: { ...options, help: { type: "boolean", short: "h", default: false } },
    });
    if (values.help) {
      console.log(usage);
      process.exitCode = 0;
      return;
    }
    for (const option of required) if (!values[option]) throw new Error(`--${option} is required`);
    runOptions = toOptions(values);
  } catch (error) {
    console.error(`${name}: ${error.message}\n${usage}`);
    process.exitCode = 2;
    return;
  }
  try {
    console.log(JSON.stringify(await run(runOptions)));
    process.exitCode = 0;
  } catch (error) {
    // zx's errors carry the failed command's stderr, which says more than its message.
    console.error(`${name}: ${error.stderr?.trim() || error.message}`);
    process.exitCode = error instanceof RangeError ? 2 : 1;
  }
}
