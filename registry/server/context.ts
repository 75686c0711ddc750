import type { IncomingMessage, ServerResponse } from "node:http";
import { isDigest, isValidRepository, type Digest } from "../oci/index.js";
import { RegistryError } from "./errors.js";

/** One request, routed: `name` is the repository, `reference` the tag, digest or upload id, decoded. */
export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  head: boolean;
  name: string;
  reference: string;
}

export type Handler = (context: RequestContext) => Promise<void>;

export function checkName(name: string): void {
  if (!isValidRepository(name)) {
    throw new RegistryError("NAME_INVALID", `invalid repository name ${JSON.stringify(name.slice(0, 300))}`);
  }
}

export function checkDigest(reference: string): Digest {
  if (!isDigest(reference))
    throw new RegistryError("DIGEST_INVALID", `invalid digest ${JSON.stringify(reference.slice(0, 200))}`);
  return reference;
}

/** A path segment's `%` escapes decoded; a malformed one is the client's error, not a crash. */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new RegistryError("NAME_INVALID", `malformed % escape in ${JSON.stringify(segment.slice(0, 200))}`);
  }
}

export function sendJson(
  res: ServerResponse,
  head: boolean,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value);
  res.writeHead(200, {
    "Content-Type": "application/json",
    "Content-Length": Buffer.byteLength(body),
    ...headers,
  });
  res.end(head ? undefined : body);
}
