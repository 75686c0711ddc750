import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { listCertificates, type CertificateInfo, type Pki } from "../installer/pki/index.js";

/** How long a listing is reused while no certificate file changed: days left and status move with the clock. */
export const CERTIFICATE_LIST_TTL_MS = 60_000;

const PAIR_FILE = /\.(crt|key)$/;

/**
 * The site PKI's certificates as the pages show them. `listCertificates` takes the PKI's lock (a
 * durable lock file), parses every key and checks every signature: tens of milliseconds, on every
 * Overview. A listing is reused while each `.crt` and `.key` is the same file (name, inode, size,
 * mtime) and the listing is under a minute old on the console's clock; any rotation, by the console
 * or the CLI, replaces those files and so is seen on the next page.
 */
export class CertificateList {
  private cached: { files: string; at: number; certificates: CertificateInfo[] } | undefined;

  constructor(
    private readonly pki: Pki,
    private readonly clock: () => Date,
  ) {}

  async list(): Promise<CertificateInfo[]> {
    const files = await this.fileIdentities();
    const now = this.clock().getTime();
    const cached = this.cached;
    if (cached?.files === files && now >= cached.at && now - cached.at < CERTIFICATE_LIST_TTL_MS) {
      return cached.certificates;
    }
    const certificates = await listCertificates(this.pki);
    this.cached = { files, at: now, certificates };
    return certificates;
  }

  /** One line per certificate or key file; a file that vanishes mid-way simply makes the key differ. */
  private async fileIdentities(): Promise<string> {
    const names = (await readdir(this.pki.dir).catch(() => [] as string[])).filter((name) =>
      PAIR_FILE.test(name),
    );
    const lines = await Promise.all(
      names.sort().map(async (name) => {
        const info = await stat(join(this.pki.dir, name), { bigint: true }).catch(() => undefined);
        return info === undefined ? `${name} -` : `${name} ${info.ino} ${info.size} ${info.mtimeNs}`;
      }),
    );
    return lines.join("\n");
  }
}
