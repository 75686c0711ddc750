/**
 * A site with the sample 4.4.0 deployed, as install leaves it, for tests of upgrade planning: both
 * sample bundles built, 4.4.0 imported, its release rendered and recorded through installer/state
 * (with placeholder PEM files for the install's pki step) and deployed. No cluster is involved.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildBundle, importBundle, readBundleHead } from "../../bundle/index.js";
import { CLUSTER_STEP, openState, type State, type UpgradeRun } from "../../installer/state/index.js";
import { releasesToSwap } from "../../installer/upgrade/index.js";
import { parseValues, render } from "../../manifests/index.js";
import { Store } from "../../registry/store/index.js";
import type { Fixtures } from "./fixtures.js";

const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
const PEM = { ca: CERT, peerCert: CERT, peerKey: KEY, serverCert: CERT, serverKey: KEY };

export interface DeployedSite {
  bundle440: string;
  bundle450: string;
}

export interface DeployOptions {
  /** The 4.4.0 bundle's spec: the sample's unless given. */
  spec440?: string | undefined;
  /** What the install's cluster step recorded (a k3s server's host root): no cluster step unless given. */
  cluster?: Record<string, unknown> | undefined;
  /** The site's broker certificates: placeholders unless given (a run's pre:certificates reads them). */
  pems?: typeof PEM | undefined;
}

/** Deploys 4.4.0 into `dataDir` with the operator's values `given` (the registry is set for them). */
export async function deploy440(
  fx: Fixtures,
  dataDir: string,
  given: Record<string, unknown>,
  options: DeployOptions = {},
): Promise<DeployedSite> {
  const work = await fx.dir("work");
  const bundle440 = join(work, "mgmt-4.4.0.airlock.tar");
  const bundle450 = join(work, "mgmt-4.5.0.airlock.tar");
  await buildBundle({ specFile: options.spec440 ?? fx.spec440, output: bundle440 });
  await buildBundle({ specFile: fx.spec, output: bundle450 });
  const store = await Store.open(dataDir);
  const imported = await importBundle(store, [bundle440]);
  store.close();
  const pki = await fx.dir("pki");
  const files = Object.fromEntries(
    await Promise.all(
      Object.entries(options.pems ?? PEM).map(async ([name, text]) => {
        await writeFile(join(pki, name), text);
        return [name, join(pki, name)];
      }),
    ),
  ) as Record<keyof typeof PEM, string>;
  const { metadata } = await readBundleHead([bundle440]);
  const values = parseValues({ registry: "127.0.0.1:5000", ...given });
  const state = openState(dataDir);
  try {
    const install = state.installs.start({
      bundleDigest: imported.digest,
      bundleName: "mgmt",
      version: "4.4.0",
      steps: options.cluster === undefined ? ["pki"] : ["pki", CLUSTER_STEP],
    });
    if (options.cluster !== undefined) {
      state.installs.startStep(install.id, CLUSTER_STEP);
      state.installs.finishStep(install.id, CLUSTER_STEP, options.cluster);
    }
    state.installs.startStep(install.id, "pki");
    state.installs.finishStep(install.id, "pki", {
      caFile: files.ca,
      broker: {
        peerCert: files.peerCert,
        peerKey: files.peerKey,
        serverCert: files.serverCert,
        serverKey: files.serverKey,
      },
    });
    const release = state.releases.record({
      installId: install.id,
      bundleDigest: imported.digest,
      bundleName: "mgmt",
      version: "4.4.0",
      valuesGiven: given,
      valuesEffective: values,
      objects: render(values, metadata.images, {
        release: "mgmt",
        version: "4.4.0",
        certificates: options.pems ?? PEM,
      }),
    });
    state.releases.deploy(release.id);
  } finally {
    state.close();
  }
  return { bundle440, bundle450 };
}

/**
 * What the site daemon's rollback hook records first: a run of kind rollback between the releases
 * releasesToSwap names (as `airlock upgrade rollback`), on its one step.
 */
export function startRollbackRun(state: State): UpgradeRun {
  const { current, previous } = releasesToSwap(state);
  const planId = state.runs.get(current.upgradeId!).planId;
  const run = state.runs.create({
    planId,
    kind: "rollback",
    fromReleaseId: current.id,
    toReleaseId: previous.id,
  });
  state.runs.stepStarted(run.id, "rollback", Date.now());
  return state.runs.get(run.id);
}
