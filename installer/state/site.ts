import { join } from "node:path";
import { installerVersion, openStateDbReadOnly } from "./db.js";
import { STATE_FILE } from "./state.js";

/** The install step that sets up the cluster (k3s from the bundle, or an existing one). */
export const CLUSTER_STEP = "cluster";

/** What a data dir already holds, as preflight needs it. */
export interface SiteSummary {
  /** The current release, if one was deployed. */
  release: { bundleName: string; bundleDigest: string; version: string } | undefined;
  /** The latest install, finished or not. */
  latestInstall: { id: number; bundleName: string; version: string; state: string } | undefined;
  /** An install here has started its cluster step: a k3s on the host may be Airlock's own. */
  clusterStepStarted: boolean;
}

const EMPTY: SiteSummary = { release: undefined, latestInstall: undefined, clusterStepStarted: false };

/**
 * Reads the site's summary without writing anything: no database, or one the installer never
 * migrated, is an empty site.
 */
export function readSiteSummary(dataDir: string): SiteSummary {
  const db = openStateDbReadOnly(join(dataDir, STATE_FILE));
  if (db === undefined) return EMPTY;
  try {
    if (installerVersion(db) === 0) return EMPTY;
    const release = db
      .prepare("SELECT bundle_name, bundle_digest, version FROM releases WHERE is_current = 1")
      .get() as { bundle_name: string; bundle_digest: string; version: string } | undefined;
    const install = db
      .prepare("SELECT id, bundle_name, version, state FROM installs ORDER BY id DESC LIMIT 1")
      .get() as { id: number; bundle_name: string; version: string; state: string } | undefined;
    const cluster = db
      .prepare("SELECT 1 FROM install_steps WHERE name = ? AND state != 'pending' LIMIT 1")
      .get(CLUSTER_STEP);
    return {
      release:
        release === undefined
          ? undefined
          : {
              bundleName: release.bundle_name,
              bundleDigest: release.bundle_digest,
              version: release.version,
            },
      latestInstall:
        install === undefined
          ? undefined
          : {
              id: install.id,
              bundleName: install.bundle_name,
              version: install.version,
              state: install.state,
            },
      clusterStepStarted: cluster !== undefined,
    };
  } finally {
    db.close();
  }
}
