import { AirlockError } from "./errors.js";
import { isDigest, type Digest } from "./digest.js";

/** An image reference `[registry/]repository[:tag][@digest]`. */
export interface Reference {
  /** Registry host[:port], when the reference names one. */
  registry: string | undefined;
  repository: string;
  tag: string | undefined;
  digest: Digest | undefined;
}

const COMPONENT = "[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*";
const REPOSITORY_PATTERN = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const TAG_PATTERN = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST_PATTERN =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]+)?$/;
export const MAX_REPOSITORY_LENGTH = 255;

export function isValidRepository(name: string): boolean {
  return name.length <= MAX_REPOSITORY_LENGTH && REPOSITORY_PATTERN.test(name);
}

export function isValidTag(tag: string): boolean {
  return TAG_PATTERN.test(tag);
}

/** Whether a reference's first component names a registry rather than starting the repository. */
function looksLikeHost(component: string): boolean {
  return (
    component.includes(".") ||
    component.includes(":") ||
    component === "localhost" ||
    component.startsWith("[")
  );
}

/** A host name or bracketed IPv6 address, with an optional port: `harbor`, `10.0.0.5:5000`, `[::1]:5000`. */
export function isHostPort(value: string): boolean {
  return HOST_PATTERN.test(value);
}

/** `host[:port]` as a reference names a registry: `registry.example.com`, `localhost:5000`, `[::1]:5000`. */
export function isRegistryHost(value: string): boolean {
  return looksLikeHost(value) && isHostPort(value);
}

function refError(value: string, why: string, where: string | undefined): AirlockError {
  return new AirlockError("REFERENCE_INVALID", `invalid image reference ${JSON.stringify(value)}: ${why}`, {
    where,
    hint: "write a reference as [registry/]repository[:tag][@sha256:…], repository in lowercase",
  });
}

export function parseReference(value: string, where?: string): Reference {
  let rest = value;
  let digest: Digest | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    const d = rest.slice(at + 1);
    if (!isDigest(d)) throw refError(value, `digest ${JSON.stringify(d)} is not valid`, where);
    digest = d;
    rest = rest.slice(0, at);
  }
  let tag: string | undefined;
  const lastColon = rest.lastIndexOf(":");
  if (lastColon > rest.lastIndexOf("/")) {
    tag = rest.slice(lastColon + 1);
    rest = rest.slice(0, lastColon);
    if (!isValidTag(tag)) throw refError(value, `tag ${JSON.stringify(tag)} is not valid`, where);
  }
  let registry: string | undefined;
  const slash = rest.indexOf("/");
  if (slash > 0) {
    const first = rest.slice(0, slash);
    if (looksLikeHost(first)) {
      if (!HOST_PATTERN.test(first))
        throw refError(value, `registry ${JSON.stringify(first)} is not valid`, where);
      registry = first;
      rest = rest.slice(slash + 1);
    }
  }
  if (!isValidRepository(rest)) {
    throw refError(value, `repository ${JSON.stringify(rest)} is not valid`, where);
  }
  if (tag === undefined && digest === undefined) tag = "latest";
  return { registry, repository: rest, tag, digest };
}

export function formatReference(ref: Reference): string {
  return (
    (ref.registry === undefined ? "" : `${ref.registry}/`) +
    ref.repository +
    (ref.tag === undefined ? "" : `:${ref.tag}`) +
    (ref.digest === undefined ? "" : `@${ref.digest}`)
  );
}
