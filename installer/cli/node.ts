import type { Command } from "commander";
import { networkInterfaces } from "node:os";
import { HostRoot, Systemd } from "../host/index.js";
import { decodeJoinToken, joinNode, serverJoinToken } from "../k3s/index.js";
import { AirlockError } from "../../registry/oci/index.js";
import { emit, progressReporter } from "./output.js";
import type { Runner } from "./context.js";

/** k3s's supervisor and API port, where agents register. */
const K3S_PORT = 6443;

/** `https://<this host's first non-loopback IPv4>:6443`: where other nodes most likely reach it. */
function defaultServerUrl(): string {
  const address = Object.values(networkInterfaces())
    .flat()
    .find((entry) => entry !== undefined && entry.family === "IPv4" && !entry.internal)?.address;
  if (address === undefined) {
    throw new AirlockError(
      "JOIN_SERVER_UNKNOWN",
      "this host has no network address other nodes could reach",
      {
        where: "--server",
        hint: "name the URL other nodes reach this server's k3s by: --server https://HOST:6443",
      },
    );
  }
  return `https://${address}:${K3S_PORT}`;
}

function registerJoinToken(node: Command, run: Runner): void {
  node
    .command("join-token")
    .description(
      "print the token another host joins this k3s server with (its secret, CA pin and registry configuration)",
    )
    .option("--host-root <dir>", "where this server's k3s is installed", "/")
    .option("--server <url>", "the URL other nodes reach this server by (default https://<first IPv4>:6443)")
    .action(async (flags: { hostRoot: string; server?: string }, command: Command) =>
      run(command, async (context) => {
        const host = new HostRoot(flags.hostRoot);
        const server = flags.server ?? defaultServerUrl();
        const token = await serverJoinToken(host, server);
        const { caHash, registry } = decodeJoinToken(token);
        emit(
          context.output,
          { token, server, caHash, registry: { address: registry.address, username: registry.username } },
          () => token,
        );
        if (!context.output.json)
          process.stderr.write(
            "keep it secret: it holds the cluster's join secret and the pull account.\n" +
              "on the new host: airlock node join --token <token> --bundle <the bundle this site was installed from>\n",
          );
      }),
    );
}

interface JoinFlags {
  token: string;
  bundle: string[];
  key?: string;
  hostRoot: string;
  nodeName?: string;
}

function registerJoin(node: Command, run: Runner): void {
  node
    .command("join")
    .description("install the k3s agent from the bundle on this host and join it to the token's server")
    .requiredOption("--token <token>", "the token `airlock node join-token` printed on the server")
    .requiredOption(
      "--bundle <file...>",
      "the bundle the site was installed from (a split bundle's parts, in order)",
    )
    .option("--key <pub.pem>", "the vendor's public key the bundle must be signed with")
    .option("--host-root <dir>", "where to install k3s", "/")
    .option("--node-name <name>", "this node's name in the cluster (default: the host name)")
    .action(async (flags: JoinFlags, command: Command) =>
      run(command, async (context) => {
        const token = decodeJoinToken(flags.token);
        const host = new HostRoot(flags.hostRoot);
        const progress = await progressReporter(context.output, "join");
        const result = await joinNode({
          host,
          systemd: new Systemd(host),
          token,
          bundle: flags.bundle,
          publicKey: flags.key,
          nodeName: flags.nodeName,
          signal: context.signal,
          onProgress: progress.onProgress,
        }).finally(progress.stop);
        emit(context.output, result, () =>
          [
            `joined ${result.nodeName} to ${result.server} as a k3s agent (${result.unit})`,
            `bundle     ${result.bundle.name} ${result.bundle.version}, signature ${result.bundle.signature.status}`,
            result.changed.length === 0
              ? "nothing changed: this node was already joined"
              : `wrote      ${result.changed.join(", ")}`,
            ...(result.restarted ? [`restarted  ${result.unit}`] : []),
          ].join("\n"),
        );
      }),
    );
}

export function registerNode(program: Command, run: Runner): void {
  const node = program.command("node").description("more k3s nodes for the site, from the same bundle");
  registerJoinToken(node, run);
  registerJoin(node, run);
}
