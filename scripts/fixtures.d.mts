/** Types of scripts/fixtures.mjs: seeded, network-free OCI test images and the sample bundle project. */

export interface GenerateFixturesOptions {
  /** Directory to make; it is swapped in whole, never left half-made. Must not contain ':'. */
  out: string;
  /** Seed of every random byte; a non-negative integer. Default 42. */
  seed?: number;
  /** Target total of distinct blob bytes in the layout (±10%): bytes, or "512K", "20MiB", "2GiB". At least 256 KiB; default 20 MiB. */
  size?: number | string;
  /** Regenerate even when `out` already holds fixtures of the same seed and size. */
  force?: boolean;
}

export interface FixtureImage {
  digest: string;
  /** An OCI image index for the multi-arch ref, an OCI image manifest otherwise. */
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

/** What fixtures.json holds; absolute paths. */
export interface FixturesSummary {
  seed: number;
  size: number;
  /** The OCI image layout; refs are its `org.opencontainers.image.ref.name` annotations. */
  layout: string;
  images: Record<string, FixtureImage>;
  totalBlobBytes: number;
  /** The base layer console, agent and msgbroker:4.4.0 share. */
  sharedLayerDigest: string;
  archives: { ociArchive: FixtureArchive; dockerArchive: FixtureArchive };
  /** sample/bundle.yaml; bundle-4.4.0.yaml sits beside it. */
  sample: string;
}

/** Makes the fixtures in `options.out`, or returns the summary of matching ones already there. */
export function generateFixtures(options: GenerateFixturesOptions): Promise<FixturesSummary>;
