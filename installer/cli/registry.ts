import { mkdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Command } from "commander";
import { AirlockError, formatBytes, isHostPort, isValidRepository } from "../../registry/oci/index.js";
import {
  MirrorStateFile,
  bundleSource,
  mirror,
  mirrorClientConfig,
  storeSource,
  type MirrorResult,
} from "../../bundle/index.js";
import type * as ClientModuleNamespace from "../../registry/client/index.js";
import type { Credentials } from "../../registry/client/index.js";

type ClientModule = typeof ClientModuleNamespace;

/** How long pulls in flight may take to finish once SIGTERM came. */
const DRAIN_MS = 10_000;

/** Resolves once the command's signal aborts (SIGINT, SIGTERM). */
export function untilAborted(signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal.aborted) resolve();
    else signal.addEventListener("abort", () => resolve(), { once: true });
  });
}
import { emit, progressReporter, writeFileAtomically } from "./output.js";
import { withStore, type Runner } from "./context.js";
import { guardProcess } from "./process-guard.js";
import { addRegistryOptions, loadDaemon, registryConfigOf, type RegistryFlags } from "./registry-flags.js";
import { registerGc } from "./store.js";

interface MirrorFlags {
  to: string;
  bundle?: string[];
  fromStore?: boolean;
  key?: string;
  creds?: string;
  authfile?: string;
  caFile?: string;
  insecureSkipTlsVerify?: boolean;
  insecureHttp?: boolean;
  dryRun?: boolean;
  concurrency: string;
  outputDir: string;
  mirrorFor: string[];
}

/** `HOST[:PORT][/PREFIX]` → the registry and the repository prefix. */
function parseTarget(to: string): { host: string; prefix: string } {
  const slash = to.indexOf("/");
  const host = slash === -1 ? to : to.slice(0, slash);
  const prefix = slash === -1 ? "" : to.slice(slash + 1).replace(/\/$/, "");
  if (!isHostPort(host) || (prefix !== "" && !isValidRepository(prefix))) {
    throw new AirlockError("USAGE", `--to ${JSON.stringify(to)} is not HOST[:PORT][/PREFIX]`, {
      hint: "e.g. --to harbor.site.local/palette (a prefix in lowercase)",
    });
  }
  return { host, prefix };
}

/** The client and undici, loaded when a mirror runs rather than at every command's start. */
const loadClient = (): Promise<ClientModule> => import("../../registry/client/index.js");

async function mirrorCredentials(flags: MirrorFlags, host: string): Promise<Credentials | undefined> {
  const { credentialsFromAuthFile, parseCredentials } = await loadClient();
  if (flags.creds !== undefined) return parseCredentials(flags.creds);
  if (flags.authfile !== undefined) return credentialsFromAuthFile(flags.authfile, host);
  return undefined;
}

function mirrorSummary(result: MirrorResult): string {
  const lines = result.images.map((image) => {
    const blobs = `${image.blobs.uploaded} sent, ${image.blobs.mounted} mounted, ${image.blobs.present} present`;
    const what =
      image.status === "failed"
        ? `FAILED ${image.error?.code}: ${image.error?.message}${image.error?.hint === undefined ? "" : ` (${image.error.hint})`}`
        : image.status === "missing"
          ? `would send ${formatBytes(image.bytesSent)}`
          : image.status === "present"
            ? "already there"
            : `copied: ${blobs}, ${formatBytes(image.bytesSent)}`;
    return `${image.source.padEnd(36)} → ${image.target}  ${what}`;
  });
  const verb = result.dryRun ? "would send" : "sent";
  lines.push(
    `${result.images.length - result.failed} of ${result.images.length} images ${result.dryRun ? "planned" : "mirrored"} into ${result.target}; ${verb} ${formatBytes(result.bytes)} in ${(result.durationMs / 1000).toFixed(1)} s`,
  );
  return lines.join("\n");
}

