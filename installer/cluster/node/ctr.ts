import { spawn, type ChildProcess } from "node:child_process";
import { AirlockError } from "../../../registry/oci/index.js";
import { CommandFailedError, type CommandResult } from "../../host/index.js";

/**
 * `ctr` against one containerd socket and one containerd namespace (the node's per-run prefix), every
 * call bounded in time: a registry that never answers or a wedged shim fails the call, never hangs it.
 */
export class Ctr {
  constructor(
    readonly address: string,
    readonly namespace: string,
  ) {}

  private argsOf(args: readonly string[], timeoutMs?: number): string[] {
    return [
      "--address",
      this.address,
      "--namespace",
      this.namespace,
      ...(timeoutMs === undefined ? [] : ["--timeout", `${Math.ceil(timeoutMs / 1000)}s`]),
      ...args,
    ];
  }

  /** Runs `ctr …args`; rejects with CommandFailedError on a non-zero exit, NODE_COMMAND_TIMEOUT past `timeoutMs`. */
  run(args: readonly string[], timeoutMs = 30_000): Promise<CommandResult> {
    return runBounded("ctr", this.argsOf(args, timeoutMs), timeoutMs + 5_000);
  }

  /** Like run, but resolves with the result whatever the exit status (for removals of what may be gone). */
  attempt(args: readonly string[], timeoutMs = 30_000): Promise<CommandResult | CommandFailedError> {
    return this.run(args, timeoutMs).catch((error: unknown) => {
      if (error instanceof CommandFailedError) return error;
      throw error;
    });
  }

  /** A long-running `ctr …args` (a foreground `ctr run`), its output into `onOutput`. */
  spawn(args: readonly string[], onOutput: (chunk: string) => void): ChildProcess {
    const child = spawn("ctr", this.argsOf(args), { stdio: ["ignore", "pipe", "pipe"] });
    child.stdout?.setEncoding("utf8").on("data", onOutput);
    child.stderr?.setEncoding("utf8").on("data", onOutput);
    return child;
  }
}

/** Spawns `command` and collects its output; SIGKILLs it and rejects past `timeoutMs`. */
export function runBounded(
  command: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<CommandResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(
        new AirlockError("NODE_TOOL_MISSING", `${command} could not be started: ${error.message}`, {
          where: command,
          hint: "run `bash scripts/setup` as root: it installs containerd, runc and ctr",
          cause: error,
        }),
      );
    });
    child.on("close", (status) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(
          new AirlockError(
            "NODE_COMMAND_TIMEOUT",
            `${command} ${args.join(" ")} did not finish within ${Math.round(timeoutMs / 1000)} s`,
            { where: command, hint: "containerd or the registry it talks to does not answer" },
          ),
        );
      } else if (status === 0) resolve({ stdout, stderr, code: 0 });
      else reject(new CommandFailedError(command, args, status, stderr));
    });
  });
}

/** containerd's own words from a failed `ctr`: its last stderr line, without the `ctr: ` prefix. */
export function ctrMessage(error: unknown): string {
  if (error instanceof CommandFailedError) {
    const lines = error.stderr
      .trim()
      .split("\n")
      .filter((line) => line.trim() !== "");
    return (lines.at(-1) ?? `exit ${error.status}`).replace(/^ctr: /, "");
  }
  return (error as Error).message;
}
