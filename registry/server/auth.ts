import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage } from "node:http";
import bcrypt from "bcryptjs";
import { AirlockError } from "../oci/index.js";
import { RegistryError } from "./errors.js";

/** What a request needs: a repository action, or just a valid identity (`/v2/`, `_catalog`). */
export type Access = { type: "repository"; name: string; action: "pull" | "push" } | { type: "registry" };

export interface AuthConfig {
  /** basic: htpasswd credentials on every request; token: the bearer flow with a /token endpoint. */
  mode: "basic" | "token";
  /** user → bcrypt hash, from an htpasswd file. */
  users: Map<string, string>;
  /** Users who may push; everyone else who logs in may pull. */
  pushUsers: Set<string>;
  /** Pulls without credentials. */
  anonymousPull: boolean;
  tokenTtlSeconds?: number;
}

/** `--auth htpasswd:FILE`: bcrypt lines `user:$2y$…`, as `htpasswd -B` and docker-registry use them. */
export async function loadHtpasswd(path: string): Promise<Map<string, string>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new AirlockError(
      "HTPASSWD_UNREADABLE",
      `cannot read the htpasswd file: ${(error as Error).message}`,
      {
        where: path,
        hint: "make one with `htpasswd -Bc FILE USER` (bcrypt, as docker-registry uses)",
      },
    );
  }
  const users = new Map<string, string>();
  for (const [i, line] of text.split("\n").entries()) {
    if (line.trim() === "" || line.startsWith("#")) continue;
    const colon = line.indexOf(":");
    const hash = line.slice(colon + 1).trim();
    if (colon <= 0 || !/^\$2[aby]\$\d\d\$/.test(hash)) {
      throw new AirlockError("HTPASSWD_INVALID", `line ${i + 1} is not user:bcrypt-hash`, {
        where: `${path}:${i + 1}`,
        hint: "only bcrypt entries are accepted: `htpasswd -B`",
      });
    }
    users.set(line.slice(0, colon), hash);
  }
  return users;
}

interface TokenClaims {
  sub: string;
  aud: string;
  exp: number;
  iat: number;
  access: { type: string; name: string; actions: string[] }[];
}

const SERVICE = "airlock";
const FAILURE_WINDOW_MS = 60_000;
const MAX_FAILURES = 5;
const VERIFIED_TTL_MS = 60_000;
const MAX_VERIFIED = 1024;

function base64url(data: Buffer | string): string {
  return Buffer.from(data).toString("base64url");
}

/**
 * Authentication and authorisation for the registry: htpasswd basic auth, or the bearer-token flow
 * (WWW-Authenticate challenge → /token with credentials → short-lived HMAC-signed token scoped to
 * `repository:NAME:pull,push`), pull for every account, push for the listed ones, anonymous pull
 * only when asked, and failed logins limited per client address.
 */
export class Authenticator {
  /** Tokens are signed with a key that lives as long as the server: a restart only means a new login. */
  private readonly tokenKey = randomBytes(32);
  private readonly failures = new Map<string, number[]>();
  /** Keyed digests of Basic headers bcrypt accepted, and until when they count as checked. */
  private readonly verified = new Map<string, number>();

  constructor(private readonly config: AuthConfig) {}

  /**
   * New accounts (the htpasswd file read again). Passwords checked before count for nothing now, so
   * a removed account or a changed password takes effect at once; tokens already issued run out.
   */
  replaceAccounts(users: Map<string, string>, pushUsers: Set<string>): void {
    this.config.users = users;
    this.config.pushUsers = pushUsers;
    this.verified.clear();
  }

  private realm(req: IncomingMessage): string {
    const scheme = "encrypted" in req.socket && req.socket.encrypted === true ? "https" : "http";
    return `${scheme}://${req.headers.host ?? "localhost"}/token`;
  }

  private challenge(req: IncomingMessage, access: Access, error?: string): Record<string, string> {
    if (this.config.mode === "basic") return { "WWW-Authenticate": 'Basic realm="airlock"' };
    const scope =
      access.type === "repository"
        ? `,scope="repository:${access.name}:${access.action === "push" ? "pull,push" : "pull"}"`
        : "";
    return {
      "WWW-Authenticate": `Bearer realm="${this.realm(req)}",service="${SERVICE}"${scope}${error === undefined ? "" : `,error="${error}"`}`,
    };
  }

  private checkRate(address: string): void {
    const now = Date.now();
    const recent = (this.failures.get(address) ?? []).filter((at) => now - at < FAILURE_WINDOW_MS);
    this.failures.set(address, recent);
    if (recent.length >= MAX_FAILURES) {
      throw new RegistryError("TOOMANYREQUESTS", "too many failed logins from this address", undefined, {
        "Retry-After": String(Math.ceil((FAILURE_WINDOW_MS - (now - recent[0]!)) / 1000)),
      });
    }
  }

  private recordFailure(address: string): void {
    this.failures.set(address, [...(this.failures.get(address) ?? []), Date.now()]);
  }

