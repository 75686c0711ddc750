import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { PodContext, ContainerState, ContainerStatus } from "../node-api.js";
import { backoffDelay, pause, type BackoffOptions } from "./backoff.js";
import { containerArgs, containerEnv, ContainerConfigError } from "./env.js";
import type { PulledImage } from "./images.js";
import type { Container, PodSpec } from "./pod-spec.js";
import { runProbes } from "./probe-loop.js";
import type { ContainerRuntime, RunningTask } from "./runtime.js";
import { capabilitiesOf, containerSpec, type BindMount } from "./spec.js";
import type { HostVolume } from "./volumes.js";

/** What a container's worker needs of its node and pod. */
export interface ContainerContext {
  runtime: ContainerRuntime;
  pull(image: string): Promise<PulledImage>;
  backoff: BackoffOptions;
  /** Base of the container's ids and snapshot key: `<prefix>-<pod>-<uid>`, unique in the run. */
  idBase: string;
  cgroupParent: string;
  pod: { name: string; namespace: string; uid: string; spec: PodSpec; context: PodContext };
  podDir: string;
  /** Where the containers' output goes, one file per container, kept after the pod (as kubelet's /var/log/pods). */
  logsDir: string;
  ip: string;
  hostname: string;
  netnsPath: string;
  hostsFile: string;
  volumes: Map<string, HostVolume>;
  onChange(): void;
  onEvent?: ((event: NodeEvent) => void) | undefined;
}

/** A step of a container's start and how long it took, for benchmarks. */
export interface NodeEvent {
  pod: string;
  container: string;
  /** pull: the image pull (shared by pods pulling the same image); create: rootfs snapshot, mount and spec; ready: from `ctr run` to Ready. */
  step: "pull" | "create" | "ready";
  ms: number;
}

/** Kubelet resets a crash back-off once a container has run this long. */
const BACKOFF_RESET_MS = 600_000;
const TERMINATION_MESSAGE_BYTES = 2048;
const MINIMUM_GRACE_MS = 2_000;

/**
 * One container of a pod through kubelet's life cycle: pull (ErrImagePull, then ImagePullBackOff),
 * create and start, probes, restart with CrashLoopBackOff as the pod's restartPolicy asks, and stop
 * (preStop, SIGTERM, grace, SIGKILL).
 */
export class ContainerWorker {
  readonly status: ContainerStatus;
  readyMessage: string | undefined;
  private task: RunningTask | undefined;
  private readonly stopping = new AbortController();
  private loop: Promise<void> = Promise.resolve();
  private readonly snapshotKey: string;
  private readonly rootfs: string;
  private rootfsMounted = false;

  constructor(
    private readonly ctx: ContainerContext,
    private readonly container: Container,
  ) {
    this.status = {
      name: container.name,
      image: container.image,
      ready: false,
      started: false,
      restartCount: 0,
      state: { waiting: { reason: "ContainerCreating" } },
      lastState: {},
    };
    this.snapshotKey = `${ctx.idBase}-${container.name}`;
    this.rootfs = join(ctx.podDir, "rootfs", container.name);
  }

  start(): void {
    this.loop = this.run().catch((error: unknown) => {
      this.setState({ waiting: { reason: "RunContainerError", message: (error as Error).message } });
    });
  }

  private setState(state: ContainerState, ready = false): void {
    this.status.state = state;
    this.status.ready = ready;
    this.status.started = state.running !== undefined;
    this.ctx.onChange();
  }

  private emit(step: NodeEvent["step"], since: number): void {
    this.ctx.onEvent?.({
      pod: this.ctx.pod.name,
      container: this.container.name,
      step,
      ms: Date.now() - since,
    });
  }

