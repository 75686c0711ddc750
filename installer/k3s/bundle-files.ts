import { open, type FileHandle } from "node:fs/promises";
import { basename, join } from "node:path";
import { openBundle, type HashingWriter, type VerifyResult } from "../../bundle/index.js";
import { AirlockError, Digester, type OperationOptions } from "../../registry/oci/index.js";

/** The bundle entry k3s's binary is carried as. */
export const BUNDLE_K3S_BINARY = "bin/k3s";
/** k3s's air-gap image archives in a bundle: any bin/ file whose name says images. */
const IMAGES_ARCHIVE = /^bin\/[^/]*images[^/]*$/;

export interface K3sBundleFiles {
  verified: VerifyResult;
  /** The extracted binary, a file in `dir`. */
  binary: string;
  imageArchives: { name: string; source: string }[];
}

/** The bundle's k3s binary and image archives among its files; BUNDLE_K3S_MISSING without a binary. */
export function k3sEntries<File extends { path: string }>(
  files: readonly File[],
  where: string,
): { binary: File; imageArchives: File[] } {
  const binary = files.find((file) => file.path === BUNDLE_K3S_BINARY);
  if (binary === undefined) {
    throw new AirlockError("BUNDLE_K3S_MISSING", `the bundle carries no ${BUNDLE_K3S_BINARY}`, {
      where,
      hint: "install k3s from a bundle built with it (files: bin/k3s), or pass --kubeconfig for an existing cluster",
    });
  }
  return { binary, imageArchives: files.filter((file) => IMAGES_ARCHIVE.test(file.path)) };
}

/**
 * One verifying pass over a bundle (signature with `publicKey`, every entry's digest) that streams
 * its k3s binary and image archives into files in `dir`. A file is kept only once its entry checked,
 * and nothing is returned unless the whole bundle did.
 */
export async function extractK3sFiles(
  paths: string[],
  dir: string,
  options: OperationOptions & { publicKey?: string | undefined },
): Promise<K3sBundleFiles> {
  const walk = await openBundle(paths, options);
  try {
    k3sEntries(walk.head.metadata.files, walk.head.input.label);
    const extracted = new Map<string, string>();
    for await (const entry of walk.entries()) {
      const { path } = entry.file;
      // Entries not extracted are verified by the walk as it moves on.
      if (path !== BUNDLE_K3S_BINARY && !IMAGES_ARCHIVE.test(path)) continue;
      const target = join(dir, basename(path));
      const handle = await open(target, "w", 0o600);
      try {
        await entry.writeTo(fileWriter(handle));
      } finally {
        await handle.close();
      }
      extracted.set(path, target);
    }
    return {
      verified: walk.result(),
      binary: extracted.get(BUNDLE_K3S_BINARY)!,
      imageArchives: [...extracted]
        .filter(([path]) => path !== BUNDLE_K3S_BINARY)
        .map(([path, source]) => ({ name: basename(path), source })),
    };
  } finally {
    await walk.close();
  }
}

/** Writes an entry's chunks to a file as they pass, in order, hashing them. */
function fileWriter(handle: FileHandle): HashingWriter {
  const digester = new Digester();
  let lastWrite: Promise<void> = Promise.resolve();
  const writeAll = async (chunk: Uint8Array): Promise<void> => {
    for (let offset = 0; offset < chunk.byteLength;)
      offset += (await handle.write(chunk, offset)).bytesWritten;
  };
  return {
    write(chunk) {
      digester.update(chunk);
      lastWrite = lastWrite.then(() => writeAll(chunk));
      return lastWrite;
    },
    digest: () => digester.digest(),
  };
}
