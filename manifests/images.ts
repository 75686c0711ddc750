import {
  AirlockError,
  formatReference,
  parseDigest,
  parseReference,
  type Digest,
} from "../registry/oci/index.js";

/**
 * One image a bundle carries, as its `airlock.json` lists it under `images` (bundle's BundleImage
 * has this shape and more): the name inside the bundle and its top manifest or index digest.
 */
export interface BundleImageEntry {
  ref: string;
  digest: string;
  /** Packs are stored as OCI artifacts beside the images; they are never a container's image. */
  kind?: string;
}

/** The images a bundle carries: its airlock.json `images`. */
export type ImageMap = readonly BundleImageEntry[];

/**
 * `registry/repository@digest` for the image the bundle names `ref`: the site registry serves the
 * bundle's content, and the digest pins exactly the bytes the bundle verified.
 */
export function pinImage(images: ImageMap, ref: string, registry: string): string {
  const wanted = parseReference(ref);
  const entry = images.find((image) => {
    if (image.kind === "pack") return false;
    const candidate = parseReference(image.ref, "images");
    return candidate.repository === wanted.repository && candidate.tag === wanted.tag;
  });
  if (entry === undefined) {
    throw new AirlockError("IMAGE_NOT_IN_BUNDLE", `image ${ref} is not in the bundle`, {
      where: ref,
      hint:
        images.length === 0
          ? "the bundle lists no images: build it with the plane's images in bundle.yaml"
          : `the bundle carries ${images.map((image) => image.ref).join(", ")}; add ${ref} to bundle.yaml, or set msgbroker.image to one of those`,
    });
  }
  // airlock.json is data from a file: a malformed digest is DIGEST_INVALID naming the image.
  parseDigest(entry.digest, entry.ref);
  return formatReference({
    registry,
    repository: wanted.repository,
    tag: undefined,
    digest: entry.digest as Digest,
  });
}
