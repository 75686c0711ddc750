/**
 * The stand-in systemctl (fake-systemctl.mjs) as a `systemctl` first in PATH: its calls, the PIDs of
 * the services it started, and a stop that ends them by PID.
 */
import { chmod, mkdir, readFile, readdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { REPO_ROOT, waitFor } from "./fixtures.js";

export interface FakeSystemctl {
  /** Environment for a process whose `systemctl` is the stand-in. */
  env: NodeJS.ProcessEnv;
  /** Every call so far, one argument line each. */
  calls(): Promise<string[]>;
  /** The PID the stand-in started a unit as, if it runs one. */
  pid(unit: string): Promise<number | undefined>;
  /** Ends every service the stand-in started, by its PID, and waits until each is gone. */
  stopAll(): Promise<void>;
}

/** Running, and not a zombie left for a parent that never reaps it. */
async function alive(pid: number): Promise<boolean> {
  const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  return stat !== undefined && stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
}

export async function fakeSystemctl(dir: string, hostRoot: string): Promise<FakeSystemctl> {
  const bin = join(dir, "bin");
  const state = join(dir, "state");
  await mkdir(bin, { recursive: true });
  await mkdir(state, { recursive: true });
  const script = join(REPO_ROOT, "test", "helpers", "fake-systemctl.mjs");
  await writeFile(join(bin, "systemctl"), `#!/bin/sh\nexec "${process.execPath}" "${script}" "$@"\n`);
  await chmod(join(bin, "systemctl"), 0o755);
  const pid = async (unit: string): Promise<number | undefined> => {
    const text = await readFile(join(state, `${unit}.pid`), "utf8").catch(() => undefined);
    return text === undefined ? undefined : Number(text);
  };
  return {
    env: {
      PATH: `${bin}:${process.env.PATH ?? ""}`,
      AIRLOCK_FAKE_SYSTEMCTL_ROOT: hostRoot,
      AIRLOCK_FAKE_SYSTEMCTL_DIR: state,
    },
    calls: async () =>
      (await readFile(join(state, "calls.log"), "utf8").catch(() => ""))
        .split("\n")
        .filter((line) => line !== ""),
    pid,
    stopAll: async () => {
      for (const file of (await readdir(state)).filter((name) => name.endsWith(".pid"))) {
        const running = await pid(file.slice(0, -".pid".length));
        if (running === undefined || !(await alive(running))) continue;
        process.kill(running, "SIGTERM");
        await waitFor(
          async () => !(await alive(running)),
          10_000,
          `service ${file} (PID ${running}) to stop`,
        );
      }
    },
  };
}
