import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import {
  AirlockError,
  isIndexMediaType,
  isManifestMediaType,
  type Descriptor,
  type Digest,
  type ErrorCode,
} from "../registry/oci/index.js";
import type { RegistryClient } from "../registry/client/index.js";
import type { BlobSource, ImageStore } from "./sources.js";
import type { RegistrySourceSpec, RegistrySpec } from "./spec.js";

/** Connection settings the command line gives for every registry, beside bundle.yaml's `registries:`. */
export interface RegistryOptions {
  /** docker-style auth.json for registries whose `registries:` entry names no `authFile:`. */
  authFile?: string | undefined;
  /** Hosts reached over plain HTTP, as `insecureHttp: true` would. */
  insecureRegistries?: string[] | undefined;
  /** Connections kept open to each registry: one per blob pulled at once, and some room. */
  connections?: number | undefined;
  signal?: AbortSignal | undefined;
}

/**
 * The auth.json skopeo and podman use when none is given: `$REGISTRY_AUTH_FILE`, else
 * `$XDG_RUNTIME_DIR/containers/auth.json` when it exists (where `skopeo login` writes).
 */
export function defaultAuthFile(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.REGISTRY_AUTH_FILE !== undefined && env.REGISTRY_AUTH_FILE !== "") return env.REGISTRY_AUTH_FILE;
  if (env.XDG_RUNTIME_DIR === undefined || env.XDG_RUNTIME_DIR === "") return undefined;
  const path = join(env.XDG_RUNTIME_DIR, "containers", "auth.json");
  return existsSync(path) ? path : undefined;
}

/** What to change when a registry refuses or cannot be reached, in the build's own terms. */
const BUILD_HINTS: Partial<Record<ErrorCode, (host: string) => string>> = {
  REGISTRY_AUTH_FAILED: (host) =>
    `log in with \`skopeo login ${host}\`, or give --authfile (or registries["${host}"].authFile in bundle.yaml) with credentials for ${host}`,
  REGISTRY_DENIED: (host) => `the account may not pull this repository from ${host}: ask for pull rights`,
  REGISTRY_TLS_FAILED: (host) =>
    `the certificate must name ${host} and chain to a trusted CA: give it with registries["${host}"].caFile in bundle.yaml; a registry on plain HTTP needs insecureHttp: true there, or --insecure-registry ${host}`,
  REGISTRY_REFUSED: (host) =>
    `check that ${host} has this repository and tag or digest (skopeo inspect --raw docker://…)`,
};

/**
 * One client per registry host for the whole build, made on first use from bundle.yaml's
 * `registries:` entry for the host and the command line's settings. Closed when the build ends.
 */
export class RegistryConnections {
  private readonly clients = new Map<string, Promise<RegistryClient>>();

  constructor(
    private readonly settings: Record<string, RegistrySpec>,
    private readonly options: RegistryOptions = {},
  ) {}

  client(host: string): Promise<RegistryClient> {
    let client = this.clients.get(host);
    if (client === undefined) {
      client = this.connect(host);
      this.clients.set(host, client);
    }
    return client;
  }

  /** A store reading one image of a registry; its errors name `imageRef`, the image's name in the bundle. */
  imageStore(source: RegistrySourceSpec, imageRef: string): ImageStore {
    return new RegistryImageStore(source, this, imageRef);
  }

  async close(): Promise<void> {
    const clients = await Promise.allSettled(this.clients.values());
    for (const client of clients) if (client.status === "fulfilled") await client.value.close();
  }

  private async connect(host: string): Promise<RegistryClient> {
    // Loaded here, not at the top: undici takes hundreds of milliseconds to load, and verify and
    // import, which share this library, never need it.
    const { RegistryClient, credentialsFromAuthFile } = await import("../registry/client/index.js");
    const settings = this.settings[host];
    const authFile = settings?.authFile ?? this.options.authFile;
    return new RegistryClient({
      host,
      insecureHttp:
        settings?.insecureHttp === true || this.options.insecureRegistries?.includes(host) === true,
      ca: settings?.caFile === undefined ? undefined : await readCa(settings.caFile, host),
      skipTlsVerify: settings?.insecureSkipTlsVerify === true,
      credentials: authFile === undefined ? undefined : await credentialsFromAuthFile(authFile, host),
      connections: this.options.connections,
      signal: this.options.signal,
    });
  }
}

async function readCa(path: string, host: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (error) {
    throw new AirlockError(
      "REGISTRY_CA_UNREADABLE",
      `cannot read the CA for ${host}: ${(error as Error).message}`,
      {
        where: path,
        hint: `fix registries["${host}"].caFile in bundle.yaml (relative paths are relative to bundle.yaml)`,
        cause: error,
      },
    );
  }
}

/**
 * One image of a registry (`docker://HOST/REPOSITORY:TAG`): manifests fetched by digest and kept in
 * memory (they are small, and build reads each twice), other blobs streamed from the registry each
 * time they are opened, checked against their digest as they pass.
 */
class RegistryImageStore implements ImageStore {
  readonly label: string;
  private readonly where: string;
  private readonly manifests = new Map<Digest, Uint8Array>();

  constructor(
    private readonly source: RegistrySourceSpec,
    private readonly connections: RegistryConnections,
    imageRef: string,
  ) {
    const separator = source.ref.includes(":") ? "@" : ":";
    this.label = `docker://${source.registry}/${source.repository}${separator}${source.ref}`;
    this.where = `image ${imageRef} (${this.label})`;
  }

  async resolve(ref: string | undefined): Promise<Descriptor> {
    const manifest = await this.call((client) =>
      client.getManifest(this.source.repository, ref ?? this.source.ref),
    );
    this.manifests.set(manifest.digest, manifest.bytes);
    return { mediaType: manifest.mediaType, digest: manifest.digest, size: manifest.bytes.byteLength };
  }

  async blob(descriptor: Descriptor): Promise<BlobSource> {
    const { digest, size, mediaType } = descriptor;
    if (!isIndexMediaType(mediaType) && !isManifestMediaType(mediaType)) {
      return {
        digest,
        size,
        mediaType,
        open: () => this.stream(descriptor),
        selfChecking: true,
        remote: true,
      };
    }
    // The registry serves manifests on their own endpoint, not as blobs.
    let bytes = this.manifests.get(digest);
    if (bytes === undefined) {
      bytes = (await this.call((client) => client.getManifest(this.source.repository, digest))).bytes;
      this.manifests.set(digest, bytes);
    }
    const held = bytes;
    return { digest, size, mediaType, open: () => [held] };
  }

  referrers(digest: Digest): Promise<Descriptor[]> {
    return this.call((client) => client.referrers(this.source.repository, digest));
  }

  private async *stream(descriptor: Descriptor): AsyncGenerator<Buffer> {
    try {
      const client = await this.connections.client(this.source.registry);
      yield* client.getBlob(this.source.repository, descriptor);
    } catch (error) {
      throw this.explain(error);
    }
  }

  private async call<T>(request: (client: RegistryClient) => Promise<T>): Promise<T> {
    try {
      return await request(await this.connections.client(this.source.registry));
    } catch (error) {
      throw this.explain(error);
    }
  }

  /** The client's error, told about the image it was pulling and what to change for the build. */
  private explain(error: unknown): unknown {
    if (!(error instanceof AirlockError)) return error;
    return new AirlockError(error.code, error.message, {
      where: this.where,
      hint: BUILD_HINTS[error.code]?.(this.source.registry) ?? error.hint,
      cause: error,
    });
  }
}
