import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { readBundleHead, type BundleHead } from "../../bundle/index.js";
import { BROKER_REPOSITORY } from "../../manifests/index.js";
import { AirlockError } from "../../registry/oci/index.js";
import { KubeClusterClient, type ClusterClient } from "../cluster/index.js";
import { HostRoot, Systemd, UNIT_DIR } from "../host/index.js";
import {
  DEFAULT_CONSOLE_LISTEN,
  DEFAULT_HEALTH_LISTEN,
  DEFAULT_REGISTRY_LISTEN,
  factsOf,
  parseListen,
  runPreflight,
  type PreflightReport,
} from "../preflight/index.js";
import { openState, STATE_FILE, type State, type WriterLock } from "../state/index.js";
import { checkBundleKey } from "./bundle-key.js";
import { k3sEntries } from "../k3s/index.js";
import { clusterStep, type ClusterDetail } from "./cluster-step.js";
import { runMachine, type StepDefinition, type StepDetail, type StepReport } from "./machine.js";
import { readOperatorValues } from "./plane-values.js";
import { LEGACY_REGISTRY_UNIT, registryStep, type RegistryDetail } from "./registry-service.js";
import { importStep, pkiStep, preflightStep } from "./steps-site.js";
import { applyStep, recordStep, releaseName, renderStep, waitStep } from "./steps-plane.js";
import type { InstallContext, InstallOptions, InstallResult } from "./types.js";

/** The install, in order: every step re-checked on a re-run and skipped while what it did holds. */
export const INSTALL_STEPS: StepDefinition<InstallContext>[] = [
  preflightStep,
  importStep,
  pkiStep,
  registryStep,
  clusterStep,
  renderStep,
  applyStep,
  waitStep,
  recordStep,
];

const CLUSTER_REQUEST_TIMEOUT_MS = 10_000;

function preflightFailed(report: PreflightReport, dataDir: string): AirlockError {
  const failed = report.checks.filter((check) => check.status === "fail");
  return new AirlockError(
    "PREFLIGHT_FAILED",
    `the host failed ${failed.length} check(s): ${failed.map((check) => `${check.id} (${check.detail})`).join("; ")}`,
    {
      where: dataDir,
      hint: `${failed[0]?.hint ?? "fix what each check says"}; \`airlock preflight\` shows every check`,
    },
  );
}

/**
 * A bundle that carries no broker image holds no plane to install: refused before anything is
 * written, unless the operator's values name the image to run. (Which tag render pins is checked
 * at render, with the bundle's own values.)
 */
function checkBundleCarriesPlane(head: BundleHead, operatorValues: Record<string, unknown>): void {
  const named = (operatorValues.msgbroker as { image?: unknown } | undefined)?.image !== undefined;
  const images = head.metadata.images.filter((image) => image.kind === "image");
  const carried = images.some((image) => image.ref.startsWith(`${BROKER_REPOSITORY}:`));
  if (named || carried) return;
  throw new AirlockError(
    "BUNDLE_PLANE_MISSING",
    `${head.metadata.name} ${head.metadata.version} carries no ${BROKER_REPOSITORY} image: there is no plane in it to install`,
    {
      where: head.input.label,
      hint: `the bundle holds ${images.map((image) => image.ref).join(", ") || "no images"}; build it with ${BROKER_REPOSITORY}:${head.metadata.version} among bundle.yaml's images`,
    },
  );
}

/** This bundle is what the site already runs: nothing to do. Another one is an upgrade's to install. */
function installedAlready(state: State, head: BundleHead): boolean {
  const current = state.releases.current();
  if (current === undefined) return false;
  if (current.bundleDigest === head.digest) return state.installs.latest()?.state === "done";
  throw new AirlockError(
    "INSTALL_ALREADY_INSTALLED",
    `${current.bundleName} ${current.version} is installed here; this bundle is ${head.metadata.name} ${head.metadata.version}`,
    {
      where: head.input.label,
      hint: "a site is installed once: import the new bundle and move to it with `airlock upgrade`",
    },
  );
}

function contextOf(
  options: InstallOptions,
  state: State,
  head: BundleHead,
  preflight: PreflightReport,
  publicKey: string | undefined,
): { context: InstallContext; setInstallId: (id: number) => void } {
  const host = new HostRoot(options.hostRoot ?? "/");
  const clients = new Map<string, ClusterClient>();
  const details = new Map<string, StepDetail>();
  let installId: number | undefined;
  const connect = (kubeconfig: string): ClusterClient => {
    let client = clients.get(kubeconfig);
    if (client === undefined) {
      client =
        options.connect?.(kubeconfig) ??
        KubeClusterClient.fromKubeconfig(kubeconfig, { requestTimeoutMs: CLUSTER_REQUEST_TIMEOUT_MS });
      clients.set(kubeconfig, client);
    }
    return client;
  };
  const context: InstallContext = {
    options,
    dataDir: resolve(options.dataDir),
    head,
    state,
    host,
    systemd: new Systemd(host, options.runner),
    preflight,
    registryListen: options.registryListen ?? DEFAULT_REGISTRY_LISTEN,
    publicKey,
    details,
    newAccounts: [],
    installId: () => installId!,
    connect,
    cluster: () => connect((details.get(clusterStep.name) as unknown as ClusterDetail).kubeconfig),
  };
  return { context, setInstallId: (id) => (installId = id) };
}

