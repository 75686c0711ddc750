import { errnoCode } from "../../registry/oci/index.js";
import type { State } from "../state/index.js";

/** The running daemon a schedule change was told to, and whether the signal reached it. */
export interface DaemonWake {
  pid: number;
  /** False when this user may not signal it (EPERM): it sees the change at its next look. */
  woken: boolean;
}

/**
 * Tells the `airlock serve` running on this data dir (the holder of its daemon lock) to look at the
 * schedules now rather than at the end of its current wait: SIGHUP, its reload, which wakes the
 * scheduler. Undefined when no daemon runs (or it ended meanwhile). Call it once the change is
 * committed and the writer lock released, or the daemon wakes to a lock it cannot take.
 */
export function wakeSiteDaemon(state: State): DaemonWake | undefined {
  const holder = state.lockHolder("daemon");
  if (holder === undefined || holder.pid === process.pid) return undefined;
  try {
    process.kill(holder.pid, "SIGHUP");
  } catch (error) {
    const code = errnoCode(error);
    if (code === "ESRCH") return undefined;
    if (code === "EPERM") return { pid: holder.pid, woken: false };
    throw error;
  }
  return { pid: holder.pid, woken: true };
}
