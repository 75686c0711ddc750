import { existsSync } from "node:fs";
import { readFile, statfs } from "node:fs/promises";
import { join, resolve } from "node:path";
import { BROKER, NAMESPACE } from "../../manifests/index.js";
import { AirlockError } from "../../registry/oci/index.js";
import { KubeClusterClient, rolledOut, type ClusterClient, type ClusterObject } from "../cluster/index.js";
import { listCertificates, openPki } from "../pki/index.js";
import {
  openState,
  resumeDecision,
  STATE_FILE,
  type ResumeDecision,
  type State,
  type StateEvent,
} from "../state/index.js";
import { missingRoutes, readBrokerRoutes, type BrokerRoutes } from "./broker-routes.js";
import { localAddress } from "./registry-address.js";
import { probeRegistry, registryAccessOf, registryGet, type RegistryDetail } from "./registry-service.js";
import { installedDetails } from "./site-access.js";
import { BROKER_REF } from "./steps-plane.js";

const EVENTS_SHOWN = 10;
const LOW_DISK_BYTES = 1024 ** 3;

export interface PodHealth {
  name: string;
  phase: string;
  ready: boolean;
  restarts: number;
  /** Why a container waits (ImagePullBackOff, CrashLoopBackOff), when one does. */
  waiting: string | undefined;
  /** The broker's cluster routes from its /routez, peers by pod name; unreachable where this host cannot ask it. */
  routes: BrokerRoutes;
}

export interface SiteStatus {
  healthy: boolean;
  /** What keeps the site from being healthy, one line each. */
  problems: string[];
  dataDir: string;
  release: { id: number; bundle: string; version: string; digest: string; deployedAt: string } | null;
  install: { id: number; state: string } | null;
  plane: {
    kubeconfig: string;
    reachable: boolean;
    msgbroker: {
      ready: number;
      desired: number;
      currentRevision: string | null;
      updateRevision: string | null;
      rolledOut: boolean;
    } | null;
    pods: PodHealth[];
  } | null;
  /** Repositories are what the registry's catalog lists (null when it cannot be read). */
  registry: {
    url: string;
    unit: string;
    answering: boolean;
    detail: string;
    repositories: string[] | null;
  } | null;
  disk: { freeBytes: number; totalBytes: number };
  certificates: { name: string; status: string; daysLeft: number; notAfter: string }[];
  /** An upgrade run not finished: in flight (its process holds the writer lock) or interrupted. */
  upgrade: {
    run: number;
    plan: number;
    kind: string;
    step: string | null;
    partition: number | null;
    /** The live process running it; null when that process is gone and the run was interrupted. */
    runningIn: number | null;
    /** What `airlock upgrade run --resume` (or airlock serve on start) will do with it. */
    next: ResumeDecision;
  } | null;
  events: StateEvent[];
}

function podHealth(pod: ClusterObject, routes: BrokerRoutes | undefined): PodHealth {
  const statuses = (pod.status?.containerStatuses ?? []) as {
    ready?: boolean;
    restartCount?: number;
    state?: { waiting?: { reason?: string } };
  }[];
  const conditions = (pod.status?.conditions ?? []) as { type: string; status: string }[];
  return {
    name: pod.metadata.name,
    phase: (pod.status?.phase as string | undefined) ?? "Unknown",
    ready: conditions.some((condition) => condition.type === "Ready" && condition.status === "True"),
    restarts: statuses.reduce((sum, container) => sum + (container.restartCount ?? 0), 0),
    waiting: statuses
      .map((container) => container.state?.waiting?.reason)
      .find((reason) => reason !== undefined),
    routes: routes ?? { reachable: false, detail: "not asked" },
  };
}

async function planeStatus(
  kubeconfig: string,
  client: ClusterClient,
  problems: string[],
): Promise<SiteStatus["plane"]> {
  try {
    const broker = await client.get(BROKER_REF);
    const pods = (await client.list("v1", "Pod", { namespace: NAMESPACE })).filter((pod) =>
      pod.metadata.name.startsWith(`${BROKER}-`),
    );
    const routes = await readBrokerRoutes(pods);
    const health = pods.map((pod) => podHealth(pod, routes.get(pod.metadata.name)));
    if (broker === undefined) problems.push(`StatefulSet ${NAMESPACE}/${BROKER} is not in the cluster`);
    const status = broker?.status ?? {};
    const msgbroker =
      broker === undefined
        ? null
        : {
            ready: (status.readyReplicas as number | undefined) ?? 0,
            desired: (broker.spec as { replicas?: number } | undefined)?.replicas ?? 1,
            currentRevision: (status.currentRevision as string | undefined) ?? null,
            updateRevision: (status.updateRevision as string | undefined) ?? null,
            rolledOut: rolledOut(broker),
          };
    if (msgbroker !== null && !msgbroker.rolledOut) {
      problems.push(
        `${BROKER}: ${msgbroker.ready} of ${msgbroker.desired} ready, revision ${msgbroker.currentRevision} → ${msgbroker.updateRevision}`,
      );
    }
    for (const pod of health.filter((pod) => !pod.ready)) {
      problems.push(`pod ${pod.name} is not ready (${pod.waiting ?? pod.phase})`);
    }
    problems.push(
      ...missingRoutes(
        health.filter((pod) => pod.ready).map((pod) => pod.name),
        routes,
      ),
    );
    return { kubeconfig, reachable: true, msgbroker, pods: health };
  } catch (error) {
    problems.push(`the cluster does not answer: ${(error as Error).message}`);
    return { kubeconfig, reachable: false, msgbroker: null, pods: [] };
  }
}

