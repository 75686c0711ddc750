import type { ServerResponse } from "node:http";
import {
  AirlockError,
  OCI_ERROR_CODES,
  errorCodeInfo,
  isAirlockError,
  type ErrorCode,
  type OciErrorCode,
} from "../oci/index.js";

/** An error the distribution spec defines: its code picks the status from the one table. */
export class RegistryError extends Error {
  constructor(
    readonly code: OciErrorCode,
    message: string,
    readonly detail?: unknown,
    /** Headers the answer needs, such as a WWW-Authenticate challenge or Retry-After. */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
    this.name = "RegistryError";
  }

  get status(): number {
    return OCI_ERROR_CODES[this.code];
  }
}

export function sendError(res: ServerResponse, error: RegistryError, head: boolean): void {
  const body = JSON.stringify({
    errors: [
      {
        code: error.code,
        message: error.message,
        ...(error.detail === undefined ? {} : { detail: error.detail }),
      },
    ],
  });
  res.writeHead(error.status, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    ...error.headers,
  });
  res.end(head ? undefined : body);
}

/**
 * The store's own failures (issue 10), which the spec has no code for: not the client's fault, and the
 * same request may well succeed later, so they are answered with their status in the error-code table
 * (503) and Retry-After, under their own code.
 */
const STORAGE_FAILURES: Partial<Record<ErrorCode, string>> = {
  STORE_WRITE_FAILED: "the registry could not write to its storage",
  STORE_DISK_FULL: "the registry's storage is full",
};
const STORAGE_RETRY_AFTER_SECONDS = "10";

/**
 * What a failed commit of an upload is: content that does not hash to the digest is the spec's
 * DIGEST_INVALID; anything else (a disk failure) is the server's and goes on unchanged.
 */
export function commitFailure(error: unknown, digest: string): unknown {
  if (!isAirlockError(error, "DIGEST_MISMATCH")) return error;
  return new RegistryError("DIGEST_INVALID", `the uploaded content does not match ${digest}`, error.message);
}

/**
 * Answers a failure that is not the client's, in the spec's error body: a storage failure under its
 * code with 503 and Retry-After, anything else UNKNOWN with 500. The cause (paths, errno text) is left
 * to the server's logs.
 */
export function sendInternalError(res: ServerResponse, error: unknown, head: boolean): void {
  const storage = error instanceof AirlockError ? STORAGE_FAILURES[error.code] : undefined;
  const entry: { code: ErrorCode; message: string } =
    storage === undefined
      ? { code: "UNKNOWN", message: "internal error" }
      : { code: (error as AirlockError).code, message: `${storage}: retry later` };
  const body = JSON.stringify({ errors: [entry] });
  res.writeHead(errorCodeInfo(entry.code).http ?? 500, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    ...(storage === undefined ? {} : { "Retry-After": STORAGE_RETRY_AFTER_SECONDS }),
  });
  res.end(head ? undefined : body);
}
