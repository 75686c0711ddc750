import { readFile } from "node:fs/promises";
import { AirlockError, errnoCode } from "../oci/index.js";

export interface Credentials {
  username: string;
  password: string;
}

/** A `WWW-Authenticate` challenge: its scheme and parameters (realm, service, scope, error). */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="…",service="…",scope="…"` (quoted or token values, commas inside quotes). */
export function parseChallenge(header: string): Challenge | undefined {
  const match = /^\s*([A-Za-z]+)\s*(.*)$/s.exec(header);
  if (match === null) return undefined;
  const params: Record<string, string> = {};
  const pattern = /([A-Za-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?\s*/g;
  for (const param of match[2]!.matchAll(pattern)) {
    params[param[1]!.toLowerCase()] = param[2]?.replace(/\\(.)/g, "$1") ?? param[3] ?? "";
  }
  return { scheme: match[1]!.toLowerCase(), params };
}

export function basicAuthorization(credentials: Credentials): string {
  return `Basic ${Buffer.from(`${credentials.username}:${credentials.password}`).toString("base64")}`;
}

/**
 * Credentials for `host` from a docker-style `auth.json` (`{"auths": {"host": {"auth": base64(user:pass)}}}`),
 * as skopeo, podman and docker write it; undefined when the file has no entry for the host.
 */
export async function credentialsFromAuthFile(path: string, host: string): Promise<Credentials | undefined> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new AirlockError("AUTH_FILE_UNREADABLE", `cannot read ${path}: ${(error as Error).message}`, {
      where: path,
      hint:
        errnoCode(error) === "ENOENT"
          ? "give the auth.json `skopeo login` or `docker login` wrote, or --creds USER:PASSWORD"
          : undefined,
      exitCode: 2,
    });
  }
  let auths: Record<string, { auth?: string; username?: string; password?: string }>;
  try {
    auths = (JSON.parse(text) as { auths?: typeof auths }).auths ?? {};
  } catch (error) {
    throw new AirlockError("AUTH_FILE_INVALID", `${path} is not JSON: ${(error as Error).message}`, {
      where: path,
      exitCode: 2,
    });
  }
  const entry = auths[host] ?? auths[`https://${host}`] ?? auths[`http://${host}`];
  if (entry === undefined) return undefined;
  if (entry.username !== undefined && entry.password !== undefined) {
    return { username: entry.username, password: entry.password };
  }
  const decoded = Buffer.from(entry.auth ?? "", "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon <= 0) {
    throw new AirlockError("AUTH_FILE_INVALID", `the entry for ${host} has no user:password`, {
      where: path,
      exitCode: 2,
    });
  }
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** `USER:PASSWORD` as a flag gives it. */
export function parseCredentials(value: string): Credentials {
  const colon = value.indexOf(":");
  if (colon <= 0) {
    throw new AirlockError("USAGE", "credentials are USER:PASSWORD", {
      hint: "or give --authfile with the auth.json of `skopeo login`",
      exitCode: 2,
    });
  }
  return { username: value.slice(0, colon), password: value.slice(colon + 1) };
}
