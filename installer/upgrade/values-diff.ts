import { canonicalJson, childPath, isJsonMap, type JsonMap } from "./json-diff.js";

/** One value of the plane whose setting differs between the installed release and the upgrade. */
export interface ValueChange {
  /** `msgbroker.replicas`, `msgbroker.nodeSelector["kubernetes.io/os"]`. */
  path: string;
  /** What the installed release was rendered with; absent when unset. */
  installed?: unknown;
  /** The next bundle's default; absent when it has none. */
  incomingDefault?: unknown;
  /** What the upgrade renders with; absent when unset. */
  rendered?: unknown;
  /** The operator set it: their value is what renders, whatever the bundle's default. */
  overridden: boolean;
}

export interface ValuesDiff {
  /** The operator's values the new release records: the installed ones with any new ones over them. */
  given: JsonMap;
  /** What to render the upgrade with: the next bundle's defaults with the operator's values over them. */
  values: JsonMap;
  changes: ValueChange[];
}

/** Maps merged key by key, the later layer winning; lists and scalars replaced whole (as install merges). */
function merged(...layers: JsonMap[]): JsonMap {
  const result: JsonMap = {};
  for (const layer of layers) {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      const before = result[key];
      result[key] = isJsonMap(before) && isJsonMap(value) ? merged(before, value) : value;
    }
  }
  return result;
}

/** Every set value by path: maps are walked, lists and empty maps are values. */
function leaves(values: JsonMap, prefix = "", into = new Map<string, unknown>()): Map<string, unknown> {
  for (const [key, value] of Object.entries(values)) {
    if (value === undefined) continue;
    const path = childPath(prefix, key);
    if (isJsonMap(value) && Object.keys(value).length > 0) leaves(value, path, into);
    else into.set(path, value);
  }
  return into;
}

function isOverridden(path: string, given: Map<string, unknown>): boolean {
  for (const set of given.keys()) {
    if (path === set || path.startsWith(`${set}.`) || path.startsWith(`${set}[`)) return true;
  }
  return false;
}

function same(a: unknown, b: unknown): boolean {
  return canonicalJson(a) === canonicalJson(b);
}

/**
 * The values to upgrade with, and what changes: the operator's values (`installedGiven`, and any
 * `newGiven` for this upgrade over them) are carried over onto the next bundle's defaults, never
 * dropped. A value is listed where the bundle's default differs from what was installed, or what
 * renders does; `overridden` says the operator's setting is what renders.
 */
export function diffValues(
  installedGiven: JsonMap,
  installedEffective: JsonMap,
  incomingDefaults: JsonMap,
  newGiven: JsonMap = {},
): ValuesDiff {
  const given = merged(installedGiven, newGiven);
  const values = merged(incomingDefaults, given);
  const installed = leaves(installedEffective);
  const defaults = leaves(incomingDefaults);
  const rendered = leaves(values);
  const givenLeaves = leaves(given);
  const paths = [...new Set([...installed.keys(), ...defaults.keys(), ...rendered.keys()])].sort();
  const changes: ValueChange[] = [];
  for (const path of paths) {
    const before = installed.get(path);
    const incomingDefault = defaults.get(path);
    const after = rendered.get(path);
    if (same(before, incomingDefault) && same(before, after)) continue;
    changes.push({
      path,
      ...(before === undefined ? {} : { installed: before }),
      ...(incomingDefault === undefined ? {} : { incomingDefault }),
      ...(after === undefined ? {} : { rendered: after }),
      overridden: isOverridden(path, givenLeaves),
    });
  }
  return { given, values, changes };
}
