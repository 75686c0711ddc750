import { spawn } from "node:child_process";
import {
  chmod,
  copyFile,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  brokerCertificates,
  issueClientCertificate,
  listCertificates,
  openPki,
  registryServerCertificate,
  rotate,
  type EnsuredCertificate,
  type Pki,
  type PkiLogger,
} from "../../../installer/pki/index.js";
import { expectAirlockError, rejection, runTool } from "../../helpers/fixtures.js";

const DAY_MS = 24 * 60 * 60 * 1000;

let dataDir: string;
let pkiDir: string;

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-pki-"));
  pkiDir = join(dataDir, "pki");
});

afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function openssl(args: string[]): Promise<string> {
  const result = await runTool("openssl", args);
  expect(result.code, `openssl ${args.join(" ")}\n${result.stderr}`).toBe(0);
  return result.stdout.toString();
}

/** `openssl verify -CAfile ca.crt`, at a moment of our choosing when the test moved the clock. */
async function opensslVerify(
  certFile: string,
  options: { caFile?: string; purpose?: "sslserver" | "sslclient"; at?: Date } = {},
): Promise<{ ok: boolean; output: string }> {
  const args = ["verify", "-CAfile", options.caFile ?? join(pkiDir, "ca.crt")];
  if (options.purpose !== undefined) args.push("-purpose", options.purpose);
  if (options.at !== undefined) args.push("-attime", String(Math.floor(options.at.getTime() / 1000)));
  const result = await runTool("openssl", [...args, certFile]);
  return { ok: result.code === 0, output: result.stdout.toString() + result.stderr };
}

function certText(certFile: string): Promise<string> {
  return openssl(["x509", "-in", certFile, "-noout", "-text"]);
}

/** The SANs as openssl prints them, in order. */
async function opensslSans(certFile: string): Promise<string[]> {
  const text = await openssl(["x509", "-in", certFile, "-noout", "-ext", "subjectAltName"]);
  return text
    .split("\n")
    .slice(1)
    .join(",")
    .split(",")
    .map((san) => san.trim())
    .filter((san) => san.length > 0);
}

/** Every file in pki/ with its mode and bytes: proves a refused operation wrote nothing. */
async function snapshot(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name);
    out[name] = `${((await stat(path)).mode & 0o777).toString(8)} ${await readFile(path, "base64")}`;
  }
  return out;
}

async function expectFixedAt(dir: string, before: Record<string, string>): Promise<void> {
  expect(await snapshot(dir)).toEqual(before);
}

/** A mutable clock for openPki's `now`. */
function clockAt(start: Date): { now: () => Date; set: (date: Date) => void } {
  let current = start;
  return { now: () => current, set: (date) => (current = date) };
}

