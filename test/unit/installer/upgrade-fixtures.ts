/** What the upgrade unit tests share: brokers as the monitor port answers for a MemoryCluster's pods, and a clock that does not wait. */
import { applyRelease, type ClusterClient, type ClusterObject } from "../../../installer/cluster/index.js";
import type { Release, State } from "../../../installer/state/index.js";
import {
  planInputsDigest,
  type Clock,
  type DeclaredGate,
  type GateOutcome,
  type HttpProber,
  type RunRecorder,
} from "../../../installer/upgrade/index.js";
import { NAMESPACE } from "../../../manifests/index.js";
import { RELEASE } from "../manifests/plane-fixtures.js";

/** Every event a run records, as one line each, in order. */
export class EventRecorder implements RunRecorder {
  readonly events: string[] = [];
  readonly gates: GateOutcome[] = [];
  stepStarted(step: string): void {
    this.events.push(`start ${step}`);
  }
  stepFinished(step: string, _at: number, outcome: string): void {
    this.events.push(`${outcome} ${step}`);
  }
  gate(outcome: GateOutcome): void {
    this.gates.push(outcome);
    this.events.push(
      `gate ${outcome.gate} ${outcome.pod ?? "plane"} ${outcome.passed ? "passed" : "failed"}`,
    );
  }
  partitionMoved(_name: string, partition: number): void {
    this.events.push(`partition ${partition}`);
  }
  rolledBack(reason: string): void {
    this.events.push(`rolled back: ${reason}`);
  }
}

/** Real time, but a sleep waits at most 5 ms: the settle delay is asked for, not waited. */
export function fastClock(slept: number[] = []): Clock {
  return {
    now: () => Date.now(),
    sleep: (ms) => {
      slept.push(ms);
      return new Promise((resolve) => setTimeout(resolve, Math.min(ms, 5)));
    },
  };
}

/**
 * Brokers as the monitor port would answer for the cluster's pods: /varz names each by its pod,
 * /routez routes to every other pod that exists; /healthz 503 on pods running `brokenImage`.
 */
export function fakeBrokers(cluster: ClusterClient, brokenImage?: () => string | undefined): HttpProber {
  return async (url) => {
    const { hostname, pathname } = new URL(url);
    const name = hostname.split(".")[0]!;
    const pods = await cluster.list("v1", "Pod", { namespace: NAMESPACE });
    const pod = pods.find((candidate) => candidate.metadata.name === name);
    if (pod === undefined) throw new Error(`connect ECONNREFUSED ${hostname}`);
    const image = (pod.spec as { containers: { image: string }[] }).containers[0]!.image;
    if (pathname === "/healthz") return { status: image === brokenImage?.() ? 503 : 200, body: "{}" };
    if (pathname === "/varz")
      return { status: 200, body: JSON.stringify({ server_id: `id-${name}`, server_name: name }) };
    const routes = pods
      .filter((other) => other.metadata.name !== name)
      .map((other) => ({ remote_id: `id-${other.metadata.name}` }));
    return { status: 200, body: JSON.stringify({ server_id: `id-${name}`, routes }) };
  };
}

/** 2 brokers, short gates: a whole run takes well under a second on MemoryCluster. */
export const TEST_GATES = {
  podReadyTimeoutMs: 2_000,
  pollIntervalMs: 5,
  brokerTimeoutMs: 500,
  healthyPolls: 2,
  settleMs: 10_000,
};
export const REPLICAS = { msgbroker: { replicas: 2 } };
const NEXT_BUNDLE = `sha256:${"b".repeat(64)}`;

/** The StatefulSet's image in a rendered release. */
export function imageOf(objects: ClusterObject[]): string {
  const sts = objects.find((object) => object.kind === "StatefulSet")!;
  return (sts.spec as { template: { spec: { containers: { image: string }[] } } }).template.spec
    .containers[0]!.image;
}

/** The pods' images and revisions, by name. */
export async function podImages(cluster: ClusterClient): Promise<Record<string, string>> {
  const pods = await cluster.list("v1", "Pod", { namespace: NAMESPACE });
  return Object.fromEntries(
    pods.map((pod) => [
      pod.metadata.name,
      (pod.spec as { containers: { image: string }[] }).containers[0]!.image,
    ]),
  );
}

/**
 * A site as install leaves it, without install's steps: `installed`'s release applied to the cluster
 * and recorded as the deployed one. `plan(version)` stores a plan to that version as planUpgrade
 * would (its inputs digest over the deployed release), rendering it with `render` unless given.
 */
export async function seedSite(
  state: State,
  cluster: ClusterClient,
  render: (version: string) => ClusterObject[],
  installed: string,
  timeoutMs = 5_000,
): Promise<{
  release: Release;
  plan: (version: string, objects?: ClusterObject[], declaredGates?: DeclaredGate[]) => number;
}> {
  const objects = render(installed);
  await applyRelease(cluster, objects, { release: RELEASE, timeoutMs });
  const recorded = state.releases.record({
    bundleDigest: `sha256:${"a".repeat(64)}`,
    bundleName: RELEASE,
    version: installed,
    valuesGiven: REPLICAS,
    valuesEffective: {},
    objects,
  });
  const release = state.releases.deploy(recorded.id);
  const plan = (version: string, objects = render(version), declaredGates: DeclaredGate[] = []): number => {
    const current = state.releases.current()!;
    const inputsDigest = planInputsDigest(current, NEXT_BUNDLE, REPLICAS);
    return state.plans.create({
      fromReleaseId: current.id,
      fromVersion: current.version,
      toBundleDigest: NEXT_BUNDLE,
      toVersion: version,
      valuesGiven: REPLICAS,
      inputsDigest,
      plan: {
        path: { kind: "upgrade", from: current.version, to: version },
        from: { releaseId: current.id, version: current.version, bundleDigest: current.bundleDigest },
        to: { bundleDigest: NEXT_BUNDLE, name: RELEASE, version },
        objects: [],
        values: [],
        imagesAdded: [],
        bytesToImport: 0,
        freeBytes: 0,
        inputsDigest,
        declaredGates,
        release: { valuesEffective: {}, objects },
      },
    }).id;
  };
  return { release, plan };
}
