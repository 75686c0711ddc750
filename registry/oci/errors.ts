import { errorCodeInfo, type ErrorCode } from "./error-codes.js";

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
}

export class AirlockError extends Error {
  readonly code: ErrorCode;
  readonly where: string | undefined;
  readonly hint: string | undefined;
  /** The exit status the CLI uses, from the code's entry in ERROR_CODES: 2 for usage errors, 1 otherwise. */
  readonly exitCode: 1 | 2;

  constructor(code: ErrorCode, message: string, details: AirlockErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = "AirlockError";
    this.code = code;
    this.where = details.where;
    this.hint = details.hint;
    this.exitCode = errorCodeInfo(code).exitCode;
  }

  toJSON(): { code: ErrorCode; message: string; where?: string; hint?: string } {
    return {
      code: this.code,
      message: this.message,
      ...(this.where === undefined ? {} : { where: this.where }),
      ...(this.hint === undefined ? {} : { hint: this.hint }),
    };
  }
}

/** Whether `error` is an AirlockError, of `code` (or of one of the codes) when given. */
export function isAirlockError(
  error: unknown,
  code?: ErrorCode | readonly ErrorCode[],
): error is AirlockError {
  if (!(error instanceof AirlockError)) return false;
  return code === undefined || (typeof code === "string" ? error.code === code : code.includes(error.code));
}

/** Node's system errors carry a string code (ENOSPC, ENOENT, …). */
export function errnoCode(error: unknown): string | undefined {
  if (typeof error === "object" && error !== null && "code" in error) {
    const code = error.code;
    return typeof code === "string" ? code : undefined;
  }
  return undefined;
}
