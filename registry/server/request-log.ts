import { randomUUID } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Logger } from "../oci/index.js";

/** Names one request in the answer and in every log line about it, so an operator can match them. */
export const REQUEST_ID_HEADER = "X-Request-Id";

/** What the handler learns about a request while serving it, for its log line. */
export interface RequestRecord {
  id: string;
  /** The account the request authenticated as; undefined is anonymous. */
  user: string | undefined;
}

/** The path as sent, without the query (which may carry a token request's scopes and account). */
const pathOf = (req: IncomingMessage): string => (req.url ?? "/").split("?")[0]!.slice(0, 1000);

/**
 * Gives the request an id (answered in X-Request-Id) and, when info is enabled, logs one line once
 * the response is done: method, path, status, bytes written to the connection (headers included),
 * duration, user and id, and `aborted` when the connection closed before the response was complete.
 * At a level above info nothing is measured or built.
 */
export function recordRequest(logger: Logger, req: IncomingMessage, res: ServerResponse): RequestRecord {
  const record: RequestRecord = { id: randomUUID(), user: undefined };
  res.setHeader(REQUEST_ID_HEADER, record.id);
  if (!logger.isLevelEnabled("info")) return record;
  const started = performance.now();
  const socket = req.socket;
  const writtenBefore = socket.bytesWritten;
  res.once("close", () => {
    logger.info(
      {
        requestId: record.id,
        method: req.method,
        path: pathOf(req),
        status: res.statusCode,
        bytes: socket.bytesWritten - writtenBefore,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
        user: record.user ?? "anonymous",
        ...(res.writableFinished ? {} : { aborted: true }),
      },
      "request",
    );
  });
  return record;
}

/** A failure that is the server's, with its stack, under the request's id. */
export function logInternalError(
  logger: Logger,
  req: IncomingMessage,
  record: RequestRecord,
  error: unknown,
): void {
  logger.error({ err: error, requestId: record.id, method: req.method, path: pathOf(req) }, "internal error");
}
