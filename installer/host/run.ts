import { spawn } from "node:child_process";
import { AirlockError, errnoCode } from "../../registry/oci/index.js";

export interface CommandResult {
  stdout: string;
  stderr: string;
  /** Always 0: a command that exits otherwise rejects with CommandFailedError. */
  code: number;
}

/**
 * Runs a host tool (`ip`, `ctr`, …) to completion. Injectable, so that unit tests record the command
 * sequences the node issues and fail chosen ones, with no root and nothing touched.
 */
export type CommandRunner = (command: string, args: readonly string[]) => Promise<CommandResult>;

/** A command that exited non-zero (or was killed): its command line, exit status and stderr. */
export class CommandFailedError extends AirlockError {
  readonly command: string;
  readonly args: readonly string[];
  /** The exit status, or null when a signal ended it. */
  readonly status: number | null;
  readonly stderr: string;

  constructor(command: string, args: readonly string[], status: number | null, stderr: string) {
    const line = [command, ...args].join(" ");
    super(
      "NODE_COMMAND_FAILED",
      `${line} failed (${status === null ? "killed" : `exit ${status}`}): ${stderr.trim()}`,
      {
        where: line,
        hint: "the node runs host tools as root: read the command's message above",
      },
    );
    this.name = "CommandFailedError";
    this.command = command;
    this.args = args;
    this.status = status;
    this.stderr = stderr;
  }
}

/** The real runner: spawns `command` without a shell, collects its output, rejects on failure. */
export const runCommand: CommandRunner = (command, args) =>
  new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", (error) => {
      reject(
        errnoCode(error) === "ENOENT"
          ? new AirlockError("NODE_TOOL_MISSING", `${command} is not installed`, {
              where: command,
              hint: "run `bash scripts/setup` as root: it installs the node's host tools",
              cause: error,
            })
          : new AirlockError("NODE_COMMAND_FAILED", `${command} could not be started: ${error.message}`, {
              where: command,
              hint: "the node runs host tools as root: check the tool and its permissions",
              cause: error,
            }),
      );
    });
    child.on("close", (status) => {
      if (status === 0) resolve({ stdout, stderr, code: 0 });
      else reject(new CommandFailedError(command, args, status, stderr));
    });
  });
