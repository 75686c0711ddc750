/**
 * Every failure Airlock reports is an AirlockError: a stable code that scripts can match,
 * what failed, where (a file, entry, image or field), and a hint at what to do.
 */
export interface AirlockErrorDetails {
  /** The file, tar entry, image reference or field the failure concerns. */
  where?: string | undefined;
  /** What the operator can do about it. */
  hint?: string | undefined;
  cause?: unknown;
  /** Exit status the CLI uses: 2 for usage errors, 1 otherwise. */
  exitCode?: 1 | 2 | undefined;
}

export class AirlockError extends Error {
  readonly code: string;
  readonly where: string | undefined;
  readonly hint: string | undefined;
  readonly exitCode: 1 | 2;

  constructor(code: string, message: string, details: AirlockErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "AirlockError";
    this.code = code;
    this.where = details.where;
    this.hint = details.hint;
    this.exitCode = details.exitCode ?? 1;
  }

  toJSON(): { code: string; message: string; where?: string; hint?: string } {
    return {
      code: this.code,
      message: this.message,
      ...(this.where === undefined ? {} : { where: this.where }),
      ...(this.hint === undefined ? {} : { hint: this.hint }),
    };
  }
}

export function isAirlockError(error: unknown, code?: string): error is AirlockError {
  return error instanceof AirlockError && (code === undefined || error.code === code);
}

/** Node's system errors carry a string code (ENOSPC, ENOENT, …). */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = error.code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}

/**
 * The OCI distribution spec's error codes with the HTTP status each maps to (as distribution, the
 * reference implementation, answers them): one table, used by the registry server for every error
 * body it writes. PAGINATION_NUMBER_INVALID is distribution's, for an `n` that is not a page size.
 */
export const OCI_ERROR_CODES = {
  BLOB_UNKNOWN: 404,
  BLOB_UPLOAD_INVALID: 400,
  BLOB_UPLOAD_UNKNOWN: 404,
  DIGEST_INVALID: 400,
  MANIFEST_BLOB_UNKNOWN: 404,
  MANIFEST_INVALID: 400,
  MANIFEST_UNKNOWN: 404,
  NAME_INVALID: 400,
  NAME_UNKNOWN: 404,
  PAGINATION_NUMBER_INVALID: 400,
  SIZE_INVALID: 400,
  UNAUTHORIZED: 401,
  DENIED: 403,
  UNSUPPORTED: 405,
  TOOMANYREQUESTS: 429,
} as const satisfies Record<string, number>;

export type OciErrorCode = keyof typeof OCI_ERROR_CODES;
