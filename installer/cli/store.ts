import type { Command } from "commander";
import { emit, formatBytes, progressReporter } from "./output.js";
import { withStore, type Runner } from "./context.js";
import { AirlockError } from "../../registry/oci/index.js";

export function registerStore(program: Command, run: Runner): void {
  const store = program.command("store").description("the local content store");
  store
    .command("fsck")
    .description("re-hash every blob and resolve every reference")
    .action(async (_flags: object, command: Command) =>
      run(command, async (context) => {
        const progress = await progressReporter(context.output, "fsck");
        const report = await withStore(context, (s) =>
          s.fsck({ signal: context.signal, onProgress: progress.onProgress }),
        ).finally(progress.stop);
        emit(context.output, report, () =>
          [
            `${report.ok ? "ok" : "PROBLEMS FOUND"}: ${report.blobs} blobs, ${formatBytes(report.bytes)} re-hashed`,
            ...report.corrupt.map((c) => `corrupt  ${c.digest} (content hashes to ${c.actual})`),
            ...report.missing.map((m) => `missing  ${m.digest} (needed by ${m.referencedBy})`),
            `unreferenced blobs: ${report.unreferenced.length} (removed by \`airlock store gc\`)`,
            `leftover ingest files: ${report.staleIngests}`,
          ].join("\n"),
        );
        if (!report.ok) {
          throw new AirlockError("STORE_INCONSISTENT", "the store has corrupt or missing blobs", {
            where: context.dataDir,
            hint: "re-import the bundles that need them (`airlock bundle import`)",
          });
        }
      }),
    );
  store
    .command("gc")
    .description("remove blobs no bundle, manifest or tag needs")
    .option("--dry-run", "list what would be removed, remove nothing")
    .action(async (flags: { dryRun?: boolean }, command: Command) =>
      run(command, async (context) => {
        const report = await withStore(context, (s) =>
          s.gc({ signal: context.signal, dryRun: flags.dryRun === true }),
        );
        emit(
          context.output,
          report,
          () =>
            `${report.dryRun ? "would remove" : "removed"} ${report.removed.length} blobs, ${formatBytes(report.bytesFreed)}; ${report.ingestsRemoved} leftover ingest files`,
        );
      }),
    );
}
