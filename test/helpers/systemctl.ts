/**
 * The stand-in systemctl (standin/systemctl.mjs) as a `systemctl` first in PATH, for tests that only
 * need systemd: its calls as argument lines, the PIDs of the services it started, and a stop that
 * ends them by PID.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { standinBin, standinCalls, standinEnv, stopStandinServices } from "./standin/index.js";

export interface FakeSystemctl {
  /** Environment for a process whose `systemctl` is the stand-in. */
  env: NodeJS.ProcessEnv;
  /** Every systemctl call so far, one argument line each. */
  calls(): Promise<string[]>;
  /** The PID the stand-in started a unit as, if it runs one. */
  pid(unit: string): Promise<number | undefined>;
  /** Ends every service the stand-in started, by its PID, and waits until each is gone. */
  stopAll(): Promise<void>;
}

export async function fakeSystemctl(dir: string, hostRoot: string): Promise<FakeSystemctl> {
  const log = join(dir, "standin-calls.jsonl");
  const env = standinEnv(await standinBin(dir), hostRoot, log);
  return {
    env,
    calls: async () =>
      (await standinCalls(log))
        .filter((call) => call.program === "systemctl")
        .map((call) => call.args.join(" ")),
    pid: async (unit) => {
      const text = await readFile(join(hostRoot, "run/systemd/standin", `${unit}.pid`), "utf8").catch(
        () => undefined,
      );
      return text === undefined ? undefined : Number(text);
    },
    stopAll: () => stopStandinServices(hostRoot),
  };
}
