import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { loadHtpasswd } from "../../registry/server/index.js";
import { HostRoot } from "../host/index.js";

/** The account the cluster's nodes pull with: its password is in the nodes' registries.yaml. */
export const PULL_USER = "cluster-pull";
/** The operator's account, the one that may push. */
export const ADMIN_USER = "admin";
const BCRYPT_COST = 10;

export interface RegistryAccounts {
  htpasswdFile: string;
  /** The cluster's pull account, its password kept 0600 beside the accounts file (nodes need it). */
  pull: { username: string; password: string };
  /** Accounts this call made, with their passwords: shown once, then only their bcrypt is kept. */
  created: { username: string; password: string; role: string }[];
}

export function accountFiles(dataDir: string): { htpasswdFile: string; pullPasswordFile: string } {
  const dir = join(dataDir, "registry");
  return { htpasswdFile: join(dir, "htpasswd"), pullPasswordFile: join(dir, "pull-password") };
}

function newPassword(): string {
  return randomBytes(18).toString("base64url");
}

/**
 * The registry's accounts in an htpasswd file (bcrypt, 0600): the cluster's pull account and the
 * operator's admin account. Accounts already there are kept as they are; a missing one is made.
 */
export async function ensureAccounts(dataDir: string): Promise<RegistryAccounts> {
  const { htpasswdFile, pullPasswordFile } = accountFiles(dataDir);
  // Data dir files are absolute paths: a host root at / writes them atomically and durably.
  const files = new HostRoot("/");
  const users = existsSync(htpasswdFile) ? await loadHtpasswd(htpasswdFile) : new Map<string, string>();
  const created: RegistryAccounts["created"] = [];
  let pullPassword = (await files.readFile(pullPasswordFile))?.trim();
  const pullHash = users.get(PULL_USER);
  if (
    pullPassword === undefined ||
    pullHash === undefined ||
    !(await bcrypt.compare(pullPassword, pullHash))
  ) {
    pullPassword = newPassword();
    // The password first: a crash before the accounts file is written makes the next run start over.
    await files.writeFile(pullPasswordFile, `${pullPassword}\n`, 0o600);
    users.set(PULL_USER, await bcrypt.hash(pullPassword, BCRYPT_COST));
    created.push({ username: PULL_USER, password: pullPassword, role: "pull (the cluster's nodes)" });
  }
  if (!users.has(ADMIN_USER)) {
    const password = newPassword();
    users.set(ADMIN_USER, await bcrypt.hash(password, BCRYPT_COST));
    created.push({ username: ADMIN_USER, password, role: "push and pull (the operator)" });
  }
  if (created.length > 0) {
    const lines = [...users].map(([name, hash]) => `${name}:${hash}`);
    await files.writeFile(htpasswdFile, `${lines.join("\n")}\n`, 0o600);
  }
  return { htpasswdFile, pull: { username: PULL_USER, password: pullPassword }, created };
}
