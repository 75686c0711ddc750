import { randomBytes, type webcrypto } from "node:crypto";
import { stat } from "node:fs/promises";
import { isIP } from "node:net";
import { join, resolve } from "node:path";
import { setTimeout as delay } from "node:timers/promises";
import type { X509Certificate } from "@peculiar/x509";
import { AirlockError, errnoCode, isAirlockError, type Logger } from "../../registry/oci/index.js";
import {
  acquireDirLock,
  certificateNames,
  commitPair,
  ensureDir,
  pairFiles,
  readOptional,
  recoverStaged,
  type PairFiles,
} from "./files.js";
import {
  canonicalIp,
  certificateFacts,
  createCaCertificate,
  createLeafCertificate,
  generateKey,
  isCaCertificate,
  isP256,
  issuedForDays,
  keyMatches,
  parseCertificatePem,
  parsePrivateKeyPem,
  signedBy,
  type CertificateFacts,
  type CertificateKind,
  type LeafRequest,
  type LoadedKey,
} from "./x509.js";

const DAY_MS = 24 * 60 * 60 * 1000;
const CA_NAME = "ca";
const CA_VALIDITY_DAYS = 3650;
export const DEFAULT_VALIDITY_DAYS = 825;
export const DEFAULT_RENEW_WITHIN_DAYS = 30;
const MAX_VALIDITY_DAYS = 3650;
/** X.520's upper bound for a common name. */
const MAX_COMMON_NAME = 64;
const CERTIFICATE_NAME = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const DNS_LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const DNS_NAME = new RegExp(`^(?:\\*\\.)?${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);

/** What the PKI logs through: the shared Logger's info and warn, so the CLI's logger fits as it is. */
export type PkiLogger = Pick<Logger, "info" | "warn">;

export interface PkiOptions {
  /** The clock every validity decision reads; tests move it. */
  now?: () => Date;
  logger?: PkiLogger;
  /** Re-issue a certificate that expires within this many days (at most a third of its lifetime). */
  renewWithinDays?: number;
}

export interface CertificateSpec {
  /** The file name under pki/: `<name>.crt`, `<name>.key`. */
  name: string;
  /** server: serverAuth; client: clientAuth; peer: both (a broker route both dials and accepts). */
  kind: CertificateKind;
  commonName: string;
  dnsNames?: string[];
  ipAddresses?: string[];
  /**
   * The SANs an existing certificate must carry to be kept; all of dnsNames and ipAddresses when left
   * out. A subset lets a certificate issued with headroom (more broker ordinals) survive growth into it.
   */
  requiredSans?: { dnsNames?: string[]; ipAddresses?: string[] };
  validityDays?: number;
}

export type CertificateStatus = "ok" | "expiring" | "expired" | "not-yet-valid" | "foreign-ca";

export interface CertificateInfo {
  name: string;
  kind: CertificateFacts["kind"];
  subject: string;
  issuer: string;
  serialNumber: string;
  dnsNames: string[];
  ipAddresses: string[];
  notBefore: string;
  notAfter: string;
  /** Whole days until notAfter; negative once expired. */
  daysLeft: number;
  /** sha256 over the DER certificate. */
  fingerprint: string;
  status: CertificateStatus;
  certFile: string;
  keyFile: string;
}

export type ReissueReason =
  "expired" | "expiring" | "not-yet-valid" | "foreign-ca" | "kind" | "subject" | "sans";

export interface EnsuredCertificate extends CertificateInfo {
  /** The site CA's certificate, the file clients trust. */
  caFile: string;
  action: "kept" | "issued" | "reissued" | "rotated";
  /** Why a certificate that existed was issued anew by ensure. */
  reason?: ReissueReason;
}

export interface RotateOptions {
  /** Leaf certificates to re-issue; every one when left out. */
  names?: string[];
  /** Start a new site CA and re-sign every leaf with it. */
  ca?: boolean;
}

export interface RotateResult {
  /** The new CA, when `ca` was asked for. */
  ca?: EnsuredCertificate;
  certificates: EnsuredCertificate[];
}

interface LoadedPair {
  name: string;
  files: PairFiles;
  certificate: X509Certificate;
  key: LoadedKey;
  facts: CertificateFacts;
}

/** What signs leaves: the CA's certificate (issuer name, key identifier) and its private key. */
interface SigningCa {
  files: PairFiles;
  certificate: X509Certificate;
  signingKey: webcrypto.CryptoKey;
}

type NormalizedSpec = LeafRequest & { name: string; required: { dnsNames: string[]; ipAddresses: string[] } };

/** One queue per pki directory: operations of this process run one at a time, then take the file lock. */
const queues = new Map<string, Promise<void>>();

/**
 * The site PKI under `<dataDir>/pki/`: a CA (`ca.crt`, `ca.key`) and named leaf certificates.
 * Every operation runs under pki/.lock, first finishing any pair a crash left half-replaced.
 */
export class Pki {
  readonly dir: string;
  readonly caFile: string;
  readonly logger: PkiLogger | undefined;
  readonly renewWithinDays: number;
  readonly #clock: () => Date;

  constructor(dataDir: string, options: PkiOptions = {}) {
    this.dir = join(resolve(dataDir), "pki");
    this.caFile = pairFiles(this.dir, CA_NAME).certFile;
    this.logger = options.logger;
    this.renewWithinDays = options.renewWithinDays ?? DEFAULT_RENEW_WITHIN_DAYS;
    this.#clock = options.now ?? (() => new Date());
  }

  now(): Date {
    return this.#clock();
  }

  /** The site CA: kept when it exists and is usable, made when there is none; never replaced. */
  async ensureCa(): Promise<EnsuredCertificate> {
    await ensureDir(this.dir);
    return withLock(this, "ensuring the site CA", async () => {
      const existing = await readCa(this);
      if (existing !== undefined) {
        requireUsableCa(this, existing);
        return ensured(this, existing, "kept");
      }
      await refuseOrphans(this);
      const ca = await issueCa(this);
      return ensured(this, ca.pair, "issued");
    });
  }

  /**
   * A leaf certificate as the spec asks: kept while it is valid beyond the renewal threshold, signed
   * by the current CA, of the asked kind and subject, and its SANs cover the asked ones; else issued
   * anew with a fresh key. Makes the CA when there is none.
   */
  async ensureCertificate(spec: CertificateSpec): Promise<EnsuredCertificate> {
    const request = normalizeSpec(spec);
    await ensureDir(this.dir);
    return withLock(this, `issuing ${request.name}`, async () => {
      const existingCa = await readCa(this);
      if (existingCa !== undefined) requireUsableCa(this, existingCa);
      // Read the leaf before making a CA: bad material in pki/ must leave it as it was.
      const existing = await readPair(this.dir, request.name);
      if (existingCa === undefined) await refuseOrphans(this);
      const ca = existingCa === undefined ? (await issueCa(this)).signing : signingCa(existingCa);
      const reason = existing === undefined ? undefined : await reissueReason(this, existing, ca, request);
      if (existing !== undefined && reason === undefined) return ensured(this, existing, "kept");
      const issued = await issueLeaf(this, request, ca);
      this.logger?.info(
        { name: request.name, reason: reason ?? "new", notAfter: issued.facts.notAfter.toISOString() },
        reason === undefined ? "issued a certificate" : "re-issued a certificate",
      );
      const result = ensured(this, issued, existing === undefined ? "issued" : "reissued");
      return reason === undefined ? result : { ...result, reason };
    });
  }
}

export function openPki(dataDir: string, options: PkiOptions = {}): Pki {
  return new Pki(dataDir, options);
}

/** The CA first, then every leaf by name, each with its status against the current CA and clock. */
export async function listCertificates(pki: Pki): Promise<CertificateInfo[]> {
  const exists = await stat(pki.dir).then(
    () => true,
    (error: unknown) => {
      if (errnoCode(error) === "ENOENT") return false;
      throw new AirlockError("PKI_UNREADABLE", `cannot read ${pki.dir}: ${(error as Error).message}`, {
        where: pki.dir,
        hint: "run as the user that owns the data dir (root on a site host)",
      });
    },
  );
  if (!exists) return [];
  return withLock(
    pki,
    "listing certificates",
    async () => {
      const ca = await readCa(pki);
      const out: CertificateInfo[] = [];
      if (ca !== undefined) out.push(describe(pki, ca, timeStatus(pki, ca.facts)));
      for (const name of await leafNames(pki)) {
        const leaf = (await readPair(pki.dir, name))!;
        const foreign = ca === undefined || !(await signedBy(leaf.certificate, ca.certificate));
        out.push(describe(pki, leaf, foreign ? "foreign-ca" : timeStatus(pki, leaf.facts)));
      }
      return out;
    },
    READER_WAIT_MS,
  );
}

/**
 * Re-issues leaf certificates with fresh keys and the SANs, kind and lifetime they had; with `ca`,
 * first a new site CA, then every leaf signed by it. Reads everything before writing anything.
 */
export async function rotate(pki: Pki, options: RotateOptions = {}): Promise<RotateResult> {
  const asked = [...new Set(options.names ?? [])];
  if (options.ca === true && asked.length > 0) {
    throw new AirlockError("USAGE", "a new CA re-signs every certificate: leave out --name with --ca");
  }
  // Checked before ensureDir as well, so a data dir without a PKI stays without one.
  if (options.ca !== true && !(await exists(pki.caFile))) throw noCa(pki);
  await ensureDir(pki.dir);
  return withLock(pki, options.ca === true ? "rotating the site CA" : "rotating certificates", async () => {
    const all = await leafNames(pki);
    const unknown = asked.filter((name) => !all.includes(name));
    if (unknown.length > 0) {
      throw new AirlockError("PKI_UNKNOWN_CERTIFICATE", `no certificate named ${unknown.join(", ")}`, {
        where: pki.dir,
        hint: all.length === 0 ? "there are no certificates yet" : `the certificates are: ${all.join(", ")}`,
      });
    }
    const leaves: { pair: LoadedPair; request: NormalizedSpec }[] = [];
    for (const name of asked.length > 0 ? asked : all) {
      const pair = (await readPair(pki.dir, name))!;
      leaves.push({ pair, request: requestOf(pair) });
    }
    let ca: SigningCa;
    let newCa: EnsuredCertificate | undefined;
    if (options.ca === true) {
      const issued = await issueCa(pki);
      ca = issued.signing;
      newCa = ensured(pki, issued.pair, "rotated");
      pki.logger?.info({ fingerprint: newCa.fingerprint }, "made a new site CA");
    } else {
      const existing = await readCa(pki);
      if (existing === undefined) throw noCa(pki);
      requireUsableCa(pki, existing);
      ca = signingCa(existing);
    }
    const certificates: EnsuredCertificate[] = [];
    for (const leaf of leaves) {
      const issued = await issueLeaf(pki, leaf.request, ca);
      pki.logger?.info({ name: leaf.pair.name }, "rotated a certificate");
      certificates.push(ensured(pki, issued, "rotated"));
    }
    return newCa === undefined ? { certificates } : { ca: newCa, certificates };
  });
}

/**
 * How long a reader waits out another process's PKI operation (each takes well under a second; the
 * site daemon renewing the console's certificate must not fail an operator's `airlock status`).
 * Writers wait for no one: a second writer is told at once who holds the lock.
 */
const READER_WAIT_MS = 15_000;
const READER_POLL_MS = 50;

async function acquireWaiting(dir: string, purpose: string, waitMs: number): Promise<() => Promise<void>> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      return await acquireDirLock(dir, purpose);
    } catch (error) {
      if (!isAirlockError(error, "PKI_LOCKED") || Date.now() >= deadline) throw error;
      await delay(READER_POLL_MS);
    }
  }
}

async function withLock<T>(pki: Pki, purpose: string, fn: () => Promise<T>, waitMs = 0): Promise<T> {
  const previous = queues.get(pki.dir) ?? Promise.resolve();
  let done!: () => void;
  const tail = previous.then(() => new Promise<void>((resolveDone) => (done = resolveDone)));
  queues.set(pki.dir, tail);
  await previous;
  try {
    const unlock = await acquireWaiting(pki.dir, purpose, waitMs);
    try {
      await recoverStaged(pki.dir, async (certPem, keyPem) =>
        keyMatches(parseCertificatePem(certPem, ""), (await parsePrivateKeyPem(keyPem, "")).key),
      );
      return await fn();
    } finally {
      await unlock();
    }
  } finally {
    done();
    if (queues.get(pki.dir) === tail) queues.delete(pki.dir);
  }
}

async function leafNames(pki: Pki): Promise<string[]> {
  return (await certificateNames(pki.dir)).filter((name) => name !== CA_NAME);
}

/** A pair as it is on disk, or undefined when neither file exists; refuses a half, garbage, or a key that is not the certificate's. */
async function readPair(dir: string, name: string): Promise<LoadedPair | undefined> {
  const files = pairFiles(dir, name);
  const certPem = await readOptional(files.certFile);
  const keyPem = await readOptional(files.keyFile);
  if (certPem === undefined && keyPem === undefined) return undefined;
  const fixHint =
    name === CA_NAME
      ? "restore the CA's certificate and key from a backup; `airlock pki rotate --ca` starts a new CA, which every node and client must then trust"
      : "restore the pair from a backup, or remove both files to have the certificate issued anew";
  if (certPem === undefined || keyPem === undefined) {
    const missing = certPem === undefined ? files.certFile : files.keyFile;
    throw new AirlockError("PKI_UNREADABLE", `${missing} is missing; its other half is there`, {
      where: missing,
      hint: fixHint,
    });
  }
  const certificate = parseCertificatePem(certPem, files.certFile);
  const key = await parsePrivateKeyPem(keyPem, files.keyFile);
  if (!isP256(certificate)) {
    throw new AirlockError("PKI_KEY_INVALID", "the certificate's key is not an ECDSA P-256 key", {
      where: files.certFile,
      hint: fixHint,
    });
  }
  if (!keyMatches(certificate, key.key)) {
    throw new AirlockError("PKI_KEY_MISMATCH", `${files.keyFile} is not the key of ${files.certFile}`, {
      where: files.keyFile,
      hint: fixHint,
    });
  }
  return { name, files, certificate, key, facts: certificateFacts(certificate) };
}

async function readCa(pki: Pki): Promise<LoadedPair | undefined> {
  const ca = await readPair(pki.dir, CA_NAME);
  if (ca !== undefined && !isCaCertificate(ca.certificate)) {
    throw new AirlockError("PKI_CA_INVALID", `${ca.files.certFile} is not a CA certificate`, {
      where: ca.files.certFile,
      hint: "restore the site CA from a backup; `airlock pki rotate --ca` starts a new CA, which every node and client must then trust",
    });
  }
  return ca;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** A CA is made only for an empty pki/: leaves without their CA mean it was lost, and a new one is the operator's call. */
async function refuseOrphans(pki: Pki): Promise<void> {
  const orphans = await leafNames(pki);
  if (orphans.length > 0) {
    throw new AirlockError(
      "PKI_CA_MISSING",
      `the site CA is gone, but certificates it signed are there: ${orphans.join(", ")}`,
      {
        where: pki.caFile,
        hint: "restore ca.crt and ca.key from a backup; `airlock pki rotate --ca` starts a new CA and re-signs them, and every node and client must then trust the new ca.crt",
      },
    );
  }
}

function noCa(pki: Pki): AirlockError {
  return new AirlockError("PKI_NO_CA", "there is no site CA to rotate certificates under", {
    where: pki.caFile,
    hint: "`airlock install` makes the site CA; `airlock pki rotate --ca` makes one by hand",
  });
}

function requireUsableCa(pki: Pki, ca: LoadedPair): void {
  const status = timeStatus(pki, ca.facts);
  const hint =
    "`airlock pki rotate --ca` starts a new site CA and re-signs every certificate; every node and client must then trust the new ca.crt";
  if (status === "expired") {
    throw new AirlockError("PKI_CA_EXPIRED", `the site CA expired on ${ca.facts.notAfter.toISOString()}`, {
      where: ca.files.certFile,
      hint,
    });
  }
  if (status === "not-yet-valid") {
    throw new AirlockError(
      "PKI_CA_NOT_YET_VALID",
      `the site CA is valid only from ${ca.facts.notBefore.toISOString()}`,
      { where: ca.files.certFile, hint: `check this host's clock; ${hint}` },
    );
  }
  if (status === "expiring") {
    pki.logger?.warn(
      { notAfter: ca.facts.notAfter.toISOString(), caFile: ca.files.certFile },
      "the site CA expires soon: plan `airlock pki rotate --ca`",
    );
  }
}

