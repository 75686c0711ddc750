import { statfs } from "node:fs/promises";
import { parseValues, render } from "../../manifests/index.js";
import { AirlockError, type Digest, type Logger } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { readOperatorValues } from "../install/index.js";
import { BUNDLE_K3S_BINARY } from "../k3s/index.js";
import { openState, type Release, type State, type UpgradePlanRecord } from "../state/index.js";
import { diffReleases, type ObjectDiff } from "./diff.js";
import { declaredGatesOf } from "./gates-declared.js";
import { planDigest, type JsonMap } from "./json-diff.js";
import type { DeclaredGate } from "./run-types.js";
import { checkUpgradePath, type UpgradePath } from "./path.js";
import {
  checkImagesStored,
  importIncoming,
  incomingDefaults,
  installedCertificates,
  storedIncoming,
  type IncomingBundle,
} from "./plan-inputs.js";
import { checkPlannedK3s, type K3sBinaryChange } from "./plan-k3s.js";
import { diffValues, type ValueChange } from "./values-diff.js";

export interface PlanUpgradeOptions {
  dataDir: string;
  /** The next bundle's file (or parts) to import; else `version`, already imported. */
  bundle?: string[] | undefined;
  version?: string | undefined;
  /** An operator values file for this upgrade, over the installed release's values. */
  values?: string | undefined;
  allowDowngrade?: boolean | undefined;
  signal?: AbortSignal | undefined;
  logger?: Logger | undefined;
  /** Who the events name. */
  actor?: string | undefined;
}

/** What an upgrade will do, as stored (`plan` column) and printed by `airlock upgrade plan --json`. */
export interface UpgradePlan {
  id: number;
  createdAt: string;
  path: UpgradePath;
  from: { releaseId: number; version: string; bundleDigest: string };
  to: { bundleDigest: Digest; name: string; version: string; deltaOf: string | undefined };
  objects: ObjectDiff[];
  values: ValueChange[];
  imagesAdded: string[];
  /**
   * The new bundle's bin/k3s when it is not the one this site runs, with both versions when Airlock
   * installed its k3s: the run upgrades k3s first (see checkPlannedK3s).
   */
  k3s: K3sBinaryChange | undefined;
  /** The gates the new bundle declares (its `upgradeGates`), run after each pod and at the end. */
  declaredGates: DeclaredGate[];
  bytesToImport: number;
  freeBytes: number;
  inputsDigest: Digest;
}

/** bin/k3s of the installed bundle (its stored files) against the incoming one's (its metadata), by digest. */
export function k3sChangeOf(
  installedFiles: readonly { path: string; digest: string }[] | undefined,
  incomingFiles: readonly { path: string; sha256: string; size: number }[],
): K3sBinaryChange | undefined {
  const incomingK3s = incomingFiles.find((file) => file.path === BUNDLE_K3S_BINARY);
  if (incomingK3s === undefined) return undefined;
  const installed = installedFiles
    ?.find((file) => file.path === BUNDLE_K3S_BINARY)
    ?.digest.replace(/^sha256:/, "");
  return installed === incomingK3s.sha256
    ? undefined
    : { from: installed, to: incomingK3s.sha256, size: incomingK3s.size };
}

/** The plan's body in the state: what is printed, and the release the run applies. */
interface StoredPlan extends Omit<UpgradePlan, "id" | "createdAt" | "declaredGates"> {
  /** Absent from plans stored before bundles declared gates. */
  declaredGates?: DeclaredGate[] | undefined;
  release: { valuesEffective: JsonMap; objects: unknown[] };
}

/** What a plan was computed from: the installed release (by id and objects), the bundle, the values. */
export function planInputsDigest(release: Release, bundleDigest: string, valuesGiven: JsonMap): Digest {
  return planDigest({
    releaseId: release.id,
    objects: planDigest({ objects: release.objects }),
    bundle: bundleDigest,
    values: planDigest(valuesGiven),
  });
}

function installedRelease(state: State): Release {
  const release = state.releases.current();
  if (release === undefined) {
    throw new AirlockError("NOT_INSTALLED", "nothing is installed on this site to upgrade", {
      hint: "install the plane first with `airlock install`",
    });
  }
  return release;
}

async function incoming(
  store: Store,
  options: PlanUpgradeOptions,
  release: Release,
): Promise<IncomingBundle> {
  if (options.bundle !== undefined && options.bundle.length > 0) {
    return importIncoming(store, options.dataDir, options.bundle, options.signal);
  }
  if (options.version === undefined) {
    throw new AirlockError("USAGE", "name the next release: --bundle FILE or --to-version V");
  }
  return storedIncoming(store, release.bundleName, options.version);
}

function imagesAdded(store: Store, release: Release, next: IncomingBundle): string[] {
  const installed = new Set(
    store.findBundle(release.bundleDigest as Digest)?.images.map((image) => `${image.ref}@${image.digest}`),
  );
  return next.metadata.images
    .filter((image) => !installed.has(`${image.ref}@${image.digest}`))
    .map((image) => image.ref);
}

