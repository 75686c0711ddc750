import { createWriteStream } from "node:fs";
import { mkdir, rm } from "node:fs/promises";
import { dirname } from "node:path";
import { AirlockError } from "../../../registry/oci/index.js";
import { ctrMessage, runBounded, type Ctr } from "./ctr.js";

/** A container's task, run by a foreground `ctr run`: its exit status arrives as ctr's. */
export interface RunningTask {
  id: string;
  /** The task's exit code (128 + signal when killed), once it has exited. */
  exited: Promise<number>;
  /** What the process wrote, the last 64 KiB. */
  output(): string;
}

interface SnapshotMount {
  Type: string;
  Source: string;
  Options: string[];
}

const OUTPUT_KEPT = 64 * 1024;

/**
 * The containerd and runc side of containers: rootfs snapshots mounted where the OCI spec points,
 * tasks started and signalled, and everything removed again by its id. IO fifos and runc's state
 * live under the node's own directory, so nothing lands in containerd's shared ones.
 */
export class ContainerRuntime {
  constructor(
    private readonly ctr: Ctr,
    private readonly dirs: { fifo: string; runcRoot: string },
  ) {}

  /** A writable snapshot `key` of the image's layers (`chainId`), mounted on `target`. */
  async mountRootfs(key: string, chainId: string, target: string): Promise<void> {
    const prepared = await this.ctr.run(["snapshots", "prepare", "--mounts", key, chainId]);
    const mounts = JSON.parse(prepared.stdout) as SnapshotMount[];
    await mkdir(target, { recursive: true });
    for (const mount of mounts) {
      await runBounded(
        "mount",
        ["-t", mount.Type, "-o", mount.Options.join(","), mount.Source, target],
        30_000,
      );
    }
  }

  /** Unmounts the rootfs and removes its snapshot; what is already gone is no error. */
  async unmountRootfs(key: string, target: string): Promise<void> {
    await runBounded("umount", [target], 30_000).catch(() => undefined);
    await this.ctr.attempt(["snapshots", "rm", key]);
    await rm(target, { recursive: true, force: true });
  }

  /** Creates and starts container `id` from the spec file; its output is appended to `logPath`. */
  async start(id: string, specPath: string, logPath: string): Promise<RunningTask> {
    await mkdir(dirname(logPath), { recursive: true });
    const log = createWriteStream(logPath, { flags: "a" });
    let output = "";
    const child = this.ctr.spawn(
      ["run", "--config", specPath, "--fifo-dir", this.dirs.fifo, "--runc-root", this.dirs.runcRoot, id],
      (chunk) => {
        log.write(chunk);
        output = (output + chunk).slice(-OUTPUT_KEPT);
      },
    );
    const exited = new Promise<number>((resolve) => {
      const done = (code: number): void => {
        log.end(() => resolve(code));
      };
      child.on("error", () => done(127));
      child.on("close", (code, signal) => done(code ?? (signal === null ? 1 : 128 + 9)));
    });
    return { id, exited, output: () => output };
  }

  /** Runs `args` in the container's task (a preStop hook) and resolves with its exit code. */
  async exec(id: string, execId: string, args: string[], timeoutMs: number): Promise<number> {
    const result = await this.ctr
      .run(["task", "exec", "--exec-id", execId, "--fifo-dir", this.dirs.fifo, id, ...args], timeoutMs)
      .then(
        () => 0,
        (error: unknown) => (error as { status?: number | null }).status ?? -1,
      );
    return result;
  }

  /** Signals the task; a task that has already exited is no error. */
  async kill(id: string, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
    await this.ctr.attempt(["task", "kill", "--signal", signal, id], 10_000);
  }

  /** Removes the task (if ctr left it) and the container. */
  async remove(id: string): Promise<void> {
    await this.ctr.attempt(["task", "delete", "--force", id], 15_000);
    const removed = await this.ctr.attempt(["containers", "rm", id], 15_000);
    if (removed instanceof Error && !/not found/.test(removed.stderr)) {
      throw new AirlockError("NODE_CONTAINER_REMOVE_FAILED", `container ${id}: ${ctrMessage(removed)}`, {
        where: id,
        hint: "containerd refused the removal: look at its log",
      });
    }
  }
}
