/**
 * Types of scripts/fixtures.mjs: network-free OCI test images and the sample bundle project. The real
 * msgbroker image (hubble/msgbroker:4.5.0, from the host's nats-server package) and seeded random
 * images: hubble/console:4.5.0 (a linux/amd64 + linux/arm64/v8 index), hubble/agent:4.5.0 and
 * hubble/msgbroker:4.4.0.
 */

export interface GenerateFixturesOptions {
  /** Directory to make; it is swapped in whole, never left half-made. Must not contain ':'. */
  out: string;
  /** Seed of every random byte; a non-negative integer. Default 42. */
  seed?: number;
  /**
   * Target total of the seeded images' distinct blob bytes (±10%): bytes, or "512K", "20MiB", "2GiB".
   * At least 256 KiB; default 20 MiB. The real msgbroker image (about 5.5 MiB) comes on top.
   */
  size?: number | string;
  /** Regenerate even when `out` already holds fixtures of the same seed, size and format. */
  force?: boolean;
}

export interface FixtureImage {
  digest: string;
  /** An OCI image index for the multi-arch ref (hubble/console:4.5.0), an OCI image manifest otherwise. */
  mediaType: string;
  /** "os/architecture[/variant]" of each platform, e.g. "linux/arm64/v8". */
  platforms: string[];
  /** Distinct blobs the ref pulls in: index, manifests, configs and layers. */
  blobs: number;
}

export interface FixtureArchive {
  path: string;
  /** Hex sha256 of the archive file; skopeo's archives are not byte-reproducible. */
  sha256: string;
}

/** The real image in the layout, as scripts/msgbroker-image.mjs built it. */
export interface FixtureMsgbroker {
  /** "hubble/msgbroker:4.5.0"; its digest and platform are in `images`. */
  ref: string;
  /** The Debian version of the nats-server packed, e.g. "2.9.10-1+b3". */
  natsServer: string;
  /** Debian package → version of everything packed: nats-server and the packages owning its libraries. */
  packages: Record<string, string>;
  /** Bytes of its manifest, config and layer blobs. */
  totalBytes: number;
}

/** What fixtures.json holds; absolute paths. */
export interface FixturesSummary {
  /** Changes when the same seed and size make different fixtures; fixtures of another format are remade. */
  format: number;
  seed: number;
  size: number;
  /** The OCI image layout; refs are its `org.opencontainers.image.ref.name` annotations. */
  layout: string;
  /** hubble/msgbroker:4.5.0, hubble/console:4.5.0, hubble/agent:4.5.0, hubble/msgbroker:4.4.0, in this order. */
  images: Record<string, FixtureImage>;
  msgbroker: FixtureMsgbroker;
  /** Bytes of every blob in the layout. */
  totalBlobBytes: number;
  /** Bytes of the seeded images' blobs: what `size` aims at. */
  seededBlobBytes: number;
  /** The base layer console's linux/amd64 image, agent and msgbroker:4.4.0 share. */
  sharedLayerDigest: string;
  /** console:4.5.0 as an oci-archive (its whole index, same digest) and agent:4.5.0 as a docker-archive. */
  archives: { ociArchive: FixtureArchive; dockerArchive: FixtureArchive };
  /** sample/bundle.yaml; bundle-4.4.0.yaml sits beside it. */
  sample: string;
}

/** Makes the fixtures in `options.out`, or returns the summary of matching ones already there. */
export function generateFixtures(options: GenerateFixturesOptions): Promise<FixturesSummary>;