function signingCa(ca: LoadedPair): SigningCa {
  return { files: ca.files, certificate: ca.certificate, signingKey: ca.key.signingKey };
}

async function issueCa(pki: Pki): Promise<{ pair: LoadedPair; signing: SigningCa }> {
  const key = await generateKey();
  // A name of its own per CA, so a rotated CA never shares a subject with the one it replaces.
  const commonName = `Airlock site CA ${randomBytes(4).toString("hex")}`;
  const certificate = await createCaCertificate(commonName, key, pki.now(), CA_VALIDITY_DAYS);
  const files = pairFiles(pki.dir, CA_NAME);
  await commitPair(pki.dir, CA_NAME, certificate.toString("pem"), key.pem);
  const pair: LoadedPair = {
    name: CA_NAME,
    files,
    certificate,
    key: { key: (await parsePrivateKeyPem(key.pem, files.keyFile)).key, signingKey: key.keys.privateKey },
    facts: certificateFacts(certificate),
  };
  return { pair, signing: signingCa(pair) };
}

async function issueLeaf(pki: Pki, request: NormalizedSpec, ca: SigningCa): Promise<LoadedPair> {
  const key = await generateKey();
  const certificate = await createLeafCertificate(request, key, ca, pki.now());
  const files = pairFiles(pki.dir, request.name);
  await commitPair(pki.dir, request.name, certificate.toString("pem"), key.pem);
  return {
    name: request.name,
    files,
    certificate,
    key: { key: (await parsePrivateKeyPem(key.pem, files.keyFile)).key, signingKey: key.keys.privateKey },
    facts: certificateFacts(certificate),
  };
}

