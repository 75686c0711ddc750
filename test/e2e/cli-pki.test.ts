/**
 * `airlock pki status|rotate` through the built CLI: JSON on stdout with --json, a table without,
 * errors as `error CODE: …` with where and hint on stderr, exit 0 ok, 1 failed, 2 usage.
 */
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  brokerCertificates,
  openPki,
  registryServerCertificate,
  type CertificateInfo,
  type RotateResult,
} from "../../installer/pki/index.js";
import { runCli, runTool, type CliResult } from "../helpers/fixtures.js";

let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-cli-pki-"));
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function ok(args: string[]): Promise<CliResult> {
  const result = await runCli(["--data-dir", dataDir, ...args]);
  expect(result.code, `airlock ${args.join(" ")}\n${result.stderr}`).toBe(0);
  return result;
}

async function status(): Promise<{ dir: string; certificates: CertificateInfo[] }> {
  return JSON.parse((await ok(["pki", "status", "--json"])).stdout) as {
    dir: string;
    certificates: CertificateInfo[];
  };
}

describe("airlock pki, run as a user", () => {
  it("status on a data dir without a PKI lists nothing and creates nothing", async () => {
    expect(await status()).toEqual({ dir: join(dataDir, "pki"), certificates: [] });
    expect((await ok(["pki", "status"])).stdout).toMatch(/^no certificates in /);
    expect(await readdir(dataDir)).toEqual([]);
  });

  it("status --json lists the CA and every leaf the installer issued; the text form names them", async () => {
    const pki = openPki(dataDir);
    const registry = await registryServerCertificate(pki, { hosts: ["10.0.0.5:5443"] });
    await brokerCertificates(pki, { replicas: 2 });
    const listed = await status();
    expect(listed.certificates.map((c) => [c.name, c.kind, c.status])).toEqual([
      ["ca", "ca", "ok"],
      ["msgbroker-peer", "peer", "ok"],
      ["msgbroker-server", "server", "ok"],
      ["registry", "server", "ok"],
    ]);
    expect(listed.certificates[3]).toMatchObject({
      serialNumber: registry.serialNumber,
      fingerprint: registry.fingerprint,
      dnsNames: ["localhost"],
      ipAddresses: ["127.0.0.1", "10.0.0.5"],
      notAfter: registry.notAfter,
    });
    const text = (await ok(["pki", "status"])).stdout;
    expect(text).toMatch(/^NAME +KIND +STATUS +EXPIRES$/m);
    expect(text).toMatch(
      /^registry +server +ok +\d{4}-\d\d-\d\d \(\d+ days\) +CN=Airlock registry, O=Airlock$/m,
    );
    expect(text).toContain("  SANs: DNS:localhost, IP:127.0.0.1, IP:10.0.0.5");
  });

  it("rotate --name re-issues one certificate; rotate --ca re-signs them all under a new CA", async () => {
    const before = await status();
    const rotated = JSON.parse(
      (await ok(["--json", "pki", "rotate", "--name", "registry"])).stdout,
    ) as RotateResult;
    expect(rotated.certificates.map((c) => c.name)).toEqual(["registry"]);
    expect(rotated.certificates[0]!.serialNumber).not.toBe(before.certificates[3]!.serialNumber);
    const verified = await runTool("openssl", [
      "verify",
      "-CAfile",
      join(dataDir, "pki", "ca.crt"),
      join(dataDir, "pki", "registry.crt"),
    ]);
    expect(verified.code, verified.stderr).toBe(0);

    const text = (await ok(["pki", "rotate", "--ca"])).stdout;
    expect(text).toMatch(/^new site CA sha256:[0-9a-f]{64}, valid until \d{4}-\d\d-\d\d$/m);
    expect(text).toContain(`must now trust ${join(dataDir, "pki", "ca.crt")}`);
    expect(text).toMatch(/^rotated msgbroker-peer: serial [0-9a-f]+/m);
    const after = await status();
    expect(after.certificates[0]!.fingerprint).not.toBe(before.certificates[0]!.fingerprint);
    expect(after.certificates.every((c) => c.status === "ok")).toBe(true);
  });

  it("prints typed errors with where and hint, no stack: exit 2 for a usage mistake, 1 for bad material", async () => {
    const unknown = await runCli(["--data-dir", dataDir, "pki", "rotate", "--name", "nope"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^error PKI_UNKNOWN_CERTIFICATE: no certificate named nope$/m);
    expect(unknown.stderr).toMatch(
      /^ {2}hint: +the certificates are: msgbroker-peer, msgbroker-server, registry$/m,
    );

    await writeFile(join(dataDir, "pki", "registry.key"), "garbage\n");
    const garbage = await runCli(["--data-dir", dataDir, "pki", "status"]);
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toMatch(/^error PKI_UNREADABLE: /);
    expect(garbage.stderr).toContain(`  where: ${join(dataDir, "pki", "registry.key")}`);
    expect(garbage.stderr).toMatch(/^ {2}hint: +\S/m);
    expect(garbage.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  });
});