async function generateP256Key(path: string): Promise<void> {
  await openssl(["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path]);
}

/** A pid that is certainly no live process: a child that has exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await new Promise((resolve) => child.on("exit", resolve));
  return child.pid!;
}

describe("the site PKI", () => {
  describe("issuing", () => {
    it("makes a P-256 site CA and leaves of every kind that openssl verifies, with SANs, EKU and key usage", async () => {
      const pki = openPki(dataDir);
      const registry = await registryServerCertificate(pki, {
        hosts: ["registry.site.example:5443", "10.20.30.40", "[fd00::5]:5443", "localhost"],
      });
      const broker = await brokerCertificates(pki, { replicas: 2 });
      const client = await issueClientCertificate(pki, "console");

      const caText = await certText(join(pkiDir, "ca.crt"));
      expect(caText).toMatch(/CA:TRUE, pathlen:0/);
      expect(caText).toMatch(/X509v3 Key Usage: critical\s+Certificate Sign, CRL Sign/);
      expect(caText).toMatch(/NIST CURVE: P-256/);
      expect(caText).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
      expect(caText).toMatch(/Subject: CN = Airlock site CA [0-9a-f]{8}, O = Airlock/);

      const kinds: [EnsuredCertificate, string][] = [
        [registry, "TLS Web Server Authentication\n"],
        [broker.peer, "TLS Web Server Authentication, TLS Web Client Authentication\n"],
        [broker.server, "TLS Web Server Authentication\n"],
        [client, "TLS Web Client Authentication\n"],
      ];
      for (const [certificate, eku] of kinds) {
        expect(certificate.action).toBe("issued");
        expect(certificate.status).toBe("ok");
        expect(certificate.caFile).toBe(join(pkiDir, "ca.crt"));
        expect(certificate.certFile).toBe(join(pkiDir, `${certificate.name}.crt`));
        expect(certificate.keyFile).toBe(join(pkiDir, `${certificate.name}.key`));
        expect(await opensslVerify(certificate.certFile)).toEqual({
          ok: true,
          output: `${certificate.certFile}: OK\n`,
        });
        const text = await certText(certificate.certFile);
        expect(text).toMatch(/NIST CURVE: P-256/);
        expect(text).toMatch(/Signature Algorithm: ecdsa-with-SHA256/);
        expect(text).toMatch(/X509v3 Basic Constraints: critical\s+CA:FALSE/);
        expect(text).toMatch(/X509v3 Key Usage: critical\s+Digital Signature\n/);
        expect(text).toContain(`X509v3 Extended Key Usage: \n                ${eku}`);
        expect(text).toMatch(/X509v3 Authority Key Identifier/);
        // The key on disk is the certificate's: openssl derives the same public key from both.
        expect(await openssl(["pkey", "-in", certificate.keyFile, "-pubout"])).toBe(
          await openssl(["x509", "-in", certificate.certFile, "-noout", "-pubkey"]),
        );
        const fingerprint = await openssl([
          "x509",
          "-in",
          certificate.certFile,
          "-noout",
          "-fingerprint",
          "-sha256",
        ]);
        expect(certificate.fingerprint).toBe(
          `sha256:${fingerprint.trim().split("=")[1]!.replaceAll(":", "").toLowerCase()}`,
        );
      }

      // EKU is enforced the way TLS stacks read it: a server certificate is no client's and back.
      expect((await opensslVerify(registry.certFile, { purpose: "sslserver" })).ok).toBe(true);
      expect((await opensslVerify(registry.certFile, { purpose: "sslclient" })).ok).toBe(false);
      expect((await opensslVerify(client.certFile, { purpose: "sslclient" })).ok).toBe(true);
      expect((await opensslVerify(client.certFile, { purpose: "sslserver" })).ok).toBe(false);
      expect((await opensslVerify(broker.peer.certFile, { purpose: "sslserver" })).ok).toBe(true);
      expect((await opensslVerify(broker.peer.certFile, { purpose: "sslclient" })).ok).toBe(true);

      expect(await opensslSans(registry.certFile)).toEqual([
        "DNS:localhost",
        "DNS:registry.site.example",
        "IP Address:127.0.0.1",
        "IP Address:10.20.30.40",
        "IP Address:FD00:0:0:0:0:0:0:5",
      ]);
      expect(registry.dnsNames).toEqual(["localhost", "registry.site.example"]);
      expect(registry.ipAddresses).toEqual(["127.0.0.1", "10.20.30.40", "fd00::5"]);

      const ordinals = [0, 1, 2, 3].flatMap((n) => [
        `DNS:msgbroker-${n}.msgbroker-headless.hubble-system.svc`,
        `DNS:msgbroker-${n}.msgbroker-headless.hubble-system.svc.cluster.local`,
      ]);
      expect(await opensslSans(broker.peer.certFile)).toEqual([
        ...ordinals,
        "DNS:msgbroker-headless",
        "DNS:msgbroker-headless.hubble-system",
        "DNS:msgbroker-headless.hubble-system.svc",
        "DNS:msgbroker-headless.hubble-system.svc.cluster.local",
        "DNS:*.msgbroker-headless.hubble-system.svc",
        "DNS:*.msgbroker-headless.hubble-system.svc.cluster.local",
      ]);
      expect(await opensslSans(broker.server.certFile)).toEqual([
        "DNS:msgbroker",
        "DNS:msgbroker.hubble-system",
        "DNS:msgbroker.hubble-system.svc",
        "DNS:msgbroker.hubble-system.svc.cluster.local",
        "DNS:*.msgbroker-headless.hubble-system.svc",
        "DNS:*.msgbroker-headless.hubble-system.svc.cluster.local",
      ]);
      expect(await opensslSans(client.certFile)).toEqual([]);
      expect(await certText(client.certFile)).toMatch(/Subject: CN = console, O = Airlock/);
    });

    it("writes the directory 0700, keys 0600 PKCS#8, certificates 0644, and leaves no temp files", async () => {
      await mkdir(pkiDir, { recursive: true, mode: 0o755 });
      await chmod(pkiDir, 0o755);
      const pki = openPki(dataDir);
      await registryServerCertificate(pki, { hosts: [] });
      await issueClientCertificate(pki, "console");
      expect((await stat(pkiDir)).mode & 0o777).toBe(0o700);
      expect((await readdir(pkiDir)).sort()).toEqual([
        "ca.crt",
        "ca.key",
        "console.crt",
        "console.key",
        "registry.crt",
        "registry.key",
      ]);
      for (const name of ["ca", "console", "registry"]) {
        expect((await stat(join(pkiDir, `${name}.key`))).mode & 0o777).toBe(0o600);
        expect((await stat(join(pkiDir, `${name}.crt`))).mode & 0o777).toBe(0o644);
        expect(await readFile(join(pkiDir, `${name}.key`), "utf8")).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
        expect(await openssl(["pkey", "-in", join(pkiDir, `${name}.key`), "-noout", "-text"])).toMatch(
          /NIST CURVE: P-256/,
        );
      }
    });

    it("is idempotent: a second ensure keeps every certificate, same serial, same bytes", async () => {
      const ensureAll = async (pki: Pki): Promise<EnsuredCertificate[]> => {
        const ca = await pki.ensureCa();
        const registry = await registryServerCertificate(pki, { hosts: ["10.0.0.5"] });
        const broker = await brokerCertificates(pki, { replicas: 2 });
        return [ca, registry, broker.peer, broker.server, await issueClientCertificate(pki, "console")];
      };
      const first = await ensureAll(openPki(dataDir));
      const before = await snapshot(pkiDir);
      const again = openPki(dataDir);
      const second = await ensureAll(again);
      expect(second.map((c) => c.action)).toEqual(["kept", "kept", "kept", "kept", "kept"]);
      expect(second.map((c) => [c.name, c.serialNumber, c.fingerprint])).toEqual(
        first.map((c) => [c.name, c.serialNumber, c.fingerprint]),
      );
      await expectFixedAt(pkiDir, before);
      // Fewer hosts than the certificate names is still covered.
      expect((await registryServerCertificate(again, { hosts: [] })).action).toBe("kept");
    });

    it("two ensures at once in one process issue once and agree", async () => {
      const pki = openPki(dataDir);
      const [a, b] = await Promise.all([
        issueClientCertificate(pki, "console"),
        issueClientCertificate(openPki(dataDir), "console"),
      ]);
      expect([a.action, b.action].sort()).toEqual(["issued", "kept"]);
      expect(a.fingerprint).toBe(b.fingerprint);
      expect(await opensslVerify(a.certFile)).toMatchObject({ ok: true });
    });

    it("logs what it issues, and why it re-issued", async () => {
      const lines: { level: string; message: string; fields: Record<string, unknown> }[] = [];
      const logger: PkiLogger = {
        info: (fields, message) => lines.push({ level: "info", message, fields }),
        warn: (fields, message) => lines.push({ level: "warn", message, fields }),
      };
      const clock = clockAt(new Date());
      const pki = openPki(dataDir, { now: clock.now, logger });
      await issueClientCertificate(pki, "console", { validityDays: 90 });
      clock.set(new Date(clock.now().getTime() + 80 * DAY_MS));
      await issueClientCertificate(pki, "console", { validityDays: 90 });
      expect(lines.map((line) => [line.level, line.message, line.fields.name, line.fields.reason])).toEqual([
        ["info", "issued a certificate", "console", "new"],
        ["info", "re-issued a certificate", "console", "expiring"],
      ]);
    });
  });

  describe("re-issuing", () => {
    it("keeps a certificate until it is within 30 days of expiry, then issues it anew", async () => {
      const start = new Date();
      const clock = clockAt(start);
      const pki = openPki(dataDir, { now: clock.now });
      const first = await registryServerCertificate(pki, { hosts: ["10.0.0.5"], validityDays: 365 });
      const notAfter = new Date(first.notAfter).getTime();

      clock.set(new Date(notAfter - 31 * DAY_MS));
      const kept = await registryServerCertificate(pki, { hosts: ["10.0.0.5"], validityDays: 365 });
      expect(kept).toMatchObject({ action: "kept", serialNumber: first.serialNumber, daysLeft: 31 });

      clock.set(new Date(notAfter - 29 * DAY_MS));
      expect((await listCertificates(pki)).find((c) => c.name === "registry")?.status).toBe("expiring");
      const renewed = await registryServerCertificate(pki, { hosts: ["10.0.0.5"], validityDays: 365 });
      expect(renewed).toMatchObject({ action: "reissued", reason: "expiring", status: "ok", daysLeft: 365 });
      expect(renewed.serialNumber).not.toBe(first.serialNumber);
      expect(await opensslVerify(renewed.certFile, { at: clock.now() })).toMatchObject({ ok: true });

      clock.set(new Date(new Date(renewed.notAfter).getTime() + DAY_MS));
      expect((await listCertificates(pki)).find((c) => c.name === "registry")).toMatchObject({
        status: "expired",
        daysLeft: -1,
      });
      const afterExpiry = await registryServerCertificate(pki, { hosts: ["10.0.0.5"], validityDays: 365 });
      expect(afterExpiry).toMatchObject({ action: "reissued", reason: "expired" });
      expect(await opensslVerify(afterExpiry.certFile, { at: clock.now() })).toMatchObject({ ok: true });
    });

    it("renews a short-lived certificate at two thirds of its life, not on every run", async () => {
      const clock = clockAt(new Date());
      const pki = openPki(dataDir, { now: clock.now });
      const first = await issueClientCertificate(pki, "probe", { validityDays: 3 });
      expect((await issueClientCertificate(pki, "probe", { validityDays: 3 })).action).toBe("kept");
      clock.set(new Date(new Date(first.notAfter).getTime() - 0.9 * DAY_MS));
      expect(await issueClientCertificate(pki, "probe", { validityDays: 3 })).toMatchObject({
        action: "reissued",
        reason: "expiring",
      });
    });

    it("re-issues the registry certificate when a listen address is added", async () => {
      const pki = openPki(dataDir);
      const first = await registryServerCertificate(pki, { hosts: ["10.0.0.5:5443"] });
      const grown = await registryServerCertificate(pki, { hosts: ["10.0.0.5:5443", "registry.site:5443"] });
      expect(grown).toMatchObject({ action: "reissued", reason: "sans" });
      expect(grown.serialNumber).not.toBe(first.serialNumber);
      expect(await opensslSans(grown.certFile)).toEqual([
        "DNS:localhost",
        "DNS:registry.site",
        "IP Address:127.0.0.1",
        "IP Address:10.0.0.5",
      ]);
    });

    it("keeps the broker's peer certificate while replicas grow into the headroom, re-issues beyond it", async () => {
      const pki = openPki(dataDir);
      const first = await brokerCertificates(pki, { replicas: 2 });
      for (const replicas of [1, 3, 4]) {
        const again = await brokerCertificates(pki, { replicas });
        expect(again.peer).toMatchObject({ action: "kept", serialNumber: first.peer.serialNumber });
        expect(again.server).toMatchObject({ action: "kept", serialNumber: first.server.serialNumber });
      }
      const grown = await brokerCertificates(pki, { replicas: 5 });
      expect(grown.peer).toMatchObject({ action: "reissued", reason: "sans" });
      expect(grown.server.action).toBe("kept");
      const sans = await opensslSans(grown.peer.certFile);
      for (let n = 0; n < 7; n++) {
        expect(sans).toContain(`DNS:msgbroker-${n}.msgbroker-headless.hubble-system.svc`);
        expect(sans).toContain(`DNS:msgbroker-${n}.msgbroker-headless.hubble-system.svc.cluster.local`);
      }
      expect(sans).not.toContain("DNS:msgbroker-7.msgbroker-headless.hubble-system.svc");
      expect(await opensslVerify(grown.peer.certFile, { purpose: "sslserver" })).toMatchObject({ ok: true });
    });

    it("honours the broker's namespace, service names, headroom and extra SANs", async () => {
      const pki = openPki(dataDir);
      const { peer, server } = await brokerCertificates(pki, {
        replicas: 1,
        headroom: 0,
        namespace: "plane",
        service: "nats",
        headless: "nats-peers",
        extraSans: ["127.0.0.1", "broker.site.example"],
      });
      expect(peer.name).toBe("nats-peer");
      expect(server.name).toBe("nats-server");
      expect(peer.dnsNames).toEqual([
        "nats-0.nats-peers.plane.svc",
        "nats-0.nats-peers.plane.svc.cluster.local",
        "nats-peers",
        "nats-peers.plane",
        "nats-peers.plane.svc",
        "nats-peers.plane.svc.cluster.local",
        "*.nats-peers.plane.svc",
        "*.nats-peers.plane.svc.cluster.local",
        "broker.site.example",
      ]);
      expect(peer.ipAddresses).toEqual(["127.0.0.1"]);
      expect(server.dnsNames).toEqual([
        "nats",
        "nats.plane",
        "nats.plane.svc",
        "nats.plane.svc.cluster.local",
        "*.nats-peers.plane.svc",
        "*.nats-peers.plane.svc.cluster.local",
        "broker.site.example",
      ]);
      expect(server.ipAddresses).toEqual(["127.0.0.1"]);
      await expectAirlockError(brokerCertificates(pki, { replicas: 0 }), "PKI_SPEC_INVALID", "replicas");
      await expectAirlockError(
        brokerCertificates(pki, { replicas: 2, headroom: -1 }),
        "PKI_SPEC_INVALID",
        "headroom",
      );
    });

    it("detects a certificate from another CA and re-issues it under the site CA", async () => {
      const otherDataDir = await mkdtemp(join(tmpdir(), "airlock-pki-other-"));
      try {
        const pki = openPki(dataDir);
        await registryServerCertificate(pki, { hosts: [] });
        const foreign = await registryServerCertificate(openPki(otherDataDir), { hosts: [] });
        await copyFile(foreign.certFile, join(pkiDir, "registry.crt"));
        await copyFile(foreign.keyFile, join(pkiDir, "registry.key"));
        expect((await opensslVerify(join(pkiDir, "registry.crt"))).ok).toBe(false);

        expect((await listCertificates(pki)).find((c) => c.name === "registry")).toMatchObject({
          status: "foreign-ca",
          fingerprint: foreign.fingerprint,
        });
        const fixed = await registryServerCertificate(pki, { hosts: [] });
        expect(fixed).toMatchObject({ action: "reissued", reason: "foreign-ca" });
        expect(await opensslVerify(fixed.certFile)).toMatchObject({ ok: true });
        expect((await listCertificates(pki)).map((c) => c.status)).toEqual(["ok", "ok"]);
      } finally {
        await rm(otherDataDir, { recursive: true, force: true });
      }
    });
  });

  describe("status", () => {
    it("lists nothing, and creates nothing, where there is no PKI", async () => {
      expect(await listCertificates(openPki(dataDir))).toEqual([]);
      expect(await readdir(dataDir)).toEqual([]);
    });

    it("lists the CA first, then each leaf: subject, issuer, SANs, dates, days left, fingerprint, status", async () => {
      const clock = clockAt(new Date("2030-01-01T00:00:00Z"));
      const pki = openPki(dataDir, { now: clock.now });
      const ca = await pki.ensureCa();
      const registry = await registryServerCertificate(pki, { hosts: ["10.0.0.5"], validityDays: 100 });
      await issueClientCertificate(pki, "console", { validityDays: 365 });
      clock.set(new Date("2030-03-20T00:00:00Z"));
      const listed = await listCertificates(pki);
      expect(listed.map((c) => [c.name, c.kind, c.status, c.daysLeft])).toEqual([
        ["ca", "ca", "ok", 3650 - 78],
        ["console", "client", "ok", 365 - 78],
        ["registry", "server", "expiring", 100 - 78],
      ]);
      expect(listed[2]).toEqual({
        name: "registry",
        kind: "server",
        subject: "CN=Airlock registry, O=Airlock",
        issuer: ca.subject,
        serialNumber: registry.serialNumber,
        dnsNames: ["localhost"],
        ipAddresses: ["127.0.0.1", "10.0.0.5"],
        notBefore: "2029-12-31T23:55:00.000Z",
        notAfter: "2030-04-11T00:00:00.000Z",
        daysLeft: 22,
        fingerprint: registry.fingerprint,
        status: "expiring",
        certFile: join(pkiDir, "registry.crt"),
        keyFile: join(pkiDir, "registry.key"),
      });
    });
  });

  describe("rotate", () => {
    it("re-issues the named certificates with fresh keys and the same SANs, kind and lifetime", async () => {
      const pki = openPki(dataDir);
      const registry = await registryServerCertificate(pki, { hosts: ["10.0.0.5"], validityDays: 200 });
      const client = await issueClientCertificate(pki, "console");
      const keyBefore = await readFile(registry.keyFile, "utf8");

      const result = await rotate(pki, { names: ["registry"] });
      expect(result.ca).toBeUndefined();
      expect(result.certificates).toHaveLength(1);
      const rotated = result.certificates[0]!;
      expect(rotated).toMatchObject({
        name: "registry",
        action: "rotated",
        kind: "server",
        dnsNames: registry.dnsNames,
        ipAddresses: registry.ipAddresses,
        subject: registry.subject,
      });
      expect(rotated.serialNumber).not.toBe(registry.serialNumber);
      expect(new Date(rotated.notAfter).getTime() - new Date(rotated.notBefore).getTime()).toBe(
        new Date(registry.notAfter).getTime() - new Date(registry.notBefore).getTime(),
      );
      expect(await readFile(registry.keyFile, "utf8")).not.toBe(keyBefore);
      expect(await opensslVerify(rotated.certFile, { purpose: "sslserver" })).toMatchObject({ ok: true });
      expect((await issueClientCertificate(pki, "console")).serialNumber).toBe(client.serialNumber);

      const all = await rotate(pki);
      expect(all.certificates.map((c) => c.name)).toEqual(["console", "registry"]);
    });

    it("with ca, makes a new site CA and re-signs every leaf; the old CA no longer verifies them", async () => {
      const pki = openPki(dataDir);
      const oldCa = await pki.ensureCa();
      await registryServerCertificate(pki, { hosts: [] });
      await brokerCertificates(pki, { replicas: 2 });
      const oldCaFile = join(dataDir, "old-ca.crt");
      await copyFile(oldCa.certFile, oldCaFile);

      const result = await rotate(pki, { ca: true });
      expect(result.ca).toMatchObject({ name: "ca", kind: "ca", action: "rotated", status: "ok" });
      expect(result.ca!.fingerprint).not.toBe(oldCa.fingerprint);
      expect(result.ca!.subject).not.toBe(oldCa.subject);
      expect(result.certificates.map((c) => c.name)).toEqual([
        "msgbroker-peer",
        "msgbroker-server",
        "registry",
      ]);
      for (const certificate of result.certificates) {
        expect(certificate.issuer).toBe(result.ca!.subject);
        expect(await opensslVerify(certificate.certFile)).toMatchObject({ ok: true });
        expect((await opensslVerify(certificate.certFile, { caFile: oldCaFile })).ok).toBe(false);
      }
      expect((await listCertificates(pki)).every((c) => c.status === "ok")).toBe(true);
      expect((await brokerCertificates(pki, { replicas: 2 })).peer.action).toBe("kept");
    });

    it("refuses unknown names, --name with --ca, and rotating without a CA, writing nothing", async () => {
      const empty = openPki(dataDir);
      await expectAirlockError(rotate(empty), "PKI_NO_CA", join(pkiDir, "ca.crt"));
      expect(await readdir(dataDir)).toEqual([]);

      const pki = openPki(dataDir);
      await issueClientCertificate(pki, "console");
      const before = await snapshot(pkiDir);
      const unknown = await expectAirlockError(
        rotate(pki, { names: ["console", "nope"] }),
        "PKI_UNKNOWN_CERTIFICATE",
        "nope",
      );
      expect(unknown.hint).toContain("console");
      expect(unknown.exitCode).toBe(2);
      expect(await rejection(rotate(pki, { names: ["console"], ca: true }))).toMatchObject({
        code: "USAGE",
        exitCode: 2,
      });
      await expectFixedAt(pkiDir, before);
    });

    it("is the way out of an expired CA", async () => {
      const past = new Date(Date.now() - 3651 * DAY_MS);
      const old = openPki(dataDir, { now: () => past });
      await registryServerCertificate(old, { hosts: [] });
      const pki = openPki(dataDir);
      expect((await listCertificates(pki)).map((c) => c.status)).toEqual(["expired", "expired"]);
      const result = await rotate(pki, { ca: true });
      expect(result.certificates.map((c) => c.name)).toEqual(["registry"]);
      expect((await listCertificates(pki)).map((c) => c.status)).toEqual(["ok", "ok"]);
      expect(await opensslVerify(join(pkiDir, "registry.crt"))).toMatchObject({ ok: true });
    });
  });

  describe("bad material in pki/ gets a typed error and nothing written", () => {
    let pki: Pki;
    let before: Record<string, string>;

    beforeEach(async () => {
      pki = openPki(dataDir);
      await registryServerCertificate(pki, { hosts: [] });
      await issueClientCertificate(pki, "console");
    });

    /** Runs every operation against the damaged pki/ and expects each to refuse it the same way. */
    async function expectRefused(code: string, where: string, operations: (() => Promise<unknown>)[]) {
      before = await snapshot(pkiDir);
      for (const operation of operations) {
        const error = await expectAirlockError(operation(), code);
        expect(error.where).toBe(where);
        expect(error.exitCode).toBe(1);
        await expectFixedAt(pkiDir, before);
      }
    }

    it("an expired CA: PKI_CA_EXPIRED, and no new CA in its place", async () => {
      await rm(pkiDir, { recursive: true });
      const past = new Date(Date.now() - 3651 * DAY_MS);
      await registryServerCertificate(openPki(dataDir, { now: () => past }), { hosts: [] });
      const where = join(pkiDir, "ca.crt");
      await expectRefused("PKI_CA_EXPIRED", where, [
        () => pki.ensureCa(),
        () => registryServerCertificate(pki, { hosts: [] }),
        () => issueClientCertificate(pki, "new-client"),
        () => rotate(pki),
      ]);
      const error = await expectAirlockError(pki.ensureCa(), "PKI_CA_EXPIRED");
      expect(error.hint).toContain("airlock pki rotate --ca");
    });

    it("a CA not yet valid (the clock went back): PKI_CA_NOT_YET_VALID", async () => {
      const behind = openPki(dataDir, { now: () => new Date(Date.now() - DAY_MS) });
      await expectRefused("PKI_CA_NOT_YET_VALID", join(pkiDir, "ca.crt"), [() => behind.ensureCa()]);
    });

    it("a CA key that is not the CA certificate's: PKI_KEY_MISMATCH", async () => {
      await generateP256Key(join(pkiDir, "ca.key"));
      await chmod(join(pkiDir, "ca.key"), 0o600);
      await expectRefused("PKI_KEY_MISMATCH", join(pkiDir, "ca.key"), [
        () => pki.ensureCa(),
        () => registryServerCertificate(pki, { hosts: [] }),
        () => listCertificates(pki),
        () => rotate(pki),
      ]);
    });

    it("a leaf key that is not its certificate's: PKI_KEY_MISMATCH", async () => {
      await copyFile(join(pkiDir, "console.key"), join(pkiDir, "registry.key"));
      await expectRefused("PKI_KEY_MISMATCH", join(pkiDir, "registry.key"), [
        () => registryServerCertificate(pki, { hosts: [] }),
        () => listCertificates(pki),
        () => rotate(pki, { names: ["registry"] }),
        () => rotate(pki, { ca: true }),
      ]);
    });

    it.each([
      ["ca.crt", "not a certificate\n"],
      ["ca.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"],
      ["ca.key", "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----\n"],
      ["registry.crt", ""],
      ["registry.key", "garbage"],
    ])("garbage in %s: PKI_UNREADABLE", async (file, content) => {
      await writeFile(join(pkiDir, file), content);
      await expectRefused("PKI_UNREADABLE", join(pkiDir, file), [
        () => (file.startsWith("ca.") ? pki.ensureCa() : registryServerCertificate(pki, { hosts: [] })),
        () => listCertificates(pki),
      ]);
    });

    it("a CA key gone: PKI_UNREADABLE, never a new CA made silently", async () => {
      await rm(join(pkiDir, "ca.key"));
      await expectRefused("PKI_UNREADABLE", join(pkiDir, "ca.key"), [
        () => pki.ensureCa(),
        () => issueClientCertificate(pki, "console"),
        () => rotate(pki),
      ]);
    });

    it("a CA gone while its leaves remain: PKI_CA_MISSING, never a new CA made silently", async () => {
      await rm(join(pkiDir, "ca.crt"));
      await rm(join(pkiDir, "ca.key"));
      await expectRefused("PKI_CA_MISSING", join(pkiDir, "ca.crt"), [
        () => pki.ensureCa(),
        () => issueClientCertificate(pki, "console"),
        () => issueClientCertificate(pki, "another"),
      ]);
      expect((await listCertificates(pki)).map((c) => c.status)).toEqual(["foreign-ca", "foreign-ca"]);
      expect((await rotate(pki, { ca: true })).certificates.map((c) => c.name)).toEqual([
        "console",
        "registry",
      ]);
      expect((await listCertificates(pki)).map((c) => c.status)).toEqual(["ok", "ok", "ok"]);
    });

    it("a certificate that is not a CA in the CA's place: PKI_CA_INVALID", async () => {
      await copyFile(join(pkiDir, "console.crt"), join(pkiDir, "ca.crt"));
      await copyFile(join(pkiDir, "console.key"), join(pkiDir, "ca.key"));
      await expectRefused("PKI_CA_INVALID", join(pkiDir, "ca.crt"), [
        () => pki.ensureCa(),
        () => listCertificates(pki),
      ]);
    });

    it("a P-384 pair in a leaf's place: PKI_KEY_INVALID", async () => {
      await openssl([
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-384",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=registry",
        "-keyout",
        join(pkiDir, "registry.key"),
        "-out",
        join(pkiDir, "registry.crt"),
      ]);
      await expectRefused("PKI_KEY_INVALID", join(pkiDir, "registry.key"), [
        () => registryServerCertificate(pki, { hosts: [] }),
        () => listCertificates(pki),
      ]);
    });

    it.each([
      ["a name with a slash", { name: "../x" }],
      ["the CA's name", { name: "ca" }],
      ["an unknown kind", { kind: "admin" }],
      ["a bad DNS name", { dnsNames: ["under_score.example"] }],
      ["a bad IP", { ipAddresses: ["10.0.0.300"] }],
      ["the unspecified address", { ipAddresses: ["0.0.0.0"] }],
      ["a zero validity", { validityDays: 0 }],
      ["an empty common name", { commonName: " " }],
      ["a required SAN not issued", { dnsNames: ["a.example"], requiredSans: { dnsNames: ["b.example"] } }],
    ])("a spec with %s: PKI_SPEC_INVALID, exit 2", async (_what, override) => {
      before = await snapshot(pkiDir);
      const spec = { name: "probe", kind: "client" as const, commonName: "probe", ...override };
      const error = await expectAirlockError(
        pki.ensureCertificate(spec as Parameters<typeof pki.ensureCertificate>[0]),
        "PKI_SPEC_INVALID",
      );
      expect(error.exitCode).toBe(2);
      await expectFixedAt(pkiDir, before);
    });

    it("a registry host that is the unspecified address is refused", async () => {
      await expectAirlockError(
        registryServerCertificate(pki, { hosts: ["0.0.0.0:5443"] }),
        "PKI_SPEC_INVALID",
        "0.0.0.0",
      );
    });
  });

  describe("crash safety and locking", () => {
    /** The registry pair as it is, and a newer one for it staged the way a crash would leave it. */
    async function stagedRotation(): Promise<{ oldFingerprint: string; newFingerprint: string }> {
      const pki = openPki(dataDir);
      const old = await registryServerCertificate(pki, { hosts: [] });
      await copyFile(old.certFile, join(dataDir, "old.crt"));
      await copyFile(old.keyFile, join(dataDir, "old.key"));
      const [rotated] = (await rotate(pki, { names: ["registry"] })).certificates;
      await rename(rotated!.certFile, `${rotated!.certFile}.next`);
      await rename(rotated!.keyFile, `${rotated!.keyFile}.next`);
      await copyFile(join(dataDir, "old.crt"), old.certFile);
      await copyFile(join(dataDir, "old.key"), old.keyFile);
      return { oldFingerprint: old.fingerprint, newFingerprint: rotated!.fingerprint };
    }

    async function registryFingerprint(): Promise<string | undefined> {
      return (await listCertificates(openPki(dataDir))).find((c) => c.name === "registry")?.fingerprint;
    }

    it("a pair staged whole is committed by the next operation", async () => {
      const { newFingerprint } = await stagedRotation();
      await writeFile(join(pkiDir, "registry.key.next.12345.tmp"), "half");
      expect(await registryFingerprint()).toBe(newFingerprint);
      expect((await readdir(pkiDir)).filter((name) => /\.(next|tmp)/.test(name))).toEqual([]);
    });

    it("a key renamed into place before the crash gets its staged certificate", async () => {
      const { newFingerprint } = await stagedRotation();
      await rename(join(pkiDir, "registry.key.next"), join(pkiDir, "registry.key"));
      expect(await registryFingerprint()).toBe(newFingerprint);
      expect(await opensslVerify(join(pkiDir, "registry.crt"))).toMatchObject({ ok: true });
    });

    it("a certificate staged without its key is dropped: the old pair stays", async () => {
      const { oldFingerprint } = await stagedRotation();
      await rm(join(pkiDir, "registry.key.next"));
      expect(await registryFingerprint()).toBe(oldFingerprint);
      expect((await readdir(pkiDir)).filter((name) => name.includes(".next"))).toEqual([]);
    });

    it("a writer waits for no one: a live process holding pki/.lock gives PKI_LOCKED, a reader waits it out; a dead one's lock is taken over", async () => {
      const pki = openPki(dataDir);
      await pki.ensureCa();
      await writeFile(join(pkiDir, ".lock"), `${process.ppid} issuing registry\n`);
      const busy = await expectAirlockError(issueClientCertificate(pki, "console"), "PKI_LOCKED");
      expect(busy.message).toContain(String(process.ppid));
      expect(await readdir(pkiDir)).not.toContain("console.crt");

      // A reader waits the live holder out (bounded) instead of failing.
      let settled = false;
      const listed = listCertificates(pki).finally(() => (settled = true));
      await new Promise((resolveLater) => setTimeout(resolveLater, 200));
      expect(settled, "the listing ended while the lock was held").toBe(false);
      await rm(join(pkiDir, ".lock"));
      expect((await listed).map((certificate) => certificate.name)).toEqual(["ca"]);

      await writeFile(join(pkiDir, ".lock"), `${await deadPid()} issuing registry\n`);
      expect((await issueClientCertificate(pki, "console")).action).toBe("issued");
      expect((await readdir(pkiDir)).sort()).toEqual(["ca.crt", "ca.key", "console.crt", "console.key"]);
    });
  });
});