  private async run(): Promise<void> {
    const pulling = Date.now();
    const image = await this.pullWithBackoff();
    if (image === undefined) return;
    this.emit("pull", pulling);
    const creating = Date.now();
    // Set first: a mount that fails after its snapshot was prepared still has that snapshot removed.
    this.rootfsMounted = true;
    await this.ctx.runtime.mountRootfs(this.snapshotKey, image.chainId, this.rootfs);
    let crashes = 0;
    for (let attempt = 0; !this.stopping.signal.aborted; attempt++) {
      const specPath = await this.writeSpec(image, attempt).catch((error: unknown) => {
        if (!(error instanceof ContainerConfigError)) throw error;
        this.setState({ waiting: { reason: "CreateContainerConfigError", message: error.message } });
        return undefined;
      });
      if (specPath === undefined) {
        await pause(backoffDelay(this.ctx.backoff, crashes++), this.stopping.signal);
        continue;
      }
      if (this.stopping.signal.aborted) return;
      if (attempt === 0) this.emit("create", creating);
      const started = Date.now();
      const { exitCode, output } = await this.runTask(`${this.snapshotKey}-${attempt}`, specPath);
      const terminated = {
        exitCode,
        reason: exitCode === 0 ? "Completed" : "Error",
        // terminationMessagePolicy FallbackToLogsOnError: the end of the log of a failed container.
        ...(exitCode === 0 || output.trim() === ""
          ? {}
          : { message: output.trim().slice(-TERMINATION_MESSAGE_BYTES) }),
        startedAt: new Date(started).toISOString(),
        finishedAt: new Date().toISOString(),
      };
      if (this.stopping.signal.aborted) return this.setState({ terminated });
      // A Job's container: done once it exited (Never) or exited 0 (OnFailure); kubelet restarts it otherwise.
      const policy = this.ctx.pod.spec.restartPolicy ?? "Always";
      if (policy === "Never" || (policy === "OnFailure" && exitCode === 0)) {
        return this.setState({ terminated });
      }
      if (Date.now() - started > BACKOFF_RESET_MS) crashes = 0;
      const delay = backoffDelay(this.ctx.backoff, crashes++);
      this.status.restartCount++;
      this.status.lastState = { terminated };
      this.setState({
        waiting: {
          reason: "CrashLoopBackOff",
          message: `back-off ${Math.round(delay / 1000)}s restarting failed container=${this.container.name} pod=${this.ctx.pod.name}: exit code ${exitCode}`,
        },
      });
      await pause(delay, this.stopping.signal);
    }
  }

  /** The pulled image, after as many failed pulls (each ErrImagePull, then ImagePullBackOff) as it takes. */
  private async pullWithBackoff(): Promise<PulledImage | undefined> {
    const image = this.container.image;
    for (let failures = 0; !this.stopping.signal.aborted; failures++) {
      try {
        return await this.ctx.pull(image);
      } catch (error) {
        const message = (error as Error).message;
        const delay = backoffDelay(this.ctx.backoff, failures);
        // kubelet shows the pull's error until its next sync, then the back-off, with the same cause.
        this.setState({ waiting: { reason: "ErrImagePull", message } });
        await pause(Math.min(delay / 2, 2_000), this.stopping.signal);
        if (this.stopping.signal.aborted) return undefined;
        this.setState({
          waiting: { reason: "ImagePullBackOff", message: `Back-off pulling image "${image}": ${message}` },
        });
        await pause(delay - Math.min(delay / 2, 2_000), this.stopping.signal);
      }
    }
    return undefined;
  }

  private async runTask(id: string, specPath: string): Promise<{ exitCode: number; output: string }> {
    const task = await this.ctx.runtime.start(
      id,
      specPath,
      join(this.ctx.logsDir, `${this.container.name}.log`),
    );
    this.task = task;
    this.readyMessage = undefined;
    this.setState({ running: { startedAt: new Date().toISOString() } });
    const spawned = Date.now();
    let wasReady = false;
    const probing = new AbortController();
    const probes = runProbes(this.container, this.ctx.ip, probing.signal, {
      onReady: (ready, message) => {
        if (ready === this.status.ready && message === this.readyMessage) return;
        this.readyMessage = message;
        if (ready && !wasReady && this.status.restartCount === 0) this.emit("ready", spawned);
        wasReady ||= ready;
        if (this.status.state.running !== undefined) this.setState(this.status.state, ready);
      },
      onUnhealthy: (message) => {
        this.readyMessage = message;
        void this.terminate(task, this.graceMs());
      },
    });
    const exitCode = await task.exited;
    probing.abort();
    await probes;
    await this.ctx.runtime.remove(id);
    this.task = undefined;
    return { exitCode, output: task.output() };
  }

