import type { ServerResponse } from "node:http";
import { OCI_ERROR_CODES, type OciErrorCode } from "../oci/index.js";

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
