import type { Command } from "commander";
import { AirlockError } from "../../registry/oci/index.js";
import { startRegistryServer } from "../../registry/server/index.js";
import { emit, formatBytes } from "./output.js";
import { withStore, type Runner } from "./context.js";

export function registerRegistry(program: Command, run: Runner): void {
  const registry = program.command("registry").description("Airlock's own OCI registry over the store");

  registry
    .command("serve")
    .description("serve every imported image over the OCI distribution API (pulls) until SIGTERM")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:5443")
    .option("--tls-cert <cert.pem>", "server certificate (PEM)")
    .option("--tls-key <key.pem>", "the certificate's private key (PEM)")
    .option("--insecure-http", "serve plain HTTP (only for a host-local registry)")
    .action(
      async (
        flags: { listen: string; tlsCert?: string; tlsKey?: string; insecureHttp?: boolean },
        command: Command,
      ) =>
        run(command, async (context) => {
          const tls =
            flags.tlsCert !== undefined && flags.tlsKey !== undefined
              ? { certFile: flags.tlsCert, keyFile: flags.tlsKey }
              : undefined;
          if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
            throw new AirlockError("USAGE", "--tls-cert and --tls-key go together", { exitCode: 2 });
          }
          if (tls === undefined && flags.insecureHttp !== true) {
            throw new AirlockError("USAGE", "the registry serves TLS: give --tls-cert and --tls-key", {
              hint: "or pass --insecure-http for plain HTTP on a host-local address",
              exitCode: 2,
            });
          }
          await withStore(context, async (store) => {
            const server = await startRegistryServer(store, {
              listen: flags.listen,
              tls,
              onInternalError: (error) =>
                process.stderr.write(`registry: internal error: ${String(error)}\n`),
            });
            emit(context.output, { url: server.url }, () => `serving ${context.dataDir} at ${server.url}`);
            await new Promise<void>((resolve) => {
              if (context.signal.aborted) resolve();
              else context.signal.addEventListener("abort", () => resolve(), { once: true });
            });
            await server.close();
          });
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
