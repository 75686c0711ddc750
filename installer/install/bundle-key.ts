import { existsSync } from "node:fs";
import { join } from "node:path";
import { checkSignature, keyFingerprint, loadPublicKey, type BundleHead } from "../../bundle/index.js";
import { AirlockError } from "../../registry/oci/index.js";

/** The vendor key the first install verified with, kept so every later run checks against it. */
export const VENDOR_KEY_FILE = join("keys", "vendor.pub");

export interface BundleKey {
  /** The key the import verifies with: the one given, else the first install's; none for an unsigned site. */
  path: string | undefined;
  fingerprint: string | undefined;
  /** The site already keeps a vendor key (a re-run). */
  recorded: boolean;
}

/**
 * Checks the bundle's signature before anything is written: against `--key`, and, once a first
 * install kept a vendor key, against that one — a different `--key` is refused, so a site cannot be
 * moved to another vendor's bundles by a re-run.
 */
export async function checkBundleKey(
  head: BundleHead,
  dataDir: string,
  given: string | undefined,
): Promise<BundleKey> {
  const keptPath = join(dataDir, VENDOR_KEY_FILE);
  const recorded = existsSync(keptPath);
  if (recorded && given !== undefined) {
    const [kept, offered] = [await loadPublicKey(keptPath), await loadPublicKey(given)];
    if (keyFingerprint(kept) !== keyFingerprint(offered)) {
      throw new AirlockError(
        "BUNDLE_KEY_MISMATCH",
        `--key ${keyFingerprint(offered)} is not the vendor key this site was installed with (${keyFingerprint(kept)})`,
        {
          where: given,
          hint: `pass the key the first install used (kept in ${keptPath}), or leave --key out to use it`,
        },
      );
    }
  }
  const path = given ?? (recorded ? keptPath : undefined);
  const report = await checkSignature(head, path);
  return { path, fingerprint: report.keyFingerprint, recorded };
}