async function reissueReason(
  pki: Pki,
  leaf: LoadedPair,
  ca: SigningCa,
  request: NormalizedSpec,
): Promise<ReissueReason | undefined> {
  if (!(await signedBy(leaf.certificate, ca.certificate))) return "foreign-ca";
  const status = timeStatus(pki, leaf.facts);
  if (status !== "ok") return status;
  if (leaf.facts.kind !== request.kind) return "kind";
  if (leaf.facts.commonName !== request.commonName) return "subject";
  const covered =
    request.required.dnsNames.every((name) => leaf.facts.dnsNames.includes(name)) &&
    request.required.ipAddresses.every((ip) => leaf.facts.ipAddresses.includes(ip));
  return covered ? undefined : "sans";
}

/** Renewal starts `renewWithinDays` before expiry, or at two thirds of a shorter lifetime. */
function timeStatus(pki: Pki, facts: CertificateFacts): "ok" | "expiring" | "expired" | "not-yet-valid" {
  const now = pki.now().getTime();
  const notBefore = facts.notBefore.getTime();
  const notAfter = facts.notAfter.getTime();
  if (now >= notAfter) return "expired";
  if (now < notBefore) return "not-yet-valid";
  const renewWithin = Math.min(pki.renewWithinDays * DAY_MS, (notAfter - notBefore) / 3);
  return notAfter - now <= renewWithin ? "expiring" : "ok";
}

