/**
 * What a long operation (an import, a verify, a build, fsck, an apply) reports as it goes, and the
 * options every such operation takes. Here, beside the other shared types, so that libraries that
 * report progress need not depend on the store for it.
 */
export interface Progress {
  phase: string;
  done: number;
  total: number;
  /** What done and total count; bytes unless said. */
  unit?: "bytes" | "items";
  item?: string;
}

export interface OperationOptions {
  signal?: AbortSignal | undefined;
  onProgress?: ((progress: Progress) => void) | undefined;
}
