import { createHash, type Hash } from "node:crypto";
import { AirlockError } from "./errors.js";

/** A content digest `algorithm:hex`, as the OCI image spec defines it. */
export type Digest = `${DigestAlgorithm}:${string}`;
export type DigestAlgorithm = "sha256" | "sha512";

const HEX_LENGTH: Record<DigestAlgorithm, number> = { sha256: 64, sha512: 128 };
const DIGEST_PATTERN = /^(sha256|sha512):([a-f0-9]+)$/;

export function isDigest(value: string): value is Digest {
  const match = DIGEST_PATTERN.exec(value);
  return match !== null && match[2]!.length === HEX_LENGTH[match[1] as DigestAlgorithm];
}

export function parseDigest(value: string, where?: string): { algorithm: DigestAlgorithm; hex: string } {
  if (!isDigest(value)) {
    throw new AirlockError("DIGEST_INVALID", `not a valid digest: ${JSON.stringify(value)}`, {
      where,
      hint: "a digest is sha256: followed by 64 lowercase hex characters (or sha512: and 128)",
    });
  }
  const [algorithm, hex] = value.split(":") as [DigestAlgorithm, string];
  return { algorithm, hex };
}

/** Incremental digester: feed chunks, then read the digest. */
export class Digester {
  readonly algorithm: DigestAlgorithm;
  private readonly hash: Hash;
  private bytes = 0;
  private result: Digest | undefined;

  constructor(algorithm: DigestAlgorithm = "sha256") {
    this.algorithm = algorithm;
    this.hash = createHash(algorithm);
  }

  update(chunk: Uint8Array): void {
    this.hash.update(chunk);
    this.bytes += chunk.byteLength;
  }

  get size(): number {
    return this.bytes;
  }

  /** The digest of everything fed so far; feeding more after this is a programming error. */
  digest(): Digest {
    this.result ??= `${this.algorithm}:${this.hash.digest("hex")}`;
    return this.result;
  }
}

export function digestOf(data: Uint8Array | string, algorithm: DigestAlgorithm = "sha256"): Digest {
  return `${algorithm}:${createHash(algorithm).update(data).digest("hex")}`;
}

/** The hex part of a sha256 digest, for places (tar entries, `files`) that carry bare hex. */
export function sha256Hex(digest: Digest): string {
  const { algorithm, hex } = parseDigest(digest);
  if (algorithm !== "sha256") {
    throw new AirlockError("DIGEST_UNSUPPORTED", `only sha256 is supported here, got ${algorithm}`, {
      where: digest,
    });
  }
  return hex;
}
