import type { Command } from "commander";
import type * as PkiModule from "../pki/index.js";
import type { CertificateInfo } from "../pki/index.js";
import { emit } from "./output.js";
import type { Runner } from "./context.js";

/** Loaded when a pki command runs: the X.509 code costs every other command's start-up otherwise. */
export const loadPki = (): Promise<typeof PkiModule> => import("../pki/index.js");

function renderCertificate(certificate: CertificateInfo): string[] {
  const sans = [
    ...certificate.dnsNames.map((name) => `DNS:${name}`),
    ...certificate.ipAddresses.map((ip) => `IP:${ip}`),
  ];
  return [
    `${certificate.name.padEnd(18)} ${certificate.kind.padEnd(7)} ${certificate.status.padEnd(13)} ${certificate.notAfter.slice(0, 10)} (${certificate.daysLeft} days)  ${certificate.subject}`,
    ...(sans.length === 0 ? [] : [`  SANs: ${sans.join(", ")}`]),
  ];
}

export function registerPki(program: Command, run: Runner): void {
  const pki = program.command("pki").description("the site CA and the certificates Airlock issues");

  pki
    .command("status")
    .description("list each certificate: subject, SANs, expiry, and whether it needs attention")
    .action(async (_flags: object, command: Command) =>
      run(command, async (context) => {
        const { listCertificates, openPki } = await loadPki();
        const site = openPki(context.dataDir);
        const certificates = await listCertificates(site);
        emit(context.output, { dir: site.dir, certificates }, () =>
          certificates.length === 0
            ? `no certificates in ${site.dir}: \`airlock install\` makes the site CA and issues them`
            : [
                `${"NAME".padEnd(18)} ${"KIND".padEnd(7)} ${"STATUS".padEnd(13)} EXPIRES`,
                ...certificates.flatMap(renderCertificate),
              ].join("\n"),
        );
      }),
    );

  pki
    .command("rotate")
    .description("re-issue certificates with fresh keys; --ca starts a new site CA and re-signs them all")
    .option(
      "--name <name>",
      "a certificate to re-issue (repeatable; every one when left out)",
      (name: string, all: string[]) => [...all, name],
      [] as string[],
    )
    .option("--ca", "make a new site CA: every node and client must then trust the new ca.crt")
    .action(async (flags: { name: string[]; ca?: boolean }, command: Command) =>
      run(command, async (context) => {
        const { openPki, rotate } = await loadPki();
        const site = openPki(context.dataDir);
        const result = await rotate(site, { names: flags.name, ca: flags.ca === true });
        emit(context.output, result, () => {
          const lines: string[] = [];
          if (result.ca !== undefined) {
            lines.push(
              `new site CA ${result.ca.fingerprint}, valid until ${result.ca.notAfter.slice(0, 10)}`,
              `  every node and client that trusted the old CA must now trust ${result.ca.certFile}`,
            );
          }
          for (const certificate of result.certificates) {
            lines.push(
              `rotated ${certificate.name}: serial ${certificate.serialNumber}, valid until ${certificate.notAfter.slice(0, 10)}`,
            );
          }
          if (lines.length === 0) lines.push(`no certificates to rotate in ${site.dir}`);
          return lines.join("\n");
        });
      }),
    );
}
