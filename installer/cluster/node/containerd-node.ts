import { mkdir, readdir, readFile, rm, rmdir } from "node:fs/promises";
import { join } from "node:path";
import type { ClusterObject } from "../client.js";
import type { ClusterNode, NodeReport, PodContext } from "../node-api.js";
import { KUBELET_BACKOFF, type BackoffOptions } from "./backoff.js";
import type { NodeEvent } from "./container-worker.js";
import { Ctr } from "./ctr.js";
import { createClusterHosts, type ClusterHosts } from "./hosts.js";
import { pullImage, type PulledImage } from "./images.js";
import { createPodNetwork, newRunPrefix, type PodNetwork } from "./network.js";
import { PodWorker } from "./pod-worker.js";
import { pullCredentials } from "./registries.js";
import { NodeRegistries } from "./node-registries.js";
import { ContainerRuntime } from "./runtime.js";

export interface ContainerdNodeOptions {
  /** containerd's gRPC socket. */
  containerdSocket: string;
  /** The node's own directory (hosts.toml files, pod volumes, claims, rootfs mounts, fifos, runc state); removed at close. */
  dir: string;
  /** k3s's registries.yaml, as the installer writes it for the site; or else `registriesFile`. */
  registriesYaml?: string | undefined;
  /**
   * The registries.yaml file itself, read as k3s's agent reads it: before the first pull (it may not
   * exist when the node starts) and again whenever it changed; with `hostRoot`, it and the files it
   * names (ca_file, cert_file, key_file) are taken under that root, the `/` of the host the node is.
   */
  registriesFile?: string | undefined;
  hostRoot?: string | undefined;
  /** Names everything the node creates; by default a fresh `al` + 4 hex digits. */
  prefix?: string | undefined;
  subnet?: string | undefined;
  /** Bound on one image pull; default 60 s. */
  pullTimeoutMs?: number | undefined;
  /** Pull and crash back-off; kubelet's 10 s doubling to 5 min by default. */
  backoff?: BackoffOptions | undefined;
  /** Told how long each container's pull, create and start-to-Ready took (benchmarks). */
  onEvent?: ((event: NodeEvent) => void) | undefined;
}

/** What the node still holds of its own: empty after close. */
export interface NodeLeftovers {
  containers: string[];
  tasks: string[];
  snapshots: string[];
  images: string[];
  leases: string[];
  mounts: string[];
  cgroups: string[];
}

const CGROUP_ROOT = "/sys/fs/cgroup";

/**
 * A node for MemoryCluster that runs its pods as k3s's kubelet and embedded containerd would: images
 * pulled by containerd through hosts.toml files made from registries.yaml, containers under runc
 * with the pod's volumes and security context, one network namespace and address per pod. A test
 * double (tests, the demo): no customer-side command uses it. Everything it makes lives in the
 * containerd namespace, network names, cgroup and directory of its prefix, and goes at close.
 */
export class ContainerdNode implements ClusterNode {
  private readonly pods = new Map<string, PodWorker>();
  private readonly images = new Map<string, Promise<PulledImage>>();
  private readonly ctr: Ctr;

  private constructor(
    readonly prefix: string,
    readonly network: PodNetwork,
    private readonly hosts: ClusterHosts,
    private readonly options: ContainerdNodeOptions,
    /** containerd's version, as a kubelet reports it: `containerd://1.6.20`. */
    private readonly runtimeVersion: string,
    private readonly registries: NodeRegistries,
  ) {
    this.ctr = new Ctr(options.containerdSocket, prefix);
  }

  static async create(options: ContainerdNodeOptions): Promise<ContainerdNode> {
    const prefix = options.prefix ?? newRunPrefix();
    for (const sub of ["certs.d", "pods", "claims", "logs", "hosts", "fifo", "runc"]) {
      await mkdir(join(options.dir, sub), { recursive: true });
    }
    const registries = new NodeRegistries(join(options.dir, "certs.d"), options);
    // Given as text, it is checked (and its hosts.toml files written) before the node exists.
    if (options.registriesYaml !== undefined) await registries.current();
    const network = await createPodNetwork({
      prefix,
      ...(options.subnet === undefined ? {} : { subnet: options.subnet }),
    });
    const version = await new Ctr(options.containerdSocket, prefix).attempt(["version"], 10_000);
    const server = version instanceof Error ? null : /Server:\s*\n\s*Version:\s*(\S+)/.exec(version.stdout);
    return new ContainerdNode(
      prefix,
      network,
      createClusterHosts(join(options.dir, "hosts")),
      { ...options, prefix },
      `containerd://${server?.[1] ?? "unknown"}`,
      registries,
    );
  }

  /** The Node object's addresses (the bridge's gateway, the node's side of the pod network) and runtime. */
  nodeReport(): NodeReport {
    return {
      addresses: [{ type: "InternalIP", address: this.network.gateway }],
      nodeInfo: { containerRuntimeVersion: this.runtimeVersion },
    };
  }

  setServiceNames(names: ReadonlyMap<string, readonly string[]>): void {
    this.hosts.setServices(names);
  }

