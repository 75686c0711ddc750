import type { Command } from "commander";
import { AirlockError } from "../../registry/oci/index.js";
import type * as DaemonModule from "../daemon/index.js";
import type { InstalledSite, RegistryConfig, RegistryTls } from "../daemon/index.js";

/** The daemon and express, loaded when a serving command runs rather than at every command's start. */
export const loadDaemon = (): Promise<typeof DaemonModule> => import("../daemon/index.js");

/** The flags `registry serve` and `serve` share for the registry. */
export interface RegistryFlags {
  tlsCert?: string;
  tlsKey?: string;
  insecureHttp?: boolean;
  hostname: string[];
  auth?: string;
  pushUser: string[];
  anonymousPull?: boolean;
  readOnly?: boolean;
}

const repeatable = (name: string, all: string[]): string[] => [...all, name];

export function addRegistryOptions(command: Command): Command {
  return command
    .option("--tls-cert <cert.pem>", "the registry's server certificate (PEM)")
    .option("--tls-key <key.pem>", "the certificate's private key (PEM)")
    .option("--insecure-http", "serve the registry over plain HTTP (only for a host-local registry)")
    .option(
      "--hostname <name>",
      "another name or address clients reach this host by, for the certificates (repeatable)",
      repeatable,
      [] as string[],
    )
    .option(
      "--auth <mode:htpasswd>",
      "htpasswd:FILE (basic auth) or token:FILE (bearer tokens; FILE holds the accounts)",
    )
    .option("--push-user <name>", "an account that may push (repeatable)", repeatable, [] as string[])
    .option("--anonymous-pull", "let clients without credentials pull")
    .option("--read-only", "refuse every push");
}

function tlsOf(flags: RegistryFlags, installed: InstalledSite): RegistryTls {
  if ((flags.tlsCert === undefined) !== (flags.tlsKey === undefined)) {
    throw new AirlockError("USAGE", "--tls-cert and --tls-key go together");
  }
  if (flags.tlsCert !== undefined && flags.tlsKey !== undefined) {
    if (flags.insecureHttp === true) {
      throw new AirlockError("USAGE", "--insecure-http and --tls-cert exclude each other");
    }
    return { kind: "files", certFile: flags.tlsCert, keyFile: flags.tlsKey };
  }
  if (flags.insecureHttp === true) return { kind: "plain-http" };
  if (installed.tls !== undefined) return { kind: "files", ...installed.tls };
  return { kind: "site-ca", hosts: flags.hostname };
}

function authOf(
  flags: RegistryFlags,
  installed: InstalledSite,
): { auth: RegistryConfig["auth"]; pushUsers: string[] } {
  if (flags.auth === undefined) {
    if (installed.auth !== undefined && flags.anonymousPull !== true) {
      const pushUsers = flags.pushUser.length > 0 ? flags.pushUser : [installed.auth.pushUser];
      return { auth: { mode: "basic", file: installed.auth.file }, pushUsers };
    }
    if (flags.anonymousPull !== true) {
      throw new AirlockError(
        "USAGE",
        "say who may pull: --auth htpasswd:FILE, --auth token:FILE, or --anonymous-pull",
        { hint: "make accounts with `htpasswd -Bc FILE USER`" },
      );
    }
    if (flags.pushUser.length > 0) {
      throw new AirlockError("USAGE", "--push-user needs --auth: pushes are never anonymous");
    }
    return { auth: undefined, pushUsers: [] };
  }
  const match = /^(htpasswd|token):(.+)$/.exec(flags.auth);
  if (match === null) {
    throw new AirlockError(
      "USAGE",
      `--auth ${JSON.stringify(flags.auth)} is not htpasswd:FILE or token:FILE`,
    );
  }
  return {
    auth: { mode: match[1] === "token" ? "token" : "basic", file: match[2]! },
    pushUsers: flags.pushUser,
  };
}

/**
 * The registry's configuration from its flags; what a flag leaves out comes from what the site's
 * install recorded (`installed`: its certificate and accounts), then the site CA for the certificate.
 */
export function registryConfigOf(
  listen: string,
  flags: RegistryFlags,
  installed: InstalledSite = {},
): RegistryConfig {
  const { auth, pushUsers } = authOf(flags, installed);
  return {
    listen,
    tls: tlsOf(flags, installed),
    auth,
    pushUsers,
    anonymousPull: flags.anonymousPull === true,
    readOnly: flags.readOnly === true,
  };
}
