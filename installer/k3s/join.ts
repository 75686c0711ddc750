import { createHash, X509Certificate } from "node:crypto";
import { request } from "node:https";
import { z } from "zod";
import type { HostRoot } from "../host/index.js";
import { AirlockError } from "../../registry/oci/index.js";
import { k3sPaths, K3S_DEFAULT_DATA_DIR } from "./layout.js";

const TOKEN_PREFIX = "airlock-join-v1.";

const joinTokenSchema = z.object({
  /** The k3s server agents register with, `https://host:6443`. */
  server: z.url({ protocol: /^https$/ }),
  /** k3s's own node token (its join secret). */
  k3sToken: z.string().min(1),
  /** sha256 (hex) of the cluster's server CA bundle, as k3s's `K10<hash>` tokens pin it. */
  caHash: z.string().regex(/^[0-9a-f]{64}$/),
  registry: z.object({
    address: z.string().min(1),
    caPem: z.string().includes("BEGIN CERTIFICATE"),
    username: z.string().min(1),
    password: z.string().min(1),
    /** The other registries the plane's images name, and the prefix they have in Airlock's. */
    mirrorFor: z.array(z.string().min(1)).optional(),
    prefix: z.string().optional(),
  }),
});

/** Everything a new node needs to join: the server, its secret and CA pin, and Airlock's registry. */
export type JoinToken = z.infer<typeof joinTokenSchema>;

export function encodeJoinToken(token: JoinToken): string {
  return TOKEN_PREFIX + Buffer.from(JSON.stringify(token)).toString("base64url");
}

export function decodeJoinToken(text: string): JoinToken {
  const trimmed = text.trim();
  const invalid = (why: string): AirlockError =>
    new AirlockError("JOIN_TOKEN_INVALID", `the join token is not valid: ${why}`, {
      where: "--token",
      hint: "print a new one on the server with `airlock node join-token` and pass it whole",
    });
  if (!trimmed.startsWith(TOKEN_PREFIX)) throw invalid(`it does not start with ${TOKEN_PREFIX}`);
  let data: unknown;
  try {
    data = JSON.parse(Buffer.from(trimmed.slice(TOKEN_PREFIX.length), "base64url").toString("utf8"));
  } catch {
    throw invalid("it is cut or damaged");
  }
  const parsed = joinTokenSchema.safeParse(data);
  if (!parsed.success) {
    throw invalid(parsed.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`).join("; "));
  }
  return parsed.data;
}

export function caHashOf(caPem: string): string {
  return createHash("sha256").update(caPem).digest("hex");
}

export interface JoinTokenSource {
  host: HostRoot;
  server: string;
  dataDir?: string | undefined;
  registry: JoinToken["registry"];
}

/** A join token from a running server's node token and server CA under the host root. */
export async function createJoinToken(source: JoinTokenSource): Promise<string> {
  const paths = k3sPaths("server", source.dataDir ?? K3S_DEFAULT_DATA_DIR);
  const [k3sToken, caPem] = [
    await source.host.readFile(paths.nodeToken),
    await source.host.readFile(paths.serverCa),
  ];
  if (k3sToken === undefined || caPem === undefined) {
    throw new AirlockError("K3S_NOT_INSTALLED", "this host runs no k3s server Airlock installed", {
      where: k3sToken === undefined ? paths.nodeToken : paths.serverCa,
      hint: "run `airlock install` on this host first; join tokens come from the server",
    });
  }
  return encodeJoinToken({
    server: source.server,
    k3sToken: k3sToken.trim(),
    caHash: caHashOf(caPem),
    registry: source.registry,
  });
}

/**
 * The server's CA as k3s serves it to joining agents (`/cacerts`, unauthenticated: the agent trusts
 * it only once its hash matches the token's), checked against the token's pin.
 */
export async function verifyServerCa(token: JoinToken, timeoutMs = 30_000): Promise<string> {
  const caPem = await fetchCaCerts(token.server, timeoutMs);
  if (caHashOf(caPem) !== token.caHash) {
    throw new AirlockError(
      "JOIN_CA_MISMATCH",
      `the server at ${token.server} presents a CA the token does not pin`,
      {
        where: token.server,
        hint: "the token is for another cluster, or something answers in the server's place: get a new token from the server",
      },
    );
  }
  try {
    new X509Certificate(caPem);
  } catch (error) {
    throw new AirlockError(
      "JOIN_CA_MISMATCH",
      `the server's CA is not a certificate: ${(error as Error).message}`,
      {
        where: token.server,
        cause: error,
      },
    );
  }
  return caPem;
}

function fetchCaCerts(server: string, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    // Not verified by TLS on purpose: the hash comparison above is what authenticates it.
    const req = request(
      new URL("/cacerts", server),
      { rejectUnauthorized: false, timeout: timeoutMs },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          if (res.statusCode === 200) resolve(Buffer.concat(chunks).toString("utf8"));
          else reject(unreachable(server, `HTTP ${res.statusCode}`));
        });
        res.on("error", (error) => reject(unreachable(server, error.message)));
      },
    );
    req.on("timeout", () => req.destroy(new Error(`no answer within ${Math.round(timeoutMs / 1000)} s`)));
    req.on("error", (error) => reject(unreachable(server, error.message)));
    req.end();
  });
}

function unreachable(server: string, why: string): AirlockError {
  return new AirlockError("JOIN_SERVER_UNREACHABLE", `cannot read the CA of ${server}: ${why}`, {
    where: server,
    hint: "check that the server's k3s is running and port 6443 is open from this host",
  });
}
