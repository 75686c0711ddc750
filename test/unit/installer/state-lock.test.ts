import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { openState, processStartTicks, type State } from "../../../installer/state/index.js";
import { rejection } from "../../helpers/errors.js";

let dataDir: string;
let state: State;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-state-lock-"));
  state = openState(dataDir);
});

afterEach(async () => {
  state.close();
  await rm(dataDir, { recursive: true, force: true });
});

function plantHolder(pid: number, startTicks: number | null, command: string): void {
  state.db
    .prepare(
      "INSERT INTO writer_lock (name, pid, start_ticks, command, acquired_at) VALUES ('writer', ?, ?, ?, '2026-12-01T00:00:00.000Z')",
    )
    .run(pid, startTicks, command);
}

/** The PID of a process that has exited: reaped, so kill(pid, 0) finds nothing. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"]);
  return Number(child.stdout.toString());
}

describe("the writer lock", () => {
  it("is held by one caller at a time: a second fails at once with LOCK_HELD naming the holder", async () => {
    const lock = state.lock("airlock install --bundle a.tar");
    expect(lock.holder).toMatchObject({ pid: process.pid, command: "airlock install --bundle a.tar" });
    expect(lock.holder.startTicks).toBe(processStartTicks(process.pid));
    const other = openState(dataDir);
    try {
      const error = await rejection(Promise.resolve().then(() => other.lock("airlock upgrade run")));
      expect(error.code).toBe("LOCK_HELD");
      expect(error.message).toContain(`process ${process.pid} (airlock install --bundle a.tar)`);
      expect(error.hint).toContain(String(process.pid));
      expect(other.lockHolder()?.pid).toBe(process.pid);
      lock.release();
      expect(other.lockHolder()).toBeUndefined();
      other.lock("airlock upgrade run").release();
    } finally {
      other.close();
    }
  });

  it("is given back when the state closes", () => {
    state.lock("airlock install");
    state.close();
    state = openState(dataDir);
    expect(state.lockHolder()).toBeUndefined();
    state.lock("airlock install").release();
  });

  it("takes over a holder whose process is gone", () => {
    const pid = deadPid();
    plantHolder(pid, 12345, "airlock install");
    expect(state.lockHolder()).toBeUndefined();
    expect(state.lock("airlock install").holder.pid).toBe(process.pid);
  });

  it("takes over a holder whose PID now names a process started at another time", () => {
    plantHolder(process.ppid, (processStartTicks(process.ppid) ?? 0) + 1, "airlock install");
    expect(state.lock("airlock install").holder.pid).toBe(process.pid);
  });

  it("keeps a live holder whose start time matches", async () => {
    plantHolder(process.ppid, processStartTicks(process.ppid) ?? null, "airlock serve");
    const error = await rejection(Promise.resolve().then(() => state.lock("airlock install")));
    expect(error.code).toBe("LOCK_HELD");
    expect(error.message).toContain(`process ${process.ppid} (airlock serve)`);
  });
});
