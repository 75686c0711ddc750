import type { Command } from "commander";
import { emit, parseDuration, progressReporter } from "./output.js";
import { withStore, type Runner } from "./context.js";
import { AirlockError, formatBytes } from "../../registry/oci/index.js";

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
  registerGc(store, run);
}

const DEFAULT_GRACE = "10m";

/** `store gc` and `registry gc`: one collection, under the store lock, sparing young blobs. */
export function registerGc(group: Command, run: Runner): void {
  group
    .command("gc")
    .description("remove blobs no bundle, manifest or tag needs, and uploads of writers that died")
    .option("--dry-run", "list what would be removed, remove nothing")
    .option(
      "--grace <duration>",
      "keep unreferenced blobs younger than this (a push in progress)",
      DEFAULT_GRACE,
    )
    .action(async (flags: { dryRun?: boolean; grace: string }, command: Command) =>
      run(command, async (context) => {
        const graceMs = parseDuration(flags.grace, "--grace", "10m", true);
        const report = await withStore(context, (s) =>
          s.gc({ signal: context.signal, dryRun: flags.dryRun === true, graceMs }),
        );
        emit(
          context.output,
          report,
          () =>
            `${report.dryRun ? "would remove" : "removed"} ${report.removed.length} blobs, ${formatBytes(report.bytesFreed)}; ${report.ingestsRemoved} leftover ingests, ${report.uploadsRemoved} abandoned uploads`,
        );
      }),
    );
}
