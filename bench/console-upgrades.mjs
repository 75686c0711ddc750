// bench/console.mjs's upgrade history: the Upgrades pages' rows on the seeded site (issue 15, point
// 7). Releases 4.9.0 to 4.9.8 deployed one after another, each by a finished run of a plan to it
// (every third one rolled back first, then run again), then a plan to 4.9.9 waiting for review,
// scheduled into a window. Plans hold the real rendered plane and its diff; runs hold the steps and
// gates the rollout records for 3 brokers.
import { createHash } from "node:crypto";

const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
const PEMS = { ca: CERT, peerCert: CERT, peerKey: KEY, serverCert: CERT, serverKey: KEY };
const VERSIONS = Array.from({ length: 10 }, (_, i) => `4.9.${i}`);
const GIVEN = { registry: "registry.site.example:5443", msgbroker: { replicas: 3 } };
const PODS = ["msgbroker-2", "msgbroker-1", "msgbroker-0"];
const STEP_MS = 400;

const digestOf = (text) => `sha256:${createHash("sha256").update(text).digest("hex")}`;

/** The plane at `version` as install and the planner render it: the operator's values, the bundle's images. */
function planeAt({ manifests }, version) {
  const images = [{ ref: `hubble/msgbroker:${version}`, digest: digestOf(`msgbroker ${version}`) }];
  const values = manifests.parseValues(GIVEN);
  return {
    values,
    objects: manifests.render(values, images, { release: "mgmt", version, certificates: PEMS }),
  };
}

/** A plan from the deployed release to `version`, stored as planUpgrade stores it. */
function recordPlan(libs, state, version) {
  const current = state.releases.current();
  const next = planeAt(libs, version);
  const bundleDigest = digestOf(`bundle ${version}`);
  const inputsDigest = libs.upgrade.planInputsDigest(current, bundleDigest, GIVEN);
  const plan = {
    path: { kind: "upgrade", from: current.version, to: version },
    from: { releaseId: current.id, version: current.version, bundleDigest: current.bundleDigest },
    to: { bundleDigest, name: "mgmt", version, deltaOf: undefined },
    objects: libs.upgrade.diffReleases(current.objects, next.objects),
    values: libs.upgrade.diffValues(GIVEN, current.valuesEffective, next.values, {}).changes,
    imagesAdded: [`hubble/msgbroker:${version}`],
    k3s: undefined,
    declaredGates: [],
    bytesToImport: 6 * 1024 ** 2,
    freeBytes: 80 * 1024 ** 3,
    inputsDigest,
    release: { valuesEffective: next.values, objects: next.objects },
  };
  const record = state.plans.create({
    fromReleaseId: current.id,
    fromVersion: current.version,
    toBundleDigest: bundleDigest,
    toVersion: version,
    valuesGiven: GIVEN,
    plan,
    inputsDigest,
  });
  return { id: record.id, next, bundleDigest };
}

/** Records a step and its gates as the rollout does; returns when it ended. */
function step(runs, runId, name, at, gates = [], outcome = "done", detail = undefined) {
  runs.stepStarted(runId, name, at);
  let clock = at;
  for (const [gate, pod, passed, text] of gates) {
    runs.gate(runId, { gate, pod, passed, detail: text, startedAt: clock, finishedAt: clock + STEP_MS });
    clock += STEP_MS;
  }
  runs.stepFinished(runId, name, clock + STEP_MS, outcome, detail);
  return clock + STEP_MS;
}

const podGates = (pod, revision) => [
  ["ready", pod, true, `Ready on ${revision}`],
  ["healthz", pod, true, "/healthz 200 on 3 polls in a row"],
  ["routez", pod, true, "routes to the other brokers"],
  ["settle", pod, true, "settled 10000 ms"],
];

/** A run of plan `planId` that rolls all 3 brokers and passes every gate, or fails on the first pod. */
function recordRun(state, planId, startedAt, rollBack) {
  const { runs } = state;
  const run = runs.create({ planId, fromReleaseId: state.releases.current().id });
  const revision = `msgbroker-${planId}`;
  let at = step(runs, run.id, "pre-gate", startedAt, [
    ["pre:plane", undefined, true, "3 of 3 brokers Ready"],
    ["pre:certificates", undefined, true, "every certificate valid for 30 days or more"],
    ["pre:images", undefined, true, "every image in the site registry"],
  ]);
  at = step(runs, run.id, "config", at);
  at = step(runs, run.id, "statefulset", at);
  if (rollBack) {
    const reason = `gate ready on msgbroker-2 failed: not Ready on ${revision} within 300 s: CrashLoopBackOff`;
    at = step(
      runs,
      run.id,
      "roll msgbroker-2",
      at,
      [["ready", "msgbroker-2", false, reason]],
      "failed",
      reason,
    );
    runs.rolledBack(run.id, reason);
    step(runs, run.id, "rollback", at);
    return runs.finish(run.id, { state: "rolled-back", rollbackReason: reason });
  }
  for (const pod of PODS) at = step(runs, run.id, `roll ${pod}`, at, podGates(pod, revision));
  at = step(runs, run.id, "finish", at);
  const finalGates = PODS.flatMap((pod) => [
    ["final:ready", pod, true, `Ready on ${revision}`],
    ["final:healthz", pod, true, "/healthz 200 on 3 polls in a row"],
    ["final:routez", pod, true, "routes to the other brokers"],
  ]);
  step(runs, run.id, "final-gate", at, finalGates);
  return runs.finish(run.id, { state: "done" });
}

/**
 * Seeds the upgrade history through installer/state, as installs, plans and runs write it; returns
 * the pages no navigation links: the pending plan's review and the last run's timeline.
 */
export function seedUpgrades(libs, state) {
  const first = planeAt(libs, VERSIONS[0]);
  const installed = state.releases.record({
    bundleDigest: digestOf(`bundle ${VERSIONS[0]}`),
    bundleName: "mgmt",
    version: VERSIONS[0],
    valuesGiven: GIVEN,
    valuesEffective: first.values,
    objects: first.objects,
  });
  state.releases.deploy(installed.id);
  const day = 86_400_000;
  let lastRun;
  for (const [index, version] of VERSIONS.slice(1, -1).entries()) {
    const plan = recordPlan(libs, state, version);
    const startedAt = Date.UTC(2026, 0, 1) + index * 30 * day;
    if (index % 3 === 2) recordRun(state, plan.id, startedAt, true);
    lastRun = recordRun(state, plan.id, startedAt + day, false);
    state.plans.setStatus(plan.id, "done", { run: lastRun.id });
    const release = state.releases.record({
      upgradeId: lastRun.id,
      bundleDigest: plan.bundleDigest,
      bundleName: "mgmt",
      version,
      valuesGiven: GIVEN,
      valuesEffective: plan.next.values,
      objects: plan.next.objects,
    });
    state.releases.deploy(release.id);
  }
  const pending = recordPlan(libs, state, VERSIONS.at(-1));
  const windows = ["Sat 02:00-04:00 Europe/Berlin", "Sun 02:00-04:00 Europe/Berlin"];
  libs.upgrade.scheduleUpgrade(
    state,
    pending.id,
    { windows, freezes: [], now: false, hardDeadline: false },
    new Date(),
  );
  return [`/upgrades/plans/${pending.id}`, `/upgrades/runs/${lastRun.id}`];
}
