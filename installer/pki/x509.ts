import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  webcrypto,
  type KeyObject,
} from "node:crypto";
import { isIP } from "node:net";
import * as x509 from "@peculiar/x509";
import { AirlockError } from "../../registry/oci/index.js";

/**
 * The X.509 primitives of the site PKI: ECDSA P-256 keys from WebCrypto, certificates signed with
 * ECDSA/SHA-256 by @peculiar/x509, and what the rest of the PKI reads back from them.
 */

// @peculiar/x509 stays on 1.x: 2.x needs a Reflect polyfill the application must bring, 1.x brings its own.
// Node 20 gives @peculiar/x509 no default provider: hand it Node's WebCrypto once, on load.
x509.cryptoProvider.set(webcrypto);

const EC_P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;
const DAY_MS = 24 * 60 * 60 * 1000;
/** notBefore lies this far back, so a host whose clock is a little behind still accepts a new certificate. */
const BACKDATE_MS = 5 * 60 * 1000;

export type CertificateKind = "server" | "client" | "peer";

/** A key pair fresh from WebCrypto and its private key as PKCS#8 PEM, the form written to disk. */
interface NewKey {
  keys: webcrypto.CryptoKeyPair;
  pem: string;
}

/** A key read from disk: Node's view checks its type and derives its public half; WebCrypto's signs. */
export interface LoadedKey {
  key: KeyObject;
  signingKey: webcrypto.CryptoKey;
}

export async function generateKey(): Promise<NewKey> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ["sign", "verify"]);
  const pkcs8 = await webcrypto.subtle.exportKey("pkcs8", keys.privateKey);
  return { keys, pem: x509.PemConverter.encode(pkcs8, "PRIVATE KEY") };
}

export function parseCertificatePem(pem: string, where: string): x509.X509Certificate {
  if (!pem.includes("-----BEGIN CERTIFICATE-----")) {
    throw unreadable(where, "it holds no PEM certificate");
  }
  try {
    return new x509.X509Certificate(pem);
  } catch (error) {
    throw unreadable(where, (error as Error).message, error);
  }
}

export async function parsePrivateKeyPem(pem: string, where: string): Promise<LoadedKey> {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (error) {
    throw unreadable(where, (error as Error).message, error);
  }
  if (key.asymmetricKeyType !== "ec" || key.asymmetricKeyDetails?.namedCurve !== "prime256v1") {
    throw new AirlockError("PKI_KEY_INVALID", "the key is not an ECDSA P-256 key", {
      where,
      hint: "Airlock's PKI uses ECDSA P-256 keys only: restore the key Airlock wrote, or remove the pair to have it issued anew",
    });
  }
  const pkcs8 = key.export({ type: "pkcs8", format: "der" });
  const signingKey = await webcrypto.subtle.importKey("pkcs8", pkcs8, EC_P256, false, ["sign"]);
  return { key, signingKey };
}

function unreadable(where: string, reason: string, cause?: unknown): AirlockError {
  return new AirlockError("PKI_UNREADABLE", `cannot read ${where}: ${reason}`, {
    where,
    hint: "restore the file from a backup; a leaf certificate's pair can be removed to have it issued anew",
    cause,
  });
}

/** Whether the certificate carries the public half of this private key. */
export function keyMatches(certificate: x509.X509Certificate, key: KeyObject): boolean {
  const spki = createPublicKey(key).export({ type: "spki", format: "der" });
  return spki.equals(Buffer.from(certificate.publicKey.rawData));
}

export function isP256(certificate: x509.X509Certificate): boolean {
  const algorithm = certificate.publicKey.algorithm as { name?: string; namedCurve?: string };
  return algorithm.name === "ECDSA" && algorithm.namedCurve === "P-256";
}

/** Issued by this CA: its name as issuer, and a signature its key verifies. */
export async function signedBy(
  certificate: x509.X509Certificate,
  ca: x509.X509Certificate,
): Promise<boolean> {
  if (certificate.issuer !== ca.subject) return false;
  return certificate.verify({ publicKey: ca.publicKey, signatureOnly: true });
}

export function isCaCertificate(certificate: x509.X509Certificate): boolean {
  const constraints = certificate.getExtension(x509.BasicConstraintsExtension);
  const usage = certificate.getExtension(x509.KeyUsagesExtension);
  return constraints?.ca === true && usage !== null && (usage.usages & x509.KeyUsageFlags.keyCertSign) !== 0;
}

