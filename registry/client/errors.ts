import { AirlockError, type ErrorCode } from "../oci/index.js";

/** Statuses that say "not now" rather than "no": retried with backoff, and REGISTRY_UNAVAILABLE after. */
export const RETRYABLE_STATUS = new Set([408, 429, 500, 502, 503, 504]);

const RETRYABLE_ERRORS = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "UND_ERR_SOCKET",
  "UND_ERR_CLOSED",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
]);
const TLS_ERRORS = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|SSL_|TLSV/;

/** Hints by Airlock's code, or by the OCI code of the registry's error body. */
const HINTS: Record<string, string> = {
  REGISTRY_AUTH_FAILED: "check the credentials (--creds USER:PASSWORD or --authfile)",
  REGISTRY_DENIED: "the account may not do this here: ask for push rights on the repository",
  REGISTRY_UNAVAILABLE: "the registry kept failing: re-run when it is healthy, finished work is kept",
  NAME_INVALID: "the target cannot hold this repository name: pick another --to prefix",
  MANIFEST_INVALID: "the target refuses this manifest's media type or content",
  UNSUPPORTED: "the target does not support this operation or media type",
} satisfies Partial<Record<ErrorCode, string>>;

/** The error's own code, or its cause's (undici wraps socket errors). */
function errorCode(error: unknown): string {
  const own = (error as { code?: unknown }).code;
  const cause = (error as { cause?: { code?: unknown } }).cause?.code;
  return typeof own === "string" ? own : typeof cause === "string" ? cause : "";
}

/** A failure worth another attempt: a reset, a refused or timed-out connection, a registry "not now". */
export function isRetryable(error: unknown): boolean {
  if (error instanceof AirlockError) return error.code === "REGISTRY_UNAVAILABLE";
  return RETRYABLE_ERRORS.has(errorCode(error));
}

/**
 * A request that got no answer, as what the user can act on: a name that does not resolve and a TLS
 * failure become AirlockErrors; anything else (resets and the like, which are retried) is returned as is.
 */
export function networkFailure(error: unknown, url: string, where: string): unknown {
  const code = errorCode(error);
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") {
    return new AirlockError("REGISTRY_UNREACHABLE", `cannot resolve ${new URL(url).hostname}`, {
      where,
      hint: "check the registry's host name: this host must resolve and reach it",
      cause: error,
    });
  }
  if (TLS_ERRORS.test(code) || TLS_ERRORS.test(String((error as Error).message))) {
    return new AirlockError(
      "REGISTRY_TLS_FAILED",
      `TLS with ${new URL(url).host} failed: ${(error as Error).message}`,
      {
        where,
        hint:
          code === "ERR_TLS_CERT_ALTNAME_INVALID"
            ? "the certificate does not name this host: use the name it was issued for"
            : "give the registry's CA with --ca-file (or --insecure-skip-tls-verify, knowingly)",
        cause: error,
      },
    );
  }
  return error;
}

/** Retries ran out on a network failure. */
export function unreachable(host: string, where: string, error: unknown): AirlockError {
  return new AirlockError("REGISTRY_UNREACHABLE", `${host}: ${(error as Error).message}`, {
    where,
    hint: "the registry is down or the network between is failing: re-run to go on where this stopped",
    cause: error,
  });
}

/** What a refusal is about: the request and the status, and the error body when there was one to read. */
export interface Refusal {
  method: string;
  what: string;
  status: number;
  /** The registry's error body (up to a limit); undefined when it sent none for this status. */
  body: string | undefined;
}

/** The registry's answer as an AirlockError: its OCI error code and message, and what to do. */
export function refusedError(refusal: Refusal): AirlockError {
  let detail = "";
  let ociCode = "";
  if (refusal.body !== undefined) {
    try {
      const parsed = JSON.parse(refusal.body) as { errors?: { code?: string; message?: string }[] };
      const first = parsed.errors?.[0];
      ociCode = first?.code ?? "";
      detail = `${ociCode}: ${first?.message ?? ""}`;
    } catch {
      detail = refusal.body.slice(0, 200);
    }
  }
  const status = refusal.status;
  const code =
    status === 404 && ["BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"].includes(ociCode)
      ? "REGISTRY_UPLOAD_LOST"
      : status === 401
        ? "REGISTRY_AUTH_FAILED"
        : status === 403
          ? "REGISTRY_DENIED"
          : RETRYABLE_STATUS.has(status)
            ? "REGISTRY_UNAVAILABLE"
            : "REGISTRY_REFUSED";
  return new AirlockError(
    code,
    `${refusal.method} ${refusal.what}: ${status}${detail === "" ? "" : ` ${detail}`}`,
    {
      where: refusal.what,
      hint: HINTS[ociCode] ?? HINTS[code],
    },
  );
}
