import { refOf, type ApplyOptions, type ClusterObject } from "./client.js";
import { clusterError } from "./errors.js";
import { leavesOf, overlaps, type Leaf, type Leaves } from "./memory-objects.js";

/** Server-side apply's field ownership: manager → the leaf paths (JSON of the path) it set. */
export type Owners = Map<string, Set<string>>;

/**
 * Server-side apply's merge of `config` into the stored object: a field another manager owns with
 * another value is a conflict (409 unless forced, which takes it over); the manager's fields it no
 * longer applies go unless another manager shares them; what it applies replaces what overlaps it.
 */
export function mergeApplied(
  config: ClusterObject,
  existing: { object: ClusterObject; owners: Owners } | undefined,
  options: ApplyOptions,
): { merged: Leaves; owners: Owners } {
  const applied = leavesOf(config);
  const current: Leaves = existing === undefined ? new Map<string, Leaf>() : leavesOf(existing.object);
  const owners = new Map(
    [...(existing?.owners ?? new Map<string, Set<string>>())].map(([m, p]) => [m, new Set(p)]),
  );

  const conflicts: string[] = [];
  for (const [id, { path, value }] of applied) {
    for (const [manager, paths] of owners) {
      if (manager !== options.fieldManager && paths.has(id) && current.get(id)?.value !== value) {
        conflicts.push(`conflict with "${manager}": .${path.join(".")}`);
      }
    }
  }
  if (conflicts.length > 0 && options.force !== true) {
    throw clusterError(
      409,
      refOf(config),
      `Apply failed with ${conflicts.length} conflicts: ${conflicts.join(", ")}`,
    );
  }

  const merged: Leaves = new Map(current);
  const mine = owners.get(options.fieldManager) ?? new Set<string>();
  for (const id of mine) {
    const sharedWith = [...owners].some(
      ([manager, paths]) => manager !== options.fieldManager && paths.has(id),
    );
    if (!applied.has(id) && !sharedWith) merged.delete(id);
  }
  for (const [id, leaf] of applied) {
    for (const other of [...merged.keys()]) {
      if (other !== id && overlaps(merged.get(other)!.path, leaf.path)) merged.delete(other);
    }
    merged.set(id, leaf);
    for (const [manager, paths] of owners) {
      if (manager !== options.fieldManager && current.get(id)?.value !== leaf.value) paths.delete(id);
    }
  }
  owners.set(options.fieldManager, new Set(applied.keys()));
  return { merged, owners };
}
