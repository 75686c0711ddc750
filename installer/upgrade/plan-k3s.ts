import { AirlockError, type Digest } from "../../registry/oci/index.js";
import { HostRoot, runCommand } from "../host/index.js";
import { k3sHostRootOf } from "../install/index.js";
import {
  BUNDLE_K3S_BINARY,
  installedK3s,
  k3sSkewProblem,
  k3sVersionAt,
  stageK3s,
  K3S_BINARY,
  K3S_STAGED,
} from "../k3s/index.js";
import type { State } from "../state/index.js";

/** The new bundle's bin/k3s when it is not the installed bundle's, as the plan records it. */
export interface K3sBinaryChange {
  /** sha256 hex of the installed bundle's bin/k3s; undefined when it carried none. */
  from: string | undefined;
  /** sha256 hex of the new bundle's. */
  to: string;
  size: number;
  /**
   * The versions the running binary and the new one print, when Airlock installed this site's k3s
   * (the run upgrades it first); undefined on a cluster Airlock did not install, whose Kubernetes
   * the run leaves alone, and in plans stored before the plan asked.
   */
  versions?: { from: string; to: string } | undefined;
}

/**
 * The plan's k3s change checked on this host: the new binary staged beside the running one (as the
 * run's pre:k3s does), both asked `--version`, and Kubernetes's skew rules applied now, so a plan
 * the run would refuse is never stored (K3S_SKEW_REFUSED). Undefined when the host runs that binary
 * already. On a cluster Airlock did not install the change is kept without versions: not used.
 */
export async function checkPlannedK3s(
  state: State,
  blobPath: (digest: Digest) => string,
  change: K3sBinaryChange | undefined,
): Promise<K3sBinaryChange | undefined> {
  if (change === undefined) return undefined;
  const hostRoot = k3sHostRootOf(state);
  if (hostRoot === undefined) return change;
  const host = new HostRoot(hostRoot);
  await installedK3s(host);
  if (!(await stageK3s(host, blobPath(`sha256:${change.to}`)))) return undefined;
  try {
    const from = await k3sVersionAt(host, K3S_BINARY, runCommand);
    const to = await k3sVersionAt(host, K3S_STAGED, runCommand);
    const problem = k3sSkewProblem(from, to);
    if (problem !== undefined) {
      throw new AirlockError(
        "K3S_SKEW_REFUSED",
        `the bundle's k3s cannot replace the running one: ${problem}`,
        {
          where: BUNDLE_K3S_BINARY,
          hint: `the running k3s is ${from.text}: upgrade with a bundle whose bin/k3s is v${from.major}.${from.minor} (not older than it) or v${from.major}.${from.minor + 1}, then on to this one`,
        },
      );
    }
    return { ...change, versions: { from: from.text, to: to.text } };
  } finally {
    await host.remove(K3S_STAGED);
  }
}