async function computePlan(
  state: State,
  store: Store,
  options: PlanUpgradeOptions,
): Promise<StoredPlan & { given: JsonMap }> {
  const release = installedRelease(state);
  const next = await incoming(store, options, release);
  const path = checkUpgradePath(release.version, next.metadata, { allowDowngrade: options.allowDowngrade });
  const k3s = await checkPlannedK3s(
    state,
    (digest) => store.blobs.path(digest),
    k3sChangeOf(store.findBundle(release.bundleDigest as Digest)?.files, next.metadata.files),
  );
  await checkImagesStored(store, next.metadata);
  // The schema's defaults filled in, as the installed release's effective values are: a value the
  // bundle does not name is compared as it renders, not as absent.
  const defaults = parseValues({
    registry: release.valuesEffective.registry,
    ...(await incomingDefaults(store, next.metadata)),
  }) as unknown as JsonMap;
  const newGiven = await readOperatorValues(options.values);
  const values = diffValues(release.valuesGiven, release.valuesEffective, defaults, newGiven);
  const parsed = parseValues(values.values);
  const objects = render(parsed, next.metadata.images, {
    release: release.bundleName,
    version: next.metadata.version,
    certificates: await installedCertificates(state, release),
  });
  const disk = await statfs(store.blobs.root);
  return {
    given: values.given,
    path,
    from: { releaseId: release.id, version: release.version, bundleDigest: release.bundleDigest },
    to: {
      bundleDigest: next.digest,
      name: next.metadata.name,
      version: next.metadata.version,
      deltaOf: next.metadata.base?.digest,
    },
    objects: diffReleases(release.objects, objects),
    values: values.changes,
    imagesAdded: imagesAdded(store, release, next),
    k3s,
    declaredGates: declaredGatesOf(next.metadata.upgradeGates),
    bytesToImport: next.bytesToImport,
    freeBytes: disk.bavail * disk.bsize,
    inputsDigest: planInputsDigest(release, next.digest, values.given),
    release: { valuesEffective: parsed, objects },
  };
}

function publicPlan(record: UpgradePlanRecord): UpgradePlan {
  const { release: _release, ...plan } = record.plan as unknown as StoredPlan;
  // Plans stored before bundles declared gates have none.
  return { id: record.id, createdAt: record.createdAt, ...plan, declaredGates: plan.declaredGates ?? [] };
}

/**
 * Plans the upgrade of the installed release to the next bundle: imports it if given (held to the
 * site's vendor key), checks the version path and that every image is stored, renders it with the
 * operator's values carried over, diffs it against what was installed, and stores the plan with the
 * digest of its inputs, holding the writer lock. Nothing in the cluster is touched.
 */
export async function planUpgrade(options: PlanUpgradeOptions): Promise<UpgradePlan> {
  const store = await Store.open(options.dataDir);
  const state = openState(options.dataDir, { actor: options.actor });
  try {
    // The site's one writer: the import and the plan's record change state.
    state.lock("upgrade plan");
    const { given, ...plan } = await computePlan(state, store, options);
    const record = state.plans.create({
      fromReleaseId: plan.from.releaseId,
      fromVersion: plan.from.version,
      toBundleDigest: plan.to.bundleDigest,
      toVersion: plan.to.version,
      valuesGiven: given,
      plan: plan,
      inputsDigest: plan.inputsDigest,
    });
    options.logger?.info(
      { plan: record.id, from: plan.from.version, to: plan.to.version },
      "upgrade planned",
    );
    return publicPlan(record);
  } finally {
    state.close();
    store.close();
  }
}

/** A stored plan as printed: without the rendered release it carries (its Secrets hold keys). */
export function readPlan(state: State, id: number): UpgradePlan {
  return publicPlan(state.plans.get(id));
}

/** What a run applies: the plan, and the rendered release with the values it was rendered from. */
export interface PlanForRun {
  plan: UpgradePlan;
  previous: Release;
  next: StoredPlan["release"];
}

/**
 * A plan to run, refused with PLAN_STALE (and marked stale) when what it was computed from changed
 * since: another release was deployed, or the installed one's objects differ. Also refuses a plan
 * that ran, was cancelled or is stale already.
 */
export function loadPlanForRun(state: State, id: number): PlanForRun {
  const record = state.plans.get(id);
  if (record.status !== "planned" && record.status !== "scheduled") {
    throw new AirlockError("PLAN_NOT_RUNNABLE", `plan ${id} is ${record.status}`, {
      where: `plan/${id}`,
      hint: "make a new plan with `airlock upgrade plan`",
    });
  }
  const release = state.releases.current();
  const digest =
    release === undefined ? undefined : planInputsDigest(release, record.toBundleDigest, record.valuesGiven);
  if (release === undefined || digest !== record.inputsDigest) {
    state.plans.setStatus(id, "stale", { reason: "inputs changed" });
    throw new AirlockError(
      "PLAN_STALE",
      `plan ${id} was computed for release ${record.fromReleaseId} (${record.fromVersion}), and the installed release has changed since`,
      { where: `plan/${id}`, hint: `re-plan: airlock upgrade plan --to-version ${record.toVersion}` },
    );
  }
  const stored = record.plan as unknown as StoredPlan;
  return { plan: publicPlan(record), previous: release, next: stored.release };
}
