import { describe, expect, it } from "vitest";
import { CommandFailedError, runCommand } from "../../../installer/host/index.js";
import { rejection } from "../../helpers/errors.js";

describe("runCommand", () => {
  it("resolves with the output of a command that exits 0", async () => {
    const result = await runCommand("sh", ["-c", "echo out; echo err >&2"]);
    expect(result).toEqual({ stdout: "out\n", stderr: "err\n", code: 0 });
  });

  it("rejects a non-zero exit as NODE_COMMAND_FAILED carrying the command line, status and stderr", async () => {
    const error = await rejection(runCommand("sh", ["-c", "echo 'Cannot find device' >&2; exit 3"]));
    expect(error).toBeInstanceOf(CommandFailedError);
    expect(error.code).toBe("NODE_COMMAND_FAILED");
    expect(error.where).toBe("sh -c echo 'Cannot find device' >&2; exit 3");
    expect(error.message).toContain("exit 3");
    expect(error.message).toContain("Cannot find device");
    const failed = error as CommandFailedError;
    expect(failed.status).toBe(3);
    expect(failed.stderr).toBe("Cannot find device\n");
    expect(failed.args).toEqual(["-c", "echo 'Cannot find device' >&2; exit 3"]);
  });

  it("rejects a command killed by a signal with a null status", async () => {
    const error = await rejection(runCommand("sh", ["-c", "kill -KILL $$"]));
    expect(error.code).toBe("NODE_COMMAND_FAILED");
    expect((error as CommandFailedError).status).toBeNull();
    expect(error.message).toContain("killed");
  });

  it("names a missing tool as NODE_TOOL_MISSING with the setup hint", async () => {
    const error = await rejection(runCommand("airlock-no-such-tool", []));
    expect(error.code).toBe("NODE_TOOL_MISSING");
    expect(error.where).toBe("airlock-no-such-tool");
    expect(error.hint).toContain("scripts/setup");
  });
});