function describe(pki: Pki, pair: LoadedPair, status: CertificateStatus): CertificateInfo {
  const { facts } = pair;
  return {
    name: pair.name,
    kind: facts.kind,
    subject: facts.subject,
    issuer: facts.issuer,
    serialNumber: facts.serialNumber,
    dnsNames: facts.dnsNames,
    ipAddresses: facts.ipAddresses,
    notBefore: facts.notBefore.toISOString(),
    notAfter: facts.notAfter.toISOString(),
    daysLeft: Math.floor((facts.notAfter.getTime() - pki.now().getTime()) / DAY_MS),
    fingerprint: facts.fingerprint,
    status,
    certFile: pair.files.certFile,
    keyFile: pair.files.keyFile,
  };
}

/** A certificate ensure or rotate returns: signed by the current CA, so only time decides its status. */
function ensured(pki: Pki, pair: LoadedPair, action: EnsuredCertificate["action"]): EnsuredCertificate {
  return { ...describe(pki, pair, timeStatus(pki, pair.facts)), caFile: pki.caFile, action };
}

/** The spec a rotated certificate is issued with: what the certificate it replaces carries. */
function requestOf(pair: LoadedPair): NormalizedSpec {
  const { kind, commonName } = pair.facts;
  if (kind === "ca" || kind === "unknown" || commonName === undefined) {
    throw new AirlockError("PKI_CERT_INVALID", `${pair.files.certFile} is not a certificate Airlock issues`, {
      where: pair.files.certFile,
      hint: "remove the pair from pki/ (Airlock issues its certificates again on install)",
    });
  }
  return {
    name: pair.name,
    kind,
    commonName,
    dnsNames: pair.facts.dnsNames,
    ipAddresses: pair.facts.ipAddresses,
    required: { dnsNames: pair.facts.dnsNames, ipAddresses: pair.facts.ipAddresses },
    validityDays: issuedForDays(pair.certificate),
  };
}

