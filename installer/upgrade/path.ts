import { compare, parse, satisfies, validRange, type SemVer } from "semver";
import { AirlockError } from "../../registry/oci/index.js";

/** What the next bundle says of itself: its version and the installed versions it upgrades from. */
export interface BundleVersion {
  version: string;
  /** A semver range such as `>=4.4.0 <4.5.0`; absent: any earlier version. */
  upgradeFrom?: string | undefined;
}

export interface UpgradePathOptions {
  /** Allow going to an earlier version (never past a skipped required version). */
  allowDowngrade?: boolean | undefined;
}

export type UpgradePath =
  | { kind: "upgrade"; from: string; to: string }
  | { kind: "downgrade"; from: string; to: string }
  | { kind: "same"; version: string };

function parsed(version: string, where: string): SemVer {
  const value = parse(version);
  if (value === null) {
    throw new AirlockError("VERSION_INVALID", `${JSON.stringify(version)} is not a semantic version`, {
      where,
      hint: "versions are semver: MAJOR.MINOR.PATCH, such as 4.5.0",
    });
  }
  return value;
}

/**
 * Whether the installed version may go to the bundle's: the same version is nothing to do; an
 * earlier one is refused unless downgrades are allowed; a later one must be reachable from the
 * installed one by the bundle's `upgradeFrom` (else a required version in between was skipped).
 */
export function checkUpgradePath(
  installedVersion: string,
  bundle: BundleVersion,
  options: UpgradePathOptions = {},
): UpgradePath {
  const installed = parsed(installedVersion, "the installed release");
  const incoming = parsed(bundle.version, "the bundle's version");
  const order = compare(incoming, installed);
  if (order === 0) return { kind: "same", version: installed.version };
  if (order < 0) {
    if (options.allowDowngrade === true) {
      return { kind: "downgrade", from: installed.version, to: incoming.version };
    }
    throw new AirlockError(
      "UPGRADE_DOWNGRADE",
      `the bundle's version ${incoming.version} is older than the installed ${installed.version}`,
      {
        where: "version",
        hint: "import the bundle of a later version, or pass --allow-downgrade if going back is intended (data written since is not converted back)",
      },
    );
  }
  if (bundle.upgradeFrom !== undefined) {
    const range = validRange(bundle.upgradeFrom);
    if (range === null) {
      throw new AirlockError(
        "VERSION_INVALID",
        `upgradeFrom ${JSON.stringify(bundle.upgradeFrom)} is not a semver range`,
        {
          where: "upgradeFrom",
          hint: 'the vendor\'s bundle is malformed: ask for one whose upgradeFrom is a range such as ">=4.4.0 <4.5.0"',
        },
      );
    }
    if (!satisfies(installed, range, { includePrerelease: true })) {
      throw new AirlockError(
        "UPGRADE_PATH_SKIPPED",
        `${incoming.version} upgrades from ${bundle.upgradeFrom}, which the installed ${installed.version} is not`,
        {
          where: "upgradeFrom",
          hint: `upgrade through a version in ${bundle.upgradeFrom} first: import that bundle and upgrade to it, then to ${incoming.version}`,
        },
      );
    }
  }
  return { kind: "upgrade", from: installed.version, to: incoming.version };
}
