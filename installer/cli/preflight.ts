import type { Command } from "commander";
import { AirlockError } from "../../registry/oci/index.js";
import { DEFAULT_REGISTRY_LISTEN, runPreflight, type PreflightReport } from "../preflight/index.js";
import { emit } from "./output.js";
import type { Runner } from "./context.js";

const MARKS = { pass: "ok  ", warn: "WARN", fail: "FAIL" } as const;

function renderReport(report: PreflightReport): string {
  const width = Math.max(...report.checks.map((check) => check.title.length));
  const lines = report.checks.flatMap((check) => [
    `${MARKS[check.status]}  ${check.title.padEnd(width)}  ${check.detail}`,
    ...(check.hint === undefined ? [] : [`${" ".repeat(width + 8)}hint: ${check.hint}`]),
  ]);
  const { pass, warn, fail } = report.counts;
  const subject =
    report.bundle === null ? "this host" : `this host for ${report.bundle.name} ${report.bundle.version}`;
  lines.push(
    "",
    `${fail === 0 ? "ready" : "not ready"}: ${subject}: ${pass} passed, ${warn} warnings, ${fail} failed`,
  );
  return lines.join("\n");
}

export function registerPreflight(program: Command, run: Runner): void {
  program
    .command("preflight")
    .description("check whether this host can take an install (writes nothing); exit 1 if any check fails")
    .option(
      "--bundle <file>",
      "check against this bundle's platforms, sizing and sizes (its first entries only)",
    )
    .option("--host-root <dir>", "where k3s and its files are installed", "/")
    .option("--registry-listen <host:port>", "where Airlock's registry will listen", DEFAULT_REGISTRY_LISTEN)
    .option(
      "--kubeconfig <file>",
      "install into this existing cluster: checks the file instead of k3s's needs",
    )
    .action(
      async (
        flags: { bundle?: string; hostRoot: string; registryListen: string; kubeconfig?: string },
        command: Command,
      ) =>
        run(command, async (context) => {
          const report = await runPreflight({
            dataDir: context.dataDir,
            bundle: flags.bundle,
            hostRoot: flags.hostRoot,
            registryListen: flags.registryListen,
            kubeconfig: flags.kubeconfig,
          });
          emit(context.output, report, () => renderReport(report));
          if (!report.ok) {
            // The report is the one JSON document on stdout: the failure itself goes to stderr only.
            context.output.json = false;
            const failed = report.checks.filter((check) => check.status === "fail").map((check) => check.id);
            throw new AirlockError(
              "PREFLIGHT_FAILED",
              `the host failed ${failed.length} check(s): ${failed.join(", ")}`,
              {
                where: context.dataDir,
                hint: "fix what each failed check's hint says, then run `airlock preflight` again",
              },
            );
          }
        }),
    );
}