function specError(name: string, message: string, hint: string): AirlockError {
  return new AirlockError("PKI_SPEC_INVALID", message, { where: name, hint });
}

function normalizeSpec(spec: CertificateSpec): NormalizedSpec {
  const where = spec.name;
  if (!CERTIFICATE_NAME.test(spec.name) || spec.name === CA_NAME) {
    throw specError(
      where,
      `${JSON.stringify(spec.name)} is not a certificate name`,
      "use lowercase letters, digits and dashes (not `ca`, the site CA's own name)",
    );
  }
  if (!["server", "client", "peer"].includes(spec.kind)) {
    throw specError(
      where,
      `kind ${JSON.stringify(spec.kind)} is not one of server, client, peer`,
      "pick one",
    );
  }
  const commonName = spec.commonName.trim();
  if (commonName.length === 0 || commonName.length > MAX_COMMON_NAME) {
    throw specError(
      where,
      `common name ${JSON.stringify(spec.commonName)} is empty or over ${MAX_COMMON_NAME} characters`,
      `give 1 to ${MAX_COMMON_NAME} characters`,
    );
  }
  const dnsNames = normalizeDnsNames(where, spec.dnsNames ?? []);
  const ipAddresses = normalizeIps(where, spec.ipAddresses ?? []);
  const required = {
    dnsNames: normalizeDnsNames(where, spec.requiredSans?.dnsNames ?? dnsNames),
    ipAddresses: normalizeIps(where, spec.requiredSans?.ipAddresses ?? ipAddresses),
  };
  const notIssued = [
    ...required.dnsNames.filter((name) => !dnsNames.includes(name)),
    ...required.ipAddresses.filter((ip) => !ipAddresses.includes(ip)),
  ];
  if (notIssued.length > 0) {
    // A certificate could never carry them, and every ensure would issue it again.
    throw specError(
      where,
      `required SANs ${notIssued.join(", ")} are not among the SANs to issue`,
      "list every required SAN in dnsNames or ipAddresses too",
    );
  }
  const validityDays = spec.validityDays ?? DEFAULT_VALIDITY_DAYS;
  if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > MAX_VALIDITY_DAYS) {
    throw specError(
      where,
      `a validity of ${validityDays} days is out of range`,
      `give a whole number of days from 1 to ${MAX_VALIDITY_DAYS}`,
    );
  }
  return { name: spec.name, kind: spec.kind, commonName, dnsNames, ipAddresses, required, validityDays };
}

function normalizeDnsNames(where: string, names: string[]): string[] {
  const normalized = [...new Set(names.map((name) => name.trim().toLowerCase()))];
  for (const name of normalized) {
    if (!DNS_NAME.test(name) || name.length > 253) {
      throw specError(
        where,
        `${JSON.stringify(name)} is not a DNS name`,
        "give host names (letters, digits, dashes, dots; `*.` only as the first label); IP addresses go to ipAddresses",
      );
    }
  }
  return normalized;
}

function normalizeIps(where: string, ips: string[]): string[] {
  const normalized = ips.map((ip) => {
    const trimmed = ip.trim();
    if (isIP(trimmed) === 0) {
      throw specError(where, `${JSON.stringify(ip)} is not an IP address`, "give IPv4 or IPv6 addresses");
    }
    const canonical = canonicalIp(trimmed);
    if (canonical === "0.0.0.0" || canonical === "::") {
      throw specError(
        where,
        `${ip} is the unspecified address, which no client dials`,
        "name the host's own addresses and names instead of a wildcard listen address",
      );
    }
    return canonical;
  });
  return [...new Set(normalized)];
}
