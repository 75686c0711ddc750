import { hostname, networkInterfaces } from "node:os";
import type { Command } from "commander";
import { AirlockError } from "../../registry/oci/index.js";
import { openPki, registryServerCertificate } from "../pki/index.js";
import { Authenticator, loadHtpasswd, startRegistryServer } from "../../registry/server/index.js";
import { emit, formatBytes } from "./output.js";
import { withStore, type Runner } from "./context.js";
import { registerGc } from "./store.js";

interface ServeFlags {
  listen: string;
  tlsCert?: string;
  tlsKey?: string;
  insecureHttp?: boolean;
  hostname: string[];
  auth?: string;
  pushUser: string[];
  anonymousPull?: boolean;
  readOnly?: boolean;
}

interface TlsFiles {
  certFile: string;
  keyFile: string;
  /** The CA clients trust, when the certificate is the site CA's. */
  caFile?: string;
}

/** The host's own addresses, for a registry listening on all of them. */
function hostAddresses(): string[] {
  const addresses = Object.values(networkInterfaces())
    .flat()
    .filter((info) => info !== undefined && !info.internal)
    .map((info) => info!.address);
  return [hostname(), ...addresses];
}

/**
 * Given files, or plain HTTP when asked; otherwise a server certificate from the site CA under
 * `pki/`, issued (or kept, when still valid for these hosts) for the listen address and --hostname.
 */
async function tlsFiles(flags: ServeFlags, dataDir: string): Promise<TlsFiles | undefined> {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new AirlockError("USAGE", "--tls-cert and --tls-key go together", { exitCode: 2 });
  }
  if (flags.tlsCert !== undefined && flags.tlsKey !== undefined) {
    if (flags.insecureHttp === true) {
      throw new AirlockError("USAGE", "--insecure-http and --tls-cert exclude each other", { exitCode: 2 });
    }
    return { certFile: flags.tlsCert, keyFile: flags.tlsKey };
  }
  if (flags.insecureHttp === true) return undefined;
  const host = flags.listen.replace(/:\d+$/, "").replace(/^\[(.*)\]$/, "$1");
  const listenHosts = ["0.0.0.0", "::", ""].includes(host) ? hostAddresses() : [host];
  const certificate = await registryServerCertificate(openPki(dataDir), {
    hosts: [...listenHosts, ...flags.hostname],
  });
  return { certFile: certificate.certFile, keyFile: certificate.keyFile, caFile: certificate.caFile };
}

async function authenticator(flags: ServeFlags): Promise<Authenticator | undefined> {
  if (flags.auth === undefined) {
    if (flags.anonymousPull !== true) {
      throw new AirlockError(
        "USAGE",
        "say who may pull: --auth htpasswd:FILE, --auth token:FILE, or --anonymous-pull",
        {
          hint: "make accounts with `htpasswd -Bc FILE USER`",
          exitCode: 2,
        },
      );
    }
    if (flags.pushUser.length > 0) {
      throw new AirlockError("USAGE", "--push-user needs --auth: pushes are never anonymous", {
        exitCode: 2,
      });
    }
    return undefined;
  }
  const match = /^(htpasswd|token):(.+)$/.exec(flags.auth);
  if (match === null) {
    throw new AirlockError(
      "USAGE",
      `--auth ${JSON.stringify(flags.auth)} is not htpasswd:FILE or token:FILE`,
      { exitCode: 2 },
    );
  }
  const users = await loadHtpasswd(match[2]!);
  const unknown = flags.pushUser.filter((name) => !users.has(name));
  if (unknown.length > 0) {
    throw new AirlockError("USAGE", `--push-user ${unknown.join(", ")}: no such account in ${match[2]}`, {
      exitCode: 2,
    });
  }
  return new Authenticator({
    mode: match[1] === "token" ? "token" : "basic",
    users,
    pushUsers: new Set(flags.pushUser),
    anonymousPull: flags.anonymousPull === true,
  });
}

export function registerRegistry(program: Command, run: Runner): void {
  const registry = program.command("registry").description("Airlock's own OCI registry over the store");

  registry
    .command("serve")
    .description("serve every imported image over the OCI distribution API until SIGTERM")
    .option("--listen <host:port>", "address to listen on", "127.0.0.1:5443")
    .option("--tls-cert <cert.pem>", "server certificate (PEM)")
    .option("--tls-key <key.pem>", "the certificate's private key (PEM)")
    .option("--insecure-http", "serve plain HTTP (only for a host-local registry)")
    .option(
      "--hostname <name>",
      "another name or address clients reach the registry by, for the certificate (repeatable)",
      (name: string, all: string[]) => [...all, name],
      [] as string[],
    )
    .option(
      "--auth <mode:htpasswd>",
      "htpasswd:FILE (basic auth) or token:FILE (bearer tokens; FILE holds the accounts)",
    )
    .option(
      "--push-user <name>",
      "an account that may push (repeatable)",
      (name: string, all: string[]) => [...all, name],
      [] as string[],
    )
    .option("--anonymous-pull", "let clients without credentials pull")
    .option("--read-only", "refuse every push")
    .action(async (flags: ServeFlags, command: Command) =>
      run(command, async (context) => {
        const auth = await authenticator(flags);
        const tls = await tlsFiles(flags, context.dataDir);
        await withStore(context, async (store) => {
          const server = await startRegistryServer(store, {
            listen: flags.listen,
            tls,
            auth,
            allowPush: auth !== undefined && flags.readOnly !== true && flags.pushUser.length > 0,
            onInternalError: (error) => process.stderr.write(`registry: internal error: ${String(error)}\n`),
          });
          emit(
            context.output,
            { url: server.url, ca: tls?.caFile },
            () =>
              `serving ${context.dataDir} at ${server.url}` +
              (tls?.caFile === undefined ? "" : `; clients trust ${tls.caFile}`),
          );
          await new Promise<void>((resolve) => {
            if (context.signal.aborted) resolve();
            else context.signal.addEventListener("abort", () => resolve(), { once: true });
          });
          await server.close();
        });
      }),
    );

  registerGc(registry, run);

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