/** A positive 127-bit serial: random, as CAs must make them, and never read as negative. */
function serialNumber(): string {
  const bytes = randomBytes(16);
  bytes[0] = (bytes[0]! & 0x7f) | 0x01;
  return bytes.toString("hex");
}

function validity(now: Date, validityDays: number): { notBefore: Date; notAfter: Date } {
  return {
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter: new Date(now.getTime() + validityDays * DAY_MS),
  };
}

/** The days a certificate was issued for, as `validityDays` asked (the backdating rounds away). */
export function issuedForDays(certificate: x509.X509Certificate): number {
  return Math.round((certificate.notAfter.getTime() - certificate.notBefore.getTime()) / DAY_MS);
}

export async function createCaCertificate(
  commonName: string,
  key: NewKey,
  now: Date,
  validityDays: number,
): Promise<x509.X509Certificate> {
  return x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialNumber(),
    name: [{ CN: [commonName] }, { O: ["Airlock"] }],
    ...validity(now, validityDays),
    keys: key.keys,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(key.keys.publicKey),
    ],
  });
}

const EXTENDED_KEY_USAGES: Record<CertificateKind, string[]> = {
  server: [x509.ExtendedKeyUsage.serverAuth],
  client: [x509.ExtendedKeyUsage.clientAuth],
  peer: [x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth],
};

export interface LeafRequest {
  kind: CertificateKind;
  commonName: string;
  dnsNames: string[];
  ipAddresses: string[];
  validityDays: number;
}

export async function createLeafCertificate(
  request: LeafRequest,
  key: NewKey,
  ca: { certificate: x509.X509Certificate; signingKey: webcrypto.CryptoKey },
  now: Date,
): Promise<x509.X509Certificate> {
  const altNames = [
    ...request.dnsNames.map((value) => ({ type: "dns" as const, value })),
    ...request.ipAddresses.map((value) => ({ type: "ip" as const, value })),
  ];
  return x509.X509CertificateGenerator.create({
    serialNumber: serialNumber(),
    subject: [{ CN: [request.commonName] }, { O: ["Airlock"] }],
    issuer: ca.certificate.subjectName,
    ...validity(now, request.validityDays),
    publicKey: key.keys.publicKey,
    signingKey: ca.signingKey,
    signingAlgorithm: ECDSA_SHA256,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension(EXTENDED_KEY_USAGES[request.kind]),
      ...(altNames.length === 0 ? [] : [new x509.SubjectAlternativeNameExtension(altNames)]),
      await x509.SubjectKeyIdentifierExtension.create(key.keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(ca.certificate),
    ],
  });
}

/** An IP address in one canonical text form (RFC 5952 for IPv6), so SANs compare by value. */
export function canonicalIp(ip: string): string {
  const host = new URL(`http://${isIP(ip) === 6 ? `[${ip}]` : ip}/`).hostname;
  return host.startsWith("[") ? host.slice(1, -1) : host;
}

/** What a certificate says, in the terms status and the issuing logic compare. */
export interface CertificateFacts {
  kind: "ca" | CertificateKind | "unknown";
  commonName: string | undefined;
  subject: string;
  issuer: string;
  serialNumber: string;
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: Date;
  notAfter: Date;
  fingerprint: string;
}

export function certificateFacts(certificate: x509.X509Certificate): CertificateFacts {
  const names = certificate.getExtension(x509.SubjectAlternativeNameExtension)?.names.items ?? [];
  return {
    kind: kindOf(certificate),
    commonName: certificate.subjectName.getField("CN")[0],
    subject: certificate.subject,
    issuer: certificate.issuer,
    serialNumber: certificate.serialNumber,
    dnsNames: names.filter((name) => name.type === "dns").map((name) => name.value.toLowerCase()),
    ipAddresses: names.filter((name) => name.type === "ip").map((name) => canonicalIp(name.value)),
    notBefore: certificate.notBefore,
    notAfter: certificate.notAfter,
    fingerprint: `sha256:${createHash("sha256").update(Buffer.from(certificate.rawData)).digest("hex")}`,
  };
}

function kindOf(certificate: x509.X509Certificate): CertificateFacts["kind"] {
  if (isCaCertificate(certificate)) return "ca";
  const usages = new Set(certificate.getExtension(x509.ExtendedKeyUsageExtension)?.usages ?? []);
  const server = usages.has(x509.ExtendedKeyUsage.serverAuth);
  const client = usages.has(x509.ExtendedKeyUsage.clientAuth);
  if (server && client) return "peer";
  if (server) return "server";
  if (client) return "client";
  return "unknown";
}
