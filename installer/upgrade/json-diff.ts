import { AirlockError, digestOf, type Digest } from "../../registry/oci/index.js";

/** One field that differs: absent on a side when the field is not there. */
export interface FieldChange {
  /** `spec.template.spec.containers[0].image`, `metadata.labels["app.kubernetes.io/version"]`. */
  path: string;
  change: "added" | "removed" | "changed";
  current?: unknown;
  incoming?: unknown;
}

export type JsonMap = Record<string, unknown>;

export function isJsonMap(value: unknown): value is JsonMap {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** The path of a map key below `parent`: `.name`, or `["dotted.key/name"]` where a dot would mislead. */
export function childPath(parent: string, key: string): string {
  if (IDENTIFIER.test(key)) return parent === "" ? key : `${parent}.${key}`;
  return `${parent}[${JSON.stringify(key)}]`;
}

function sameJson(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/**
 * The fields where `current` and `incoming` differ, depth first, maps key by key (in sorted order)
 * and lists index by index; a value whose type differs is one change at its path.
 */
export function diffJson(current: unknown, incoming: unknown, path = ""): FieldChange[] {
  if (isJsonMap(current) && isJsonMap(incoming)) {
    const keys = [...new Set([...Object.keys(current), ...Object.keys(incoming)])].sort();
    return keys.flatMap((key) => {
      const here = childPath(path, key);
      if (!(key in incoming) || incoming[key] === undefined) {
        return current[key] === undefined
          ? []
          : [{ path: here, change: "removed" as const, current: current[key] }];
      }
      if (!(key in current) || current[key] === undefined) {
        return [{ path: here, change: "added" as const, incoming: incoming[key] }];
      }
      return diffJson(current[key], incoming[key], here);
    });
  }
  if (Array.isArray(current) && Array.isArray(incoming)) {
    const length = Math.max(current.length, incoming.length);
    const changes: FieldChange[] = [];
    for (let index = 0; index < length; index += 1) {
      const here = `${path}[${index}]`;
      if (index >= incoming.length) changes.push({ path: here, change: "removed", current: current[index] });
      else if (index >= current.length)
        changes.push({ path: here, change: "added", incoming: incoming[index] });
      else changes.push(...diffJson(current[index], incoming[index], here));
    }
    return changes;
  }
  return sameJson(current, incoming) ? [] : [{ path, change: "changed", current, incoming }];
}

function canonical(value: unknown, where: string): unknown {
  if (value === null || typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw new AirlockError("PLAN_INPUT_INVALID", `${where} is ${value}, which JSON cannot hold`, {
        where,
        hint: "a plan's inputs are JSON data: this is a bug in the caller",
      });
    }
    return value;
  }
  if (Array.isArray(value)) return value.map((item, index) => canonical(item ?? null, `${where}[${index}]`));
  if (isJsonMap(value)) {
    const keys = Object.keys(value)
      .filter((key) => value[key] !== undefined)
      .sort();
    return Object.fromEntries(keys.map((key) => [key, canonical(value[key], childPath(where, key))]));
  }
  throw new AirlockError("PLAN_INPUT_INVALID", `${where} is a ${typeof value}, which JSON cannot hold`, {
    where,
    hint: "a plan's inputs are JSON data: this is a bug in the caller",
  });
}

/** Compact JSON with every map's keys sorted and undefined fields left out: equal data, equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(canonical(value ?? null, "$"));
}

/**
 * The digest of what a plan was computed from (the installed release, the bundle, the values…), over
 * canonical JSON: running a plan whose inputs digest differently since is running a stale plan.
 */
export function planDigest(inputs: JsonMap): Digest {
  return digestOf(canonicalJson(inputs));
}