  private graceMs(): number {
    return (this.ctx.pod.spec.terminationGracePeriodSeconds ?? 30) * 1000;
  }

  /** SIGTERM, up to `graceMs` for the task to exit, then SIGKILL. */
  private async terminate(task: RunningTask, graceMs: number): Promise<void> {
    await this.ctx.runtime.kill(task.id, "SIGTERM");
    if (!(await exitsWithin(task, graceMs))) {
      await this.ctx.runtime.kill(task.id, "SIGKILL");
      await exitsWithin(task, 15_000);
    }
  }

  /** Stops the container as a deleted pod's: preStop hook, SIGTERM, the grace period, SIGKILL; then removes its rootfs. */
  async stop(graceMs: number): Promise<void> {
    this.stopping.abort();
    const task = this.task;
    if (task !== undefined) {
      const deadline = Date.now() + graceMs;
      const preStop = this.container.lifecycle?.preStop?.exec?.command;
      if (preStop !== undefined && graceMs > 0) {
        await this.ctx.runtime.exec(task.id, `${task.id}-prestop`, preStop, graceMs);
      }
      // As kubelet: what the hook left of the grace period, but never under 2 s, between SIGTERM and SIGKILL.
      await this.terminate(task, Math.max(MINIMUM_GRACE_MS, deadline - Date.now()));
    }
    await this.loop;
    if (this.rootfsMounted) await this.ctx.runtime.unmountRootfs(this.snapshotKey, this.rootfs);
  }

  private async writeSpec(image: PulledImage, attempt: number): Promise<string> {
    const { pod, volumes } = this.ctx;
    const env = containerEnv(this.container, image.config, { ...pod, podIP: this.ctx.ip }, pod.context);
    const security = { ...pod.spec.securityContext, ...this.container.securityContext };
    const [imageUid, imageGid] = (image.config.User ?? "").split(":").map((part) => Number(part));
    const uid = security.runAsUser ?? (Number.isInteger(imageUid) ? imageUid! : 0);
    const gid = security.runAsGroup ?? (Number.isInteger(imageGid) ? imageGid! : 0);
    if (security.runAsNonRoot === true && uid === 0) {
      throw new ContainerConfigError("container has runAsNonRoot and image will run as root");
    }
    const mounts: BindMount[] = [{ source: this.ctx.hostsFile, destination: "/etc/hosts", readOnly: true }];
    for (const mount of this.container.volumeMounts ?? []) {
      const volume = volumes.get(mount.name);
      if (volume === undefined) throw new ContainerConfigError(`volume ${mount.name} is not in the pod spec`);
      mounts.push({
        source: volume.path,
        destination: mount.mountPath,
        readOnly: volume.readOnly || mount.readOnly === true,
      });
    }
    const id = `${this.snapshotKey}-${attempt}`;
    const spec = containerSpec({
      rootfs: this.rootfs,
      readOnlyRootfs: security.readOnlyRootFilesystem === true,
      args: containerArgs(this.container, image.config, env),
      env,
      cwd: this.container.workingDir ?? (image.config.WorkingDir || "/"),
      uid,
      gid,
      additionalGids:
        pod.spec.securityContext?.fsGroup === undefined ? [] : [pod.spec.securityContext.fsGroup],
      hostname: this.ctx.hostname,
      netnsPath: this.ctx.netnsPath,
      mounts,
      capabilities: capabilitiesOf(security.capabilities?.drop, security.capabilities?.add),
      noNewPrivileges: security.allowPrivilegeEscalation !== true,
      cgroupsPath: `${this.ctx.cgroupParent}/${id}`,
    });
    const path = join(this.ctx.podDir, `${id}.json`);
    await writeFile(path, JSON.stringify(spec));
    return path;
  }
}

async function exitsWithin(task: RunningTask, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const exited = await Promise.race([
    task.exited.then(() => true),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms))),
  ]);
  clearTimeout(timer);
  return exited;
}