async function registryStatus(detail: RegistryDetail, problems: string[]): Promise<SiteStatus["registry"]> {
  const access = await registryAccessOf(detail).catch(() => undefined);
  const address = localAddress(detail.listen);
  const caPem = access === undefined ? "" : await readFile(access.caFile, "utf8");
  const answer =
    access === undefined
      ? new Error("the pull account's password file is gone")
      : await probeRegistry(address, caPem, access);
  const answering = answer === 200;
  const text = answer instanceof Error ? answer.message : `HTTP ${answer} to /v2/`;
  if (!answering) problems.push(`the registry at ${detail.url} does not answer: ${text}`);
  const catalog = answering ? await registryGet(address, "/v2/_catalog?n=1000", caPem, access!) : undefined;
  const repositories =
    catalog === undefined || catalog instanceof Error || catalog.status !== 200
      ? null
      : ((JSON.parse(catalog.body) as { repositories?: string[] }).repositories ?? []);
  return { url: detail.url, unit: detail.unit, answering, detail: text, repositories };
}

/** Free and total bytes of the data dir's file system, which holds the store. */
async function diskOf(dataDir: string, problems: string[]): Promise<SiteStatus["disk"]> {
  const stats = await statfs(dataDir);
  const disk = { freeBytes: stats.bavail * stats.bsize, totalBytes: stats.blocks * stats.bsize };
  if (disk.freeBytes < LOW_DISK_BYTES) problems.push(`the data dir's file system has under 1 GiB free`);
  return disk;
}

function unfinishedUpgrade(state: State, problems: string[]): SiteStatus["upgrade"] {
  const run = state.runs.unfinished()[0];
  if (run === undefined) return null;
  const holder = state.lockHolder();
  const next = resumeDecision(run);
  const at = `${run.currentStep ?? "its start"}${run.partition === undefined ? "" : `, partition ${run.partition}`}`;
  problems.push(
    holder === undefined
      ? `upgrade run ${run.id} was interrupted at ${at}: \`airlock upgrade run --resume\` (or airlock serve on start) takes it up: ${next.why}`
      : `upgrade run ${run.id} is running (process ${holder.pid}, ${holder.command}), at ${at}`,
  );
  return {
    run: run.id,
    plan: run.planId,
    kind: run.kind,
    step: run.currentStep ?? null,
    partition: run.partition ?? null,
    runningIn: holder?.pid ?? null,
    next,
  };
}

/**
 * What the site runs and whether it is healthy: the current release, the plane in the cluster,
 * the registry, the certificates and the last events. Reads only; healthy when nothing is amiss.
 */
export async function readSiteStatus(options: {
  dataDir: string;
  connect?: (kubeconfig: string) => ClusterClient;
}): Promise<SiteStatus> {
  const dataDir = resolve(options.dataDir);
  if (!existsSync(join(dataDir, STATE_FILE))) {
    throw new AirlockError("NOT_INSTALLED", `nothing is installed in ${dataDir}`, {
      where: dataDir,
      hint: "install with `airlock install --bundle FILE`, or pass the --data-dir of an installed site",
    });
  }
  const state = openState(dataDir, { actor: "cli" });
  try {
    const problems: string[] = [];
    const current = state.releases.current();
    const latest = state.installs.latest();
    if (current === undefined) problems.push("no release is deployed");
    const { cluster, registry } = installedDetails(state);
    const connect =
      options.connect ??
      ((kubeconfig: string) => KubeClusterClient.fromKubeconfig(kubeconfig, { requestTimeoutMs: 10_000 }));
    const plane =
      cluster === undefined
        ? null
        : await planeStatus(cluster.kubeconfig, connect(cluster.kubeconfig), problems);
    const registryHealth = registry === undefined ? null : await registryStatus(registry, problems);
    const certificates = (await listCertificates(openPki(dataDir))).map((certificate) => ({
      name: certificate.name,
      status: certificate.status,
      daysLeft: certificate.daysLeft,
      notAfter: certificate.notAfter,
    }));
    for (const certificate of certificates.filter((certificate) => certificate.status !== "ok")) {
      problems.push(
        `certificate ${certificate.name} is ${certificate.status} (${certificate.daysLeft} days left)`,
      );
    }
    const disk = await diskOf(dataDir, problems);
    const upgrade = unfinishedUpgrade(state, problems);
    return {
      healthy: problems.length === 0,
      problems,
      dataDir,
      release:
        current === undefined
          ? null
          : {
              id: current.id,
              bundle: current.bundleName,
              version: current.version,
              digest: current.bundleDigest,
              deployedAt: current.updatedAt,
            },
      install: latest === undefined ? null : { id: latest.id, state: latest.state },
      plane,
      registry: registryHealth,
      disk,
      certificates,
      upgrade,
      events: state.events.list({ newestFirst: true, limit: EVENTS_SHOWN }),
    };
  } finally {
    state.close();
  }
}
