import type { Statement } from "better-sqlite3";
import { childDescriptors, isNonDistributable, type Digest, type ParsedManifest } from "../oci/index.js";
import type { Db } from "./db.js";

/**
 * The blobs a manifest stored in a repository links into it: an image's config and layers (those a
 * registry holds: non-distributable ones are fetched elsewhere), an index's child manifests.
 */
export function linkedBlobs(parsed: ParsedManifest): Digest[] {
  return childDescriptors(parsed)
    .filter((descriptor) => !isNonDistributable(descriptor))
    .map((descriptor) => descriptor.digest);
}

/** A manifest's own annotations, which its descriptor in a referrers list must carry. */
export function annotationsOf(parsed: ParsedManifest): Record<string, string> | undefined {
  const annotations = parsed.kind === "manifest" ? parsed.manifest.annotations : parsed.index.annotations;
  return annotations === undefined || Object.keys(annotations).length === 0 ? undefined : annotations;
}

/**
 * Which repositories a blob belongs to: one row per (repository, blob), added by a completed upload,
 * a mount, or a stored manifest naming the blob. Blob reads check it, so a digest is served only
 * under the repositories that hold it. Statements are prepared once: the check is on every pull.
 */
export class RepositoryBlobs {
  private readonly hasStatement: Statement<[string, string]>;
  private readonly linkStatement: Statement<[string, string]>;
  private readonly unlinkStatement: Statement<[string, string]>;

  constructor(db: Db) {
    this.hasStatement = db.prepare("SELECT 1 FROM repository_blobs WHERE repository = ? AND digest = ?");
    this.linkStatement = db.prepare(
      "INSERT OR IGNORE INTO repository_blobs (repository, digest) VALUES (?, ?)",
    );
    this.unlinkStatement = db.prepare("DELETE FROM repository_blobs WHERE repository = ? AND digest = ?");
  }

  has(repository: string, digest: Digest): boolean {
    return this.hasStatement.get(repository, digest) !== undefined;
  }

  link(repository: string, digests: Iterable<Digest>): void {
    for (const digest of digests) this.linkStatement.run(repository, digest);
  }

  /** Returns false when the blob was not linked to the repository. */
  unlink(repository: string, digest: Digest): boolean {
    return this.unlinkStatement.run(repository, digest).changes > 0;
  }
}