function resultOf(
  context: InstallContext,
  outcome: InstallResult["outcome"],
  installId: number,
  steps: StepReport[],
): InstallResult {
  const { state, head } = context;
  const install = state.installs.get(installId);
  const recorded = (name: string): StepDetail => state.installs.step(install.id, name).detail;
  const registry = recorded(registryStep.name) as unknown as RegistryDetail;
  const cluster = recorded(clusterStep.name) as unknown as ClusterDetail;
  const release = state.releases.current();
  return {
    outcome,
    installId: install.id,
    bundle: { name: head.metadata.name, version: head.metadata.version, digest: head.digest },
    release: release === undefined ? undefined : { id: release.id, name: releaseName(context) },
    steps,
    registry: { url: registry.url, caFile: registry.access.caFile },
    newAccounts: context.newAccounts,
    nodeConfig: cluster.nodeConfig,
    preflight: context.preflight.counts,
  };
}

/**
 * A site installed before the site daemon runs its registry as `airlock-registry.service`: a re-run
 * of its finished install runs the registry step again, which replaces that unit with `airlock
 * serve`'s, and records the step's new detail. Nothing else is redone.
 */
async function replaceLegacyUnit(context: InstallContext, installId: number): Promise<StepReport[]> {
  if (!(await context.host.exists(`${UNIT_DIR}/${LEGACY_REGISTRY_UNIT}`))) return [];
  const { state } = context;
  context.details.set(pkiStep.name, state.installs.step(installId, pkiStep.name).detail);
  const begun = Date.now();
  const event = { name: registryStep.name, title: registryStep.title };
  context.options.onStep?.({ ...event, phase: "start" });
  const outcome = await registryStep.run(context);
  state.installs.finishStep(installId, registryStep.name, outcome.detail);
  const report: StepReport = {
    ...event,
    outcome: "done",
    durationMs: Date.now() - begun,
    summary: outcome.summary,
  };
  context.options.onStep?.({ ...report, phase: "done" });
  return [report];
}

/**
 * `airlock install`: checks the bundle's signature and the host before anything is written, then,
 * under the site's writer lock, runs the install's steps — resuming an unfinished install of the
 * same bundle where it stopped, and doing nothing for one that finished.
 */
export async function runInstall(options: InstallOptions): Promise<InstallResult> {
  const dataDir = resolve(options.dataDir);
  const registryListen = options.registryListen ?? DEFAULT_REGISTRY_LISTEN;
  const consoleListen = options.consoleListen ?? DEFAULT_CONSOLE_LISTEN;
  const healthListen = options.healthListen ?? DEFAULT_HEALTH_LISTEN;
  parseListen(registryListen);
  parseListen(consoleListen, "--console-listen");
  parseListen(healthListen, "--health-listen");
  const head = await readBundleHead(options.bundle);
  checkBundleCarriesPlane(head, await readOperatorValues(options.valuesFile));
  const key = await checkBundleKey(head, dataDir, options.publicKey);
  // k3s from a bundle that carries none is refused before anything is written.
  if (options.cluster.kind === "k3s" && options.clusterSetup === undefined) {
    k3sEntries(head.metadata.files, head.input.label);
  }
  // A site with state takes the lock first, so a second install fails at once, before its preflight.
  let state = existsSync(join(dataDir, STATE_FILE)) ? openState(dataDir, { actor: "cli" }) : undefined;
  let lock: WriterLock | undefined;
  try {
    lock = state?.lock("airlock install");
    const preflight = await runPreflight({
      dataDir,
      bundle: head.input.label,
      bundleFacts: factsOf(head.metadata, head.digest),
      hostRoot: options.hostRoot,
      registryListen,
      consoleListen,
      healthListen,
      kubeconfig: options.cluster.kind === "kubeconfig" ? options.cluster.kubeconfig : undefined,
      host: options.hostView,
    });
    if (!preflight.ok) throw preflightFailed(preflight, dataDir);
    state ??= openState(dataDir, { actor: "cli" });
    lock ??= state.lock("airlock install");
    const { context, setInstallId } = contextOf(
      { ...options, dataDir, registryListen, consoleListen, healthListen },
      state,
      head,
      preflight,
      key.path,
    );
    if (installedAlready(state, head)) {
      const latest = state.installs.latest()!.id;
      setInstallId(latest);
      const steps = await replaceLegacyUnit(context, latest);
      state.events.append({ action: "install.noop", object: `install/${latest}`, outcome: "skipped" });
      return resultOf(context, "unchanged", latest, steps);
    }
    const run = await runMachine({
      state,
      identity: { bundleDigest: head.digest, bundleName: head.metadata.name, version: head.metadata.version },
      steps: INSTALL_STEPS,
      context,
      details: context.details,
      signal: options.signal,
      onInstall: (install) => setInstallId(install.id),
      onStep: options.onStep,
    });
    return resultOf(context, "installed", run.install.id, run.steps);
  } finally {
    lock?.release();
    state?.close();
  }
}