export function registerRegistry(program: Command, run: Runner): void {
  const registry = program.command("registry").description("Airlock's own OCI registry over the store");

  addRegistryOptions(
    registry
      .command("serve")
      .description(
        "serve every imported image over the OCI distribution API until SIGTERM; SIGHUP reloads the certificate and accounts",
      )
      .option("--listen <host:port>", "address to listen on", "127.0.0.1:5443"),
  ).action(async (flags: RegistryFlags & { listen: string }, command: Command) =>
    run(command, async (context) => {
      const config = registryConfigOf(flags.listen, flags);
      const { startSiteRegistry } = await loadDaemon();
      await withStore(context, async (store) => {
        const server = await startSiteRegistry(store, context.dataDir, config, context.logger);
        emit(
          context.output,
          { url: server.url, ca: server.caFile },
          () =>
            `serving ${context.dataDir} at ${server.url}` +
            (server.caFile === undefined ? "" : `; clients trust ${server.caFile}`),
        );
        const onHangup = (): void => void server.reload();
        process.on("SIGHUP", onHangup);
        const stopGuarding = guardProcess("registry", context.logger);
        await untilAborted(context.signal);
        process.off("SIGHUP", onHangup);
        stopGuarding();
        await server.close(DRAIN_MS);
      });
    }),
  );

  registerGc(registry, run);

  registry
    .command("mirror")
    .description("copy every image of a bundle (or of the store) into the site's registry, digests unchanged")
    .requiredOption("--to <host[:port][/prefix]>", "the site registry, and a repository prefix")
    .option("--bundle <file...>", "a bundle file (or its parts), read in place without importing")
    .option("--from-store", "every image the store holds")
    .option("--key <pub.pem>", "with --bundle: the vendor's public key the bundle must be signed with")
    .option("--creds <user:password>", "credentials for the site registry")
    .option("--authfile <auth.json>", "credentials from a docker-style auth.json (skopeo login)")
    .option("--ca-file <ca.pem>", "the CA the site registry's certificate chains to")
    .option("--insecure-skip-tls-verify", "accept any certificate (knowingly)")
    .option("--insecure-http", "plain HTTP to the site registry")
    .option("--dry-run", "say what is missing there and how many bytes would go; send nothing")
    .option("--concurrency <n>", "blobs in flight at once", "4")
    .option("--output-dir <dir>", "where mirror-map.json, registries.yaml and certs.d/ are written", ".")
    .option(
      "--mirror-for <registry>",
      "a registry name the cluster's image references use, to send to the mirror (repeatable; default docker.io)",
      (name: string, all: string[]) => [...all, name],
      [] as string[],
    )
    .action(async (flags: MirrorFlags, command: Command) =>
      run(command, async (context) => {
        if ((flags.bundle === undefined) === (flags.fromStore !== true)) {
          throw new AirlockError("USAGE", "say what to mirror: --bundle FILE or --from-store");
        }
        const concurrency = Number(flags.concurrency);
        if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) {
          throw new AirlockError("USAGE", `--concurrency ${flags.concurrency} is not 1 to 64`);
        }
        const { host, prefix } = parseTarget(flags.to);
        const { RegistryClient } = await loadClient();
        const client = new RegistryClient({
          host,
          insecureHttp: flags.insecureHttp === true,
          ca: flags.caFile === undefined ? undefined : await readFile(flags.caFile),
          skipTlsVerify: flags.insecureSkipTlsVerify === true,
          credentials: await mirrorCredentials(flags, host),
          connections: concurrency + 2,
          signal: context.signal,
        });
        const progress = await progressReporter(context.output, flags.dryRun === true ? "plan" : "mirror");
        // Upload sessions in flight, beside the output: a killed run's half-sent blobs are resumed.
        let uploads: MirrorStateFile | undefined;
        try {
          await client.ping();
          if (flags.dryRun !== true) {
            await mkdir(flags.outputDir, { recursive: true });
            uploads = await MirrorStateFile.open(join(flags.outputDir, "mirror-state.json"), host);
          }
          const copy = async (source: Parameters<typeof mirror>[0]["source"]): Promise<MirrorResult> =>
            mirror({
              source,
              client,
              prefix,
              dryRun: flags.dryRun === true,
              concurrency,
              uploads,
              signal: context.signal,
              onProgress: progress.onProgress,
            });
          const result =
            flags.bundle !== undefined
              ? await copy(await bundleSource(flags.bundle, flags.key))
              : await withStore(context, (store) => copy(storeSource(store)));
          progress.stop();
          // Killed or interrupted before this, the file keeps the last checkpoint of each upload.
          if (result.failed === 0) uploads?.clear();
          await uploads?.close();
          if (!result.dryRun) {
            const files = mirrorClientConfig(result, {
              host,
              prefix,
              insecureHttp: flags.insecureHttp === true,
              caFile: flags.caFile,
              mirrorFor: flags.mirrorFor.length === 0 ? ["docker.io"] : flags.mirrorFor,
            });
            for (const [name, text] of files) {
              const path = join(flags.outputDir, name);
              await mkdir(dirname(path), { recursive: true });
              await writeFileAtomically(path, text);
            }
          }
          emit(context.output, result, () => mirrorSummary(result));
          if (result.failed > 0) {
            throw new AirlockError(
              "MIRROR_INCOMPLETE",
              `${result.failed} of ${result.images.length} images failed`,
              {
                where: result.target,
                hint: "fix what each failure names, then re-run: what arrived is kept and not sent again",
              },
            );
          }
        } finally {
          progress.stop();
          await client.close();
        }
      }),
    );

  registry
    .command("ls")
    .description("list repositories, tags, digests and sizes")
    .action(async (_flags: object, command: Command) =>
      run(command, async (context) => {
        const rows = await withStore(context, (store) =>
          Promise.resolve(
            store
              .listTags()
              .map((tag) => ({ ...tag, size: store.getManifest(tag.repository, tag.digest)?.size ?? 0 })),
          ),
        );
        emit(context.output, rows, () =>
          rows.length === 0
            ? "no images"
            : rows
                .map(
                  (row) =>
                    `${`${row.repository}:${row.tag}`.padEnd(40)} ${row.digest}  ${formatBytes(row.size)}`,
                )
                .join("\n"),
        );
      }),
    );
}
