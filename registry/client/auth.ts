import { readFile } from "node:fs/promises";
import type { Dispatcher } from "undici";
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
    });
  }
  let auths: Record<string, { auth?: string; username?: string; password?: string }>;
  try {
    auths = (JSON.parse(text) as { auths?: typeof auths }).auths ?? {};
  } catch (error) {
    throw new AirlockError("AUTH_FILE_INVALID", `${path} is not JSON: ${(error as Error).message}`, {
      where: path,
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
    });
  }
  return { username: value.slice(0, colon), password: value.slice(colon + 1) };
}

/** One GET without retries (the token service's answer decides), as the transport makes it. */
export type TokenRequest = (url: string, headers: Record<string, string>) => Promise<Dispatcher.ResponseData>;

/**
 * The challenge → credentials flow: basic credentials, or a bearer token per scope from the challenge's
 * realm, fetched once and shared by concurrent requests of that scope (a failed fetch is forgotten).
 */
export class RegistryAuth {
  /** The scheme the registry challenged with, once known: later scopes get credentials up front. */
  private challenge: Challenge | undefined;
  private readonly tokens = new Map<string, Promise<string>>();

  constructor(
    private readonly host: string,
    private readonly credentials: Credentials | undefined,
    private readonly requestToken: TokenRequest,
  ) {}

  /** Authorization for a scope, or undefined while the registry has not challenged (or wants none). */
  authorization(scope: string): Promise<string> | undefined {
    const challenge = this.challenge;
    if (challenge === undefined) return undefined;
    if (challenge.scheme === "basic") {
      return this.credentials === undefined
        ? undefined
        : Promise.resolve(basicAuthorization(this.credentials));
    }
    let token = this.tokens.get(scope);
    if (token === undefined) {
      token = this.fetchToken(challenge.params, scope);
      this.tokens.set(scope, token);
      token.catch(() => this.tokens.delete(scope));
    }
    return token;
  }

  /**
   * A 401's `WWW-Authenticate`: remembered, and the scope's token dropped so the next attempt asks
   * afresh. False when the header holds no challenge to answer.
   */
  challenged(header: string, scope: string): boolean {
    const challenge = parseChallenge(header);
    if (challenge === undefined) return false;
    this.challenge = challenge;
    this.tokens.delete(scope);
    return true;
  }

  private async fetchToken(params: Record<string, string>, scope: string): Promise<string> {
    const realm = params.realm;
    if (realm === undefined) {
      throw new AirlockError("REGISTRY_PROTOCOL", "the registry's Bearer challenge names no realm", {
        where: this.host,
      });
    }
    const url = new URL(realm);
    if (params.service !== undefined) url.searchParams.set("service", params.service);
    for (const one of scope.split(" ").filter(Boolean)) url.searchParams.append("scope", one);
    const headers: Record<string, string> =
      this.credentials === undefined ? {} : { Authorization: basicAuthorization(this.credentials) };
    const response = await this.requestToken(url.toString(), headers);
    if (response.statusCode !== 200) {
      await response.body.dump();
      throw new AirlockError(
        "REGISTRY_AUTH_FAILED",
        `the token service refused the credentials (${response.statusCode})`,
        {
          where: url.origin + url.pathname,
          hint:
            this.credentials === undefined
              ? "give --creds USER:PASSWORD or --authfile"
              : "check the user name and password",
        },
      );
    }
    const body = (await response.body.json()) as { token?: string; access_token?: string };
    const token = body.token ?? body.access_token;
    if (token === undefined) {
      throw new AirlockError("REGISTRY_PROTOCOL", "the token service answered without a token", {
        where: url.origin,
      });
    }
    return `Bearer ${token}`;
  }
}
