import { errorCodeInfo, type AirlockError } from "../registry/oci/index.js";

/**
 * The HTTP status the console answers a typed error with: its code's in the error-code table (a bad
 * parameter 400, anything not found 404, a conflict with what the site is doing or holds now 409);
 * without one, a usage error (exit 2) is 400 and the rest is the console's own failure, 500.
 */
export function httpStatusOf(error: AirlockError): number {
  const info = errorCodeInfo(error.code);
  return info.http ?? (info.exitCode === 2 ? 400 : 500);
}
