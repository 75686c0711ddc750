import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdtemp, readdir, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  generateKeyPair,
  keyFingerprint,
  loadPrivateKey,
  loadPublicKey,
  signBytes,
  verifyBytes,
} from "../../../bundle/sign.js";
import { rejection } from "../../helpers/errors.js";
import { opensslVerify } from "../../helpers/fixtures.js";

const run = promisify(execFile);

const DATA = Buffer.from(JSON.stringify({ name: "mgmt", version: "4.5.0", files: [] }, null, 2) + "\n");

describe("bundle signing keys and signatures", () => {
  let dir: string;
  let priv: string;
  let pub: string;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "airlock-sign-"));
    priv = join(dir, "key.pem");
    pub = join(dir, "pub.pem");
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe("generateKeyPair", () => {
    it("writes a 0600 PKCS#8 private key and a 0644 SPKI public key that openssl reads as P-256", async () => {
      const result = await generateKeyPair(priv, pub);
      expect(result).toMatchObject({ privateKey: priv, publicKey: pub });
      expect(result.fingerprint).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect((await stat(priv)).mode & 0o777).toBe(0o600);
      expect((await stat(pub)).mode & 0o777).toBe(0o644);
      expect(await readFile(priv, "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
      expect(await readFile(pub, "utf8")).toMatch(/^-----BEGIN PUBLIC KEY-----\n/);
      const { stdout } = await run("openssl", ["pkey", "-in", priv, "-noout", "-text"]);
      expect(stdout).toMatch(/NIST CURVE: P-256|prime256v1/);
      expect((await readdir(dir)).sort()).toEqual(["key.pem", "pub.pem"]);
    });

    it("refuses to overwrite either file without force, leaving both unchanged", async () => {
      await generateKeyPair(priv, pub);
      const before = [await readFile(priv, "utf8"), await readFile(pub, "utf8")];
      const error = await rejection(generateKeyPair(priv, pub));
      expect(error).toMatchObject({ code: "KEY_EXISTS", where: priv, exitCode: 2 });
      expect([await readFile(priv, "utf8"), await readFile(pub, "utf8")]).toEqual(before);

      const otherPriv = join(dir, "other.pem");
      const pubOnly = await rejection(generateKeyPair(otherPriv, pub));
      expect(pubOnly).toMatchObject({ code: "KEY_EXISTS", where: pub });
      expect((await readdir(dir)).sort()).toEqual(["key.pem", "pub.pem"]);
    });

    it("replaces the pair with force, keeping the private key 0600", async () => {
      const first = await generateKeyPair(priv, pub);
      await chmod(priv, 0o644);
      const second = await generateKeyPair(priv, pub, true);
      expect(second.fingerprint).not.toBe(first.fingerprint);
      expect((await stat(priv)).mode & 0o777).toBe(0o600);
      expect(keyFingerprint(await loadPublicKey(pub))).toBe(second.fingerprint);
      expect(keyFingerprint(await loadPublicKey(priv))).toBe(second.fingerprint);
      expect((await readdir(dir)).sort()).toEqual(["key.pem", "pub.pem"]);
    });

    it("fingerprints the DER SubjectPublicKeyInfo exactly as openssl exports it", async () => {
      const { fingerprint } = await generateKeyPair(priv, pub);
      const { stdout } = await run("openssl", ["pkey", "-pubin", "-in", pub, "-outform", "DER"], {
        encoding: "buffer",
      });
      expect(fingerprint).toBe(`sha256:${createHash("sha256").update(stdout).digest("hex")}`);
      expect(keyFingerprint(await loadPublicKey(pub))).toBe(fingerprint);
    });
  });

  describe("signatures interoperate with openssl", () => {
    it("openssl dgst -verify accepts our signature", async () => {
      await generateKeyPair(priv, pub);
      const signature = signBytes(DATA, await loadPrivateKey(priv));
      await writeFile(join(dir, "airlock.json"), DATA);
      await writeFile(join(dir, "airlock.json.sig"), signature);
      const verified = await opensslVerify(pub, join(dir, "airlock.json.sig"), join(dir, "airlock.json"));
      expect(verified.code).toBe(0);
      expect(verified.stdout.toString().trim()).toBe("Verified OK");
      await writeFile(join(dir, "airlock.json"), Buffer.concat([DATA, Buffer.from(" ")]));
      const refused = await opensslVerify(pub, join(dir, "airlock.json.sig"), join(dir, "airlock.json"));
      expect(refused.code).not.toBe(0);
      expect(refused.stdout.toString()).toContain("Verification failure");
    });

    it("signs deterministically: the same key and bytes give the same signature", async () => {
      await generateKeyPair(priv, pub);
      const key = await loadPrivateKey(priv);
      const first = signBytes(DATA, key);
      expect(signBytes(DATA, key).equals(first)).toBe(true);
      expect(signBytes(Buffer.from("other"), key).equals(first)).toBe(false);
      expect(first[0]).toBe(0x30);
      expect(verifyBytes(DATA, first, await loadPublicKey(pub))).toBe(true);
    });

    it("verifyBytes accepts a signature openssl made with an openssl-generated SEC1 key", async () => {
      const ecKey = join(dir, "ec.pem");
      await run("openssl", ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", ecKey]);
      expect(await readFile(ecKey, "utf8")).toMatch(/^-----BEGIN EC PRIVATE KEY-----/);
      await run("openssl", ["ec", "-in", ecKey, "-pubout", "-out", pub]);
      await writeFile(join(dir, "data"), DATA);
      await run("openssl", ["dgst", "-sha256", "-sign", ecKey, "-out", join(dir, "sig"), join(dir, "data")]);
      const signature = await readFile(join(dir, "sig"));
      const publicKey = await loadPublicKey(pub);
      expect(verifyBytes(DATA, signature, publicKey)).toBe(true);
      expect(verifyBytes(Buffer.concat([DATA, Buffer.from("x")]), signature, publicKey)).toBe(false);
      const ours = signBytes(DATA, await loadPrivateKey(ecKey));
      expect(verifyBytes(DATA, ours, publicKey)).toBe(true);
    });

    it("a signature from another key, a flipped bit or garbage does not verify", async () => {
      await generateKeyPair(priv, pub);
      const otherPriv = join(dir, "other.pem");
      const otherPub = join(dir, "other.pub.pem");
      await generateKeyPair(otherPriv, otherPub);
      const signature = signBytes(DATA, await loadPrivateKey(priv));
      const publicKey = await loadPublicKey(pub);
      expect(verifyBytes(DATA, signature, publicKey)).toBe(true);
      expect(verifyBytes(DATA, signature, await loadPublicKey(otherPub))).toBe(false);
      const flipped = Buffer.from(signature);
      flipped[flipped.length - 1] = flipped[flipped.length - 1]! ^ 0x01;
      expect(verifyBytes(DATA, flipped, publicKey)).toBe(false);
      expect(verifyBytes(DATA, Buffer.from("not a DER signature"), publicKey)).toBe(false);
      expect(verifyBytes(DATA, new Uint8Array(0), publicKey)).toBe(false);
    });
  });

  describe("loading keys", () => {
    it.each([
      ["an RSA key", ["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024"]],
      ["a P-384 key", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384"]],
      ["an Ed25519 key", ["genpkey", "-algorithm", "ED25519"]],
      ["a secp256k1 key", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:secp256k1"]],
    ])("refuses %s with KEY_INVALID, private and public", async (_what, args) => {
      const key = join(dir, "foreign.pem");
      const foreignPub = join(dir, "foreign.pub.pem");
      await run("openssl", [...args, "-out", key]);
      await run("openssl", ["pkey", "-in", key, "-pubout", "-out", foreignPub]);
      expect(await rejection(loadPrivateKey(key))).toMatchObject({
        code: "KEY_INVALID",
        where: key,
        exitCode: 2,
      });
      expect(await rejection(loadPublicKey(foreignPub))).toMatchObject({
        code: "KEY_INVALID",
        where: foreignPub,
        exitCode: 2,
      });
    });

    it("refuses a file that is not a PEM key with KEY_INVALID, and a missing one with KEY_UNREADABLE", async () => {
      const junk = join(dir, "junk.pem");
      await writeFile(junk, "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n");
      expect((await rejection(loadPrivateKey(junk))).code).toBe("KEY_INVALID");
      expect((await rejection(loadPublicKey(junk))).code).toBe("KEY_INVALID");
      const missing = await rejection(loadPublicKey(join(dir, "absent.pem")));
      expect(missing).toMatchObject({ code: "KEY_UNREADABLE", where: join(dir, "absent.pem"), exitCode: 2 });
    });

    it("a public key file is not accepted as a private key", async () => {
      await generateKeyPair(priv, pub);
      expect((await rejection(loadPrivateKey(pub))).code).toBe("KEY_INVALID");
      expect((await loadPublicKey(priv)).type).toBe("public");
    });
  });
});