  /**
   * The addresses a cluster DNS name (a pod's `<pod>.<headless>.<ns>.svc[.cluster.local]`, a
   * Service's `<svc>.<ns>.svc[.cluster.local]`) has in the pods' hosts files now, so that a process
   * on the host reaches what the pods reach by that name; none for a name the cluster does not know.
   */
  resolve(name: string): string[] {
    return this.hosts.resolve(name);
  }

  /** The hosts file bind-mounted as the pod's /etc/hosts, while the pod runs. */
  hostsFileOf(namespace: string, pod: string): string | undefined {
    return this.hosts.pathOf(`${namespace}/${pod}`);
  }

  private get runtime(): ContainerRuntime {
    return new ContainerRuntime(this.ctr, {
      fifo: join(this.options.dir, "fifo"),
      runcRoot: join(this.options.dir, "runc"),
    });
  }

  /** One pull per image at a time, shared by the pods that need it; a failed one is tried afresh next time. */
  private pull(image: string): Promise<PulledImage> {
    let pulling = this.images.get(image);
    if (pulling === undefined) {
      pulling = this.registries.current().then((registries) =>
        pullImage(this.ctr, image, {
          hostsDir: this.registries.hostsDir,
          credentials: pullCredentials(registries, image),
          timeoutMs: this.options.pullTimeoutMs ?? 60_000,
        }),
      );
      this.images.set(image, pulling);
      pulling.catch(() => this.images.delete(image));
    }
    return pulling;
  }

  runPod(pod: ClusterObject, context: PodContext): void {
    const worker = new PodWorker(
      {
        runtime: this.runtime,
        pull: (image) => this.pull(image),
        backoff: this.options.backoff ?? KUBELET_BACKOFF,
        cgroupParent: `/${this.prefix}`,
        prefix: this.prefix,
        network: this.network,
        hosts: this.hosts,
        podsDir: join(this.options.dir, "pods"),
        claimsDir: join(this.options.dir, "claims"),
        logsDir: join(this.options.dir, "logs"),
        onEvent: this.options.onEvent,
      },
      pod,
      context,
    );
    this.pods.set(pod.metadata.uid!, worker);
    worker.start();
  }

  async stopPod(pod: ClusterObject, graceSeconds: number): Promise<void> {
    const worker = this.pods.get(pod.metadata.uid!);
    if (worker === undefined) return;
    await worker.stop(graceSeconds).catch(() => undefined);
    this.pods.delete(pod.metadata.uid!);
  }

  /** Stops every pod at once (no grace), removes leases, images, the network, cgroups and directory. */
  async close(): Promise<void> {
    await Promise.all(
      [...this.pods.keys()].map((uid) =>
        this.pods
          .get(uid)!
          .stop(0)
          .catch(() => undefined),
      ),
    );
    this.pods.clear();
    // A pull cut at its bound can leave its lease (and what it holds) behind: leases go first.
    for (const lease of await this.list(["leases", "ls", "-q"])) {
      await this.ctr.attempt(["leases", "rm", "--sync", lease]);
    }
    for (const image of await this.list(["images", "ls", "-q"])) {
      await this.ctr.attempt(["images", "rm", "--sync", image]);
    }
    await this.network.close();
    for (const cgroup of await this.cgroups()) await rmdir(cgroup).catch(() => undefined);
    await rm(this.options.dir, { recursive: true, force: true });
    // The namespace itself goes once containerd's collector has removed the images' content.
    await this.ctr.attempt(["namespaces", "rm", this.prefix]);
  }

  private async list(args: string[]): Promise<string[]> {
    const result = await this.ctr.attempt(args);
    if (result instanceof Error) return [];
    return result.stdout
      .split("\n")
      .map((line) => line.trim())
      .filter((line) => line !== "");
  }

  private async cgroups(): Promise<string[]> {
    const hierarchies = await readdir(CGROUP_ROOT).catch(() => [] as string[]);
    const found: string[] = [];
    for (const hierarchy of hierarchies) {
      const path = join(CGROUP_ROOT, hierarchy, this.prefix);
      if ((await readdir(path).catch(() => undefined)) !== undefined) found.push(path);
    }
    return found;
  }

  /** What a pod's container wrote, over all its restarts and its pods of that name, until close. */
  async logs(namespace: string, pod: string, container: string): Promise<string> {
    return readFile(join(this.options.dir, "logs", `${namespace}_${pod}`, `${container}.log`), "utf8").catch(
      () => "",
    );
  }

  /** What of the node's is still there: containers, tasks, snapshots, images, mounts under its directory, cgroups. */
  async leftovers(): Promise<NodeLeftovers> {
    const mountInfo = await readFile("/proc/self/mountinfo", "utf8");
    const mounts = mountInfo
      .split("\n")
      .map((line) => line.split(" ")[4] ?? "")
      .filter((point) => point.startsWith(`${this.options.dir}/`));
    return {
      containers: await this.list(["containers", "ls", "-q"]),
      tasks: (await this.list(["tasks", "ls"])).slice(1),
      snapshots: (await this.list(["snapshots", "ls"])).slice(1),
      images: await this.list(["images", "ls", "-q"]),
      leases: await this.list(["leases", "ls", "-q"]),
      mounts,
      cgroups: await this.cgroups(),
    };
  }
}

export function createContainerdNode(options: ContainerdNodeOptions): Promise<ContainerdNode> {
  return ContainerdNode.create(options);
}
