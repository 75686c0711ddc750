/**
 * The stand-in `k3s` and `systemctl` (see their headers) for tests that install under a temporary
 * host root: a bin folder to put first in PATH, their environment, their recorded calls, and the
 * end of every service the stand-in systemctl started, by PID.
 */
import { readFileSync } from "node:fs";
import { mkdir, readdir, readFile, symlink, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
/** The stand-in k3s itself: self-contained, so a test can carry it in a bundle as bin/k3s. */
export const STANDIN_K3S = join(HERE, "k3s.mjs");
export const STANDIN_SYSTEMCTL = join(HERE, "systemctl.mjs");

/** The stand-in's own version (its VERSION constant). */
export const STANDIN_K3S_VERSION = "v1.32.3+k3s1";

/** A copy of the stand-in k3s at `path` (0755) that says it is `version`: another bin/k3s, as a newer bundle carries. */
export async function standinK3sOfVersion(path: string, version: string): Promise<string> {
  const source = await readFile(STANDIN_K3S, "utf8");
  const constant = `const VERSION = ${JSON.stringify(STANDIN_K3S_VERSION)};`;
  if (!source.includes(constant)) throw new Error(`the stand-in k3s has no ${constant}`);
  await writeFile(path, source.replace(constant, `const VERSION = ${JSON.stringify(version)};`), {
    mode: 0o755,
  });
  return path;
}

/** A folder holding `k3s` and `systemctl` (links to the stand-ins), to put first in PATH. */
export async function standinBin(dir: string): Promise<string> {
  const bin = join(dir, "standin-bin");
  await mkdir(bin, { recursive: true });
  for (const [target, name] of [
    [STANDIN_K3S, "k3s"],
    [STANDIN_SYSTEMCTL, "systemctl"],
  ]) {
    // A second call for the same folder finds its links in place.
    await symlink(target!, join(bin, name!)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== "EEXIST") throw error;
    });
  }
  return bin;
}

/** The environment the stand-ins read: their host root and the log they record calls in. */
export function standinEnv(
  bin: string,
  hostRoot: string,
  log: string,
  extra: Record<string, string> = {},
): NodeJS.ProcessEnv {
  return {
    ...process.env,
    PATH: `${bin}:${process.env.PATH ?? ""}`,
    STANDIN_HOST_ROOT: hostRoot,
    STANDIN_LOG: log,
    ...extra,
  };
}

export interface StandinCall {
  program: "k3s" | "systemctl";
  args: string[];
  pid?: number;
  env?: Record<string, string | undefined>;
  [key: string]: unknown;
}

/** The calls recorded in `log`, in order; none when nothing ran. */
export async function standinCalls(log: string): Promise<StandinCall[]> {
  const text = await readFile(log, "utf8").catch(() => "");
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as StandinCall);
}

/** Polls `log` until a call matches, for at most `timeoutMs`. */
export async function waitForCall(
  log: string,
  matches: (call: StandinCall) => boolean,
  timeoutMs = 15_000,
): Promise<StandinCall> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = (await standinCalls(log)).find(matches);
    if (found !== undefined) return found;
    if (Date.now() >= deadline) throw new Error(`no recorded call in ${log} matched within ${timeoutMs} ms`);
    await delay(50);
  }
}

/** Ends, by PID, every service the stand-in systemctl started under `hostRoot`, and waits until each is gone. */
export async function stopStandinServices(hostRoot: string): Promise<void> {
  const state = join(hostRoot, "run/systemd/standin");
  const pidFiles = (await readdir(state).catch(() => [])).filter((name) => name.endsWith(".pid"));
  for (const name of pidFiles) {
    const pid = Number(await readFile(join(state, name), "utf8"));
    if (!alive(pid)) continue;
    process.kill(pid, "SIGKILL");
    const deadline = Date.now() + 10_000;
    while (alive(pid) && Date.now() < deadline) await delay(20);
  }
}

/** Running, and not a zombie its parent has yet to reap. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}
