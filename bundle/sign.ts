import {
  createHash,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  verify,
  type KeyObject,
} from "node:crypto";
import { readFile, writeFile, rename } from "node:fs/promises";
import { p256 } from "@noble/curves/nist.js";
import { AirlockError, errnoCode } from "../registry/oci/index.js";

/**
 * Bundle signatures: ECDSA P-256 over SHA-256 of `airlock.json`, DER-encoded as
 * `openssl dgst -sha256 -sign key.pem` writes them, so a site can check a bundle with openssl alone.
 */
export interface KeyPairFiles {
  privateKey: string;
  publicKey: string;
  fingerprint: string;
}

/** sha256 of the DER SubjectPublicKeyInfo: stable, and what `openssl pkey -pubin -outform DER | sha256sum` prints. */
export function keyFingerprint(publicKey: KeyObject): string {
  return `sha256:${createHash("sha256")
    .update(publicKey.export({ type: "spki", format: "der" }))
    .digest("hex")}`;
}

async function writeNew(path: string, data: string, mode: number): Promise<void> {
  const temp = `${path}.${process.pid}.tmp`;
  await writeFile(temp, data, { mode, flag: "wx" });
  await rename(temp, path);
}

export async function generateKeyPair(
  privatePath: string,
  publicPath: string,
  force = false,
): Promise<KeyPairFiles> {
  if (!force) {
    for (const path of [privatePath, publicPath]) {
      const exists = await readFile(path).then(
        () => true,
        () => false,
      );
      if (exists) {
        throw new AirlockError("KEY_EXISTS", `refusing to overwrite ${path}`, {
          where: path,
          hint: "choose another --out, or pass --force to replace the key pair",
        });
      }
    }
  }
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  await writeNew(privatePath, privateKey.export({ type: "pkcs8", format: "pem" }) as string, 0o600);
  await writeNew(publicPath, publicKey.export({ type: "spki", format: "pem" }) as string, 0o644);
  return { privateKey: privatePath, publicKey: publicPath, fingerprint: keyFingerprint(publicKey) };
}

async function readKeyFile(path: string, kind: "private" | "public"): Promise<string> {
  try {
    return await readFile(path, "utf8");
  } catch (error) {
    throw new AirlockError("KEY_UNREADABLE", `cannot read the ${kind} key: ${(error as Error).message}`, {
      where: path,
      hint:
        errnoCode(error) === "ENOENT"
          ? `check the path; \`airlock keys generate\` makes a key pair`
          : "check the file's permissions",
    });
  }
}

function checkP256(key: KeyObject, path: string): void {
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new AirlockError("KEY_INVALID", "the key is not an ECDSA P-256 key", {
      where: path,
      hint: "bundle keys are ECDSA P-256: make them with `airlock keys generate`",
    });
  }
}

export async function loadPrivateKey(path: string): Promise<KeyObject> {
  const pem = await readKeyFile(path, "private");
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    throw new AirlockError("KEY_INVALID", `not a PEM private key: ${(error as Error).message}`, {
      where: path,
      hint: "pass the private key written by `airlock keys generate`",
    });
  }
  checkP256(key, path);
  return key;
}

export async function loadPublicKey(path: string): Promise<KeyObject> {
  const pem = await readKeyFile(path, "public");
  let key: KeyObject;
  try {
    key = createPublicKey(pem);
  } catch (error) {
    throw new AirlockError("KEY_INVALID", `not a PEM public key: ${(error as Error).message}`, {
      where: path,
      hint: "pass the public key (pub.pem) that matches the vendor's signing key",
    });
  }
  checkP256(key, path);
  return key.type === "private" ? createPublicKey(key) : key;
}

/**
 * Deterministic ECDSA (RFC 6979): the nonce derives from key and message, so the same inputs give the
 * same signature bytes and a signed build stays byte-identical. Node 20's OpenSSL 3.0 only offers a
 * random nonce; any standard ECDSA verifier (openssl, node) accepts both.
 */
export function signBytes(data: Uint8Array, privateKey: KeyObject): Buffer {
  const scalar = Buffer.from(privateKey.export({ format: "jwk" }).d!, "base64url");
  return Buffer.from(p256.sign(data, scalar, { format: "der" }));
}

export function verifyBytes(data: Uint8Array, signature: Uint8Array, publicKey: KeyObject): boolean {
  try {
    return verify("sha256", data, publicKey, signature);
  } catch {
    return false;
  }
}
