import { mkdir, rm } from "node:fs/promises";
import { join } from "node:path";
import type { ClusterObject } from "../client.js";
import type { ContainerStatus, PodCondition, PodContext, PodStatus } from "../node-api.js";
import { backoffDelay, pause } from "./backoff.js";
import { ContainerWorker, type ContainerContext } from "./container-worker.js";
import { ContainerConfigError } from "./env.js";
import type { ClusterHosts } from "./hosts.js";
import type { PodAddress, PodNetwork } from "./network.js";
import type { PodSpec } from "./pod-spec.js";
import { prepareVolumes, type HostVolume } from "./volumes.js";

/** What the pods of one node share. */
export interface PodServices extends Pick<
  ContainerContext,
  "runtime" | "pull" | "backoff" | "cgroupParent" | "onEvent"
> {
  prefix: string;
  network: PodNetwork;
  hosts: ClusterHosts;
  podsDir: string;
  claimsDir: string;
  logsDir: string;
}

/**
 * One pod on the node: its network namespace and address, its names in every pod's /etc/hosts, its
 * volumes, and a worker per container; its status reported whenever one of them changes.
 */
export class PodWorker {
  private readonly key: string;
  private readonly spec: PodSpec;
  private readonly names: string[];
  private address: PodAddress | undefined;
  private workers: ContainerWorker[] = [];
  private setup: Promise<void> = Promise.resolve();
  private readonly stopping = new AbortController();
  private readonly startTime = new Date().toISOString();
  private configError: string | undefined;

  constructor(
    private readonly services: PodServices,
    private readonly pod: ClusterObject,
    private readonly context: PodContext,
  ) {
    this.key = `${pod.metadata.namespace}/${pod.metadata.name}`;
    this.spec = pod.spec as PodSpec;
    const hostname = this.spec.hostname ?? pod.metadata.name;
    const base = `${hostname}.${this.spec.subdomain}.${pod.metadata.namespace}.svc`;
    this.names = this.spec.subdomain === undefined ? [] : [`${base}.cluster.local`, base];
  }

  private get podDir(): string {
    return join(
      this.services.podsDir,
      `${this.pod.metadata.namespace}_${this.pod.metadata.name}_${this.pod.metadata.uid}`,
    );
  }

  start(): void {
    this.setup = this.prepare().catch((error: unknown) => {
      this.configError = (error as Error).message;
      this.report();
    });
  }

  private async prepare(): Promise<void> {
    const { network, hosts } = this.services;
    const hostname = this.spec.hostname ?? this.pod.metadata.name;
    this.address = await network.attach(this.key, hostname);
    for (const name of this.names) hosts.set(name, this.address.ip);
    const hostsFile = await hosts.hostsFileFor(this.key, this.names[0] ?? hostname, this.address.ip);
    await mkdir(this.podDir, { recursive: true });
    const volumes = await this.volumesWithBackoff();
    if (volumes === undefined || this.stopping.signal.aborted) return;
    const context: ContainerContext = {
      ...this.services,
      idBase: `${this.services.prefix}-${this.pod.metadata.name}-${this.pod.metadata.uid!.slice(0, 8)}`,
      pod: {
        name: this.pod.metadata.name,
        namespace: this.pod.metadata.namespace!,
        uid: this.pod.metadata.uid!,
        spec: this.spec,
        context: this.context,
      },
      podDir: this.podDir,
      logsDir: join(this.services.logsDir, `${this.pod.metadata.namespace}_${this.pod.metadata.name}`),
      ip: this.address.ip,
      hostname,
      netnsPath: this.address.netnsPath,
      hostsFile,
      volumes,
      onChange: () => this.report(),
    };
    this.workers = this.spec.containers.map((container) => new ContainerWorker(context, container));
    for (const worker of this.workers) worker.start();
    this.report();
  }

  /** The volumes, once the ConfigMaps and Secrets they need exist (kubelet retries as this does). */
  private async volumesWithBackoff(): Promise<Map<string, HostVolume> | undefined> {
    for (let failures = 0; !this.stopping.signal.aborted; failures++) {
      try {
        const volumes = await prepareVolumes(
          this.spec,
          this.pod.metadata.namespace!,
          this.podDir,
          this.services.claimsDir,
          this.context,
        );
        this.configError = undefined;
        return volumes;
      } catch (error) {
        if (!(error instanceof ContainerConfigError)) throw error;
        this.configError = error.message;
        this.report();
        await pause(backoffDelay(this.services.backoff, failures), this.stopping.signal);
      }
    }
    return undefined;
  }

  /** Ready once every container is; otherwise which are not and what their probes said, as kubelet words it. */
  private readyCondition(): PodCondition {
    const unready = this.workers.filter((worker) => !worker.status.ready);
    if (this.workers.length > 0 && unready.length === 0) return { type: "Ready", status: "True" };
    const reasons = unready.flatMap((worker) => worker.readyMessage ?? []);
    const names = unready.map((worker) => worker.status.name).join(" ");
    return {
      type: "Ready",
      status: "False",
      reason: "ContainersNotReady",
      message: `containers with unready status: [${names}]${reasons.length === 0 ? "" : `: ${reasons.join("; ")}`}`,
    };
  }

  /** Before the workers exist: every container waits on the pod's setup, or on its configuration. */
  private waitingStatuses(): ContainerStatus[] {
    const waiting =
      this.configError === undefined
        ? { reason: "ContainerCreating" }
        : { reason: "CreateContainerConfigError", message: this.configError };
    return this.spec.containers.map((container) => ({
      name: container.name,
      image: container.image,
      ready: false,
      started: false,
      restartCount: 0,
      state: { waiting },
      lastState: {},
    }));
  }

  /** Pending, Running, or once every container has run to its end without restart (a Job's), Succeeded or Failed. */
  private phase(statuses: ContainerStatus[]): PodStatus["phase"] {
    const ended = statuses.map((status) => status.state.terminated);
    if (statuses.length > 0 && !this.stopping.signal.aborted && ended.every((end) => end !== undefined)) {
      return ended.every((end) => end.exitCode === 0) ? "Succeeded" : "Failed";
    }
    const running = statuses.some((s) => s.state.running !== undefined || s.restartCount > 0);
    return running ? "Running" : "Pending";
  }

  private report(): void {
    const statuses = this.workers.map((worker) => worker.status);
    this.context.report({
      phase: this.phase(statuses),
      conditions: [this.readyCondition()],
      containerStatuses: this.workers.length > 0 ? structuredClone(statuses) : this.waitingStatuses(),
      ...(this.address === undefined ? {} : { podIP: this.address.ip }),
      startTime: this.startTime,
    });
  }

  /** Stops every container within the grace period, then gives back the pod's names, address and files. */
  async stop(graceSeconds: number): Promise<void> {
    this.stopping.abort();
    await this.setup;
    await Promise.all(this.workers.map((worker) => worker.stop(graceSeconds * 1000)));
    const { network, hosts } = this.services;
    for (const name of this.names) hosts.set(name, undefined);
    await hosts.release(this.key);
    await network.detach(this.key);
    await rm(this.podDir, { recursive: true, force: true });
  }
}
