// Preloaded (`node --import`, through NODE_OPTIONS) into an airlock process under test: holds the
// store's Nth blob ingest (0-based, $AIRLOCK_HOLD_INGEST) right after its first chunk is written —
// the import is then mid-blob — writes "held" to $AIRLOCK_HOLD_MARK, and waits there until the
// process gets SIGUSR2 (or is killed). Ingest files are opened "wx" under the store's ingest/.
import fsPromises from "node:fs/promises";
import { writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import { clearInterval, setInterval } from "node:timers";

const holdAt = Number(process.env.AIRLOCK_HOLD_INGEST);
const mark = process.env.AIRLOCK_HOLD_MARK;
let ingests = 0;
let release;
const released = new Promise((resolve) => (release = resolve));
process.on("SIGUSR2", () => release());

const open = fsPromises.open;
fsPromises.open = async function (path, flags, ...rest) {
  const handle = await open.call(this, path, flags, ...rest);
  if (flags !== "wx" || !/\/store\/ingest\/[^/]+$/.test(String(path)) || ingests++ !== holdAt) return handle;
  const write = handle.write;
  let written = false;
  handle.write = async function (...args) {
    const result = await write.apply(this, args);
    if (!written) {
      written = true;
      writeFileSync(mark, "held\n");
      // Nothing else may be pending: a timer keeps the process from ending (exit 13) while held.
      const alive = setInterval(() => undefined, 60_000);
      await released;
      clearInterval(alive);
    }
    return result;
  };
  return handle;
};
syncBuiltinESMExports();