  /** The user named by a Basic header, undefined without one; a wrong password is an error. */
  private async basicUser(req: IncomingMessage): Promise<string | undefined> {
    const header = req.headers.authorization;
    if (header === undefined || !header.startsWith("Basic ")) return undefined;
    const address = req.socket.remoteAddress ?? "unknown";
    this.checkRate(address);
    const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
    const colon = decoded.indexOf(":");
    const user = decoded.slice(0, colon);
    const hash = colon > 0 ? this.config.users.get(user) : undefined;
    // Basic auth sends the password with every request, and bcrypt costs milliseconds by design: a
    // pair checked once stays good for a minute (by a keyed digest, the password is never kept).
    const key = createHmac("sha256", this.tokenKey).update(header).digest("base64");
    const verifiedUntil = this.verified.get(key);
    if (hash !== undefined && verifiedUntil !== undefined && verifiedUntil > Date.now()) return user;
    if (hash === undefined || !(await bcrypt.compare(decoded.slice(colon + 1), hash))) {
      this.recordFailure(address);
      throw new RegistryError("UNAUTHORIZED", "wrong user name or password", undefined, {
        "WWW-Authenticate": 'Basic realm="airlock"',
      });
    }
    if (this.verified.size >= MAX_VERIFIED) this.verified.clear();
    this.verified.set(key, Date.now() + VERIFIED_TTL_MS);
    return user;
  }

  private allowed(user: string | undefined, action: "pull" | "push"): boolean {
    if (action === "pull") return user !== undefined || this.config.anonymousPull;
    return user !== undefined && this.config.pushUsers.has(user);
  }

  private verifyToken(token: string): TokenClaims | undefined {
    const [header, payload, signature] = token.split(".");
    if (header === undefined || payload === undefined || signature === undefined) return undefined;
    const expected = createHmac("sha256", this.tokenKey).update(`${header}.${payload}`).digest();
    const given = Buffer.from(signature, "base64url");
    if (given.byteLength !== expected.byteLength || !timingSafeEqual(given, expected)) return undefined;
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as TokenClaims;
    return claims.aud === SERVICE && claims.exp > Date.now() / 1000 ? claims : undefined;
  }

  /**
   * Throws the spec's UNAUTHORIZED (with a challenge) or DENIED unless the request may do `access`;
   * returns the account it authenticated as (a token's subject), undefined for an anonymous one.
   */
  async authorize(req: IncomingMessage, access: Access): Promise<string | undefined> {
    if (this.config.mode === "basic") {
      const user = await this.basicUser(req);
      const action = access.type === "repository" ? access.action : "pull";
      if (this.allowed(user, action)) return user;
      if (user === undefined)
        throw new RegistryError(
          "UNAUTHORIZED",
          "authentication required",
          undefined,
          this.challenge(req, access),
        );
      throw new RegistryError("DENIED", `${user} may not ${action} here`);
    }
    const header = req.headers.authorization;
    if (header === undefined || !header.startsWith("Bearer ")) {
      if (access.type === "registry" || access.action === "pull") {
        if (this.config.anonymousPull) return undefined;
      }
      throw new RegistryError(
        "UNAUTHORIZED",
        "authentication required",
        undefined,
        this.challenge(req, access),
      );
    }
    const claims = this.verifyToken(header.slice(7));
    if (claims === undefined) {
      throw new RegistryError(
        "UNAUTHORIZED",
        "the token is invalid or expired",
        undefined,
        this.challenge(req, access, "invalid_token"),
      );
    }
    if (access.type === "registry") return claims.sub;
    const granted = claims.access.some(
      (entry) =>
        entry.type === "repository" && entry.name === access.name && entry.actions.includes(access.action),
    );
    if (!granted) {
      throw new RegistryError(
        "UNAUTHORIZED",
        `the token does not grant ${access.action} on ${access.name}`,
        undefined,
        this.challenge(req, access, "insufficient_scope"),
      );
    }
    return claims.sub;
  }

  /** GET /token: credentials (or none, for anonymous pull) → a token holding what may be granted of the asked scopes. */
  async issueToken(
    req: IncomingMessage,
    url: URL,
  ): Promise<{ token: string; access_token: string; expires_in: number; issued_at: string }> {
    const user = await this.basicUser(req);
    if (user === undefined && !this.config.anonymousPull) {
      throw new RegistryError("UNAUTHORIZED", "credentials required", undefined, {
        "WWW-Authenticate": 'Basic realm="airlock"',
      });
    }
    const access: TokenClaims["access"] = [];
    for (const scope of url.searchParams.getAll("scope")) {
      const [type, name, actions] = scope.split(":");
      if (type !== "repository" || name === undefined || actions === undefined) continue;
      const granted = actions
        .split(",")
        .filter(
          (action): action is "pull" | "push" =>
            (action === "pull" || action === "push") && this.allowed(user, action),
        );
      if (granted.length > 0) access.push({ type, name, actions: granted });
    }
    const ttl = this.config.tokenTtlSeconds ?? 300;
    const iat = Math.floor(Date.now() / 1000);
    const claims: TokenClaims = { sub: user ?? "anonymous", aud: SERVICE, iat, exp: iat + ttl, access };
    const unsigned = `${base64url(JSON.stringify({ alg: "HS256", typ: "JWT" }))}.${base64url(JSON.stringify(claims))}`;
    const token = `${unsigned}.${base64url(createHmac("sha256", this.tokenKey).update(unsigned).digest())}`;
    return { token, access_token: token, expires_in: ttl, issued_at: new Date(iat * 1000).toISOString() };
  }
}
