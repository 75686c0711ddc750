import { arch } from "node:os";
import { AirlockError } from "../../../registry/oci/index.js";
import { ctrMessage, type Ctr } from "./ctr.js";

/** What the runtime takes from an image's config, as `docker inspect` shows it. */
export interface ImageConfig {
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Env?: string[] | null;
  User?: string;
  WorkingDir?: string;
}

export interface PulledImage {
  ref: string;
  /** The snapshot chain ID of its unpacked layers: the parent of each container's rootfs snapshot. */
  chainId: string;
  config: ImageConfig;
}

export interface PullOptions {
  hostsDir: string;
  /** `user:password`, from registries.yaml's configs. */
  credentials?: string | undefined;
  timeoutMs: number;
}

/** A pull that failed: containerd's message, for the pod's ErrImagePull. */
export class ImagePullError extends AirlockError {
  constructor(image: string, message: string, cause: unknown) {
    super("NODE_IMAGE_PULL_FAILED", message, {
      where: image,
      hint: "check registries.yaml: the mirror endpoint, its CA file (configs.<host>.tls.ca_file) and the pull account",
      cause,
    });
    this.name = "ImagePullError";
  }
}

const PLATFORM_ARCH: Record<string, string> = { x64: "amd64", arm64: "arm64" };

/** Pulls `image` through the hosts directory (and only it), unpacks it, and reads its config. */
export async function pullImage(ctr: Ctr, image: string, options: PullOptions): Promise<PulledImage> {
  let output: string;
  try {
    const args = ["images", "pull", "--hosts-dir", options.hostsDir, "--print-chainid"];
    if (options.credentials !== undefined) args.push("--user", options.credentials);
    output = (await ctr.run([...args, image], options.timeoutMs)).stdout;
  } catch (error) {
    throw new ImagePullError(
      image,
      `failed to pull and unpack image "${image}": ${ctrMessage(error)}`,
      error,
    );
  }
  const chainId = /chain ID: (sha256:[0-9a-f]{64})/.exec(output)?.[1];
  if (chainId === undefined) {
    throw new ImagePullError(image, `ctr images pull printed no chain ID for ${image}`, undefined);
  }
  return { ref: image, chainId, config: await imageConfig(ctr, image) };
}

async function contentJson(ctr: Ctr, digest: string): Promise<Record<string, unknown>> {
  return JSON.parse((await ctr.run(["content", "get", digest])).stdout) as Record<string, unknown>;
}

async function imageConfig(ctr: Ctr, image: string): Promise<ImageConfig> {
  const listing = (await ctr.run(["images", "ls"])).stdout.split("\n");
  const digest = listing.find((line) => line.startsWith(`${image} `))?.split(/\s+/)[2];
  if (digest === undefined)
    throw new ImagePullError(image, `${image} is not listed after its pull`, undefined);
  let manifest = await contentJson(ctr, digest);
  if (Array.isArray(manifest.manifests)) {
    const wanted = PLATFORM_ARCH[arch()] ?? arch();
    const entry = (
      manifest.manifests as { digest: string; platform?: { os?: string; architecture?: string } }[]
    ).find((candidate) => candidate.platform?.os === "linux" && candidate.platform.architecture === wanted);
    if (entry === undefined)
      throw new ImagePullError(image, `${image} has no linux/${wanted} image`, undefined);
    manifest = await contentJson(ctr, entry.digest);
  }
  const config = await contentJson(ctr, (manifest.config as { digest: string }).digest);
  return config.config ?? {};
}
