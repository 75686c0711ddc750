/** Types of scripts/msgbroker-image.mjs: the real msgbroker image, Debian's nats-server packed with no base image. */

export interface BuildMsgbrokerImageOptions {
  /**
   * OCI image layout directory to write; made if missing. An existing layout keeps its other images
   * and blobs; an index.json entry with the same ref is replaced. Must not contain ':'.
   */
  out: string;
  /** The `org.opencontainers.image.ref.name` in index.json, for `oci:DIR:REF`. Default `hubble/msgbroker:<nats-server upstream version>`. */
  ref?: string;
  /**
   * A nats-server .deb (what `apt-get download nats-server` fetches) to take the binary from, with
   * `dpkg-deb`; the shared libraries still come from the host. Default: the installed package.
   */
  deb?: string;
  /** The image's `created` and every tar entry's mtime. Default "2026-01-01T00:00:00Z". */
  created?: string;
}

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
}

export interface MsgbrokerImageFile {
  /** Absolute path in the image, e.g. "/usr/sbin/nats-server"; directories without a trailing slash. */
  path: string;
  type: "file" | "directory";
  /** Permission bits, e.g. 0o755, 0o1777 for /tmp. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
}

export interface MsgbrokerImage {
  /** The layout directory, absolute. */
  layout: string;
  ref: string;
  /** The image manifest's digest. */
  digest: string;
  mediaType: "application/vnd.oci.image.manifest.v1+json";
  /** "os/architecture[/variant]", from the package's Debian architecture, e.g. "linux/amd64". */
  platform: string;
  natsServer: {
    /** The Debian version, e.g. "2.9.10-1+b3". */
    version: string;
    /** Without epoch and Debian revision, e.g. "2.9.10". */
    upstreamVersion: string;
    /** The binary's path in the image, as the package installs it: "/usr/sbin/nats-server". */
    path: string;
  };
  /** Debian package → version of everything packed: nats-server and the packages owning its libraries. */
  packages: Record<string, string>;
  config: Descriptor;
  layer: Descriptor & { diffId: string; tarSize: number };
  /** Every entry of the layer, in tar order (sorted by path). */
  files: MsgbrokerImageFile[];
  /** Bytes of the manifest, config and layer blobs. */
  totalBytes: number;
}

/** Builds the msgbroker image into the OCI image layout `options.out`. */
export function buildMsgbrokerImage(options: BuildMsgbrokerImageOptions): Promise<MsgbrokerImage>;
