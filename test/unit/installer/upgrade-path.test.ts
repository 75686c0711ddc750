import { describe, expect, it } from "vitest";
import { checkUpgradePath } from "../../../installer/upgrade/index.js";
import { AirlockError } from "../../../registry/oci/index.js";

function refusal(check: () => unknown): AirlockError {
  try {
    check();
  } catch (error) {
    if (error instanceof AirlockError) return error;
    throw error;
  }
  throw new Error("expected the path to be refused");
}

describe("checkUpgradePath", () => {
  it("allows a later version the bundle upgrades from", () => {
    expect(checkUpgradePath("4.4.0", { version: "4.5.0", upgradeFrom: ">=4.4.0 <4.5.0" })).toEqual({
      kind: "upgrade",
      from: "4.4.0",
      to: "4.5.0",
    });
    expect(checkUpgradePath("4.4.3", { version: "4.5.0" })).toMatchObject({ kind: "upgrade" });
    expect(checkUpgradePath("4.5.0-rc.1", { version: "4.5.0", upgradeFrom: ">=4.4.0" })).toMatchObject({
      kind: "upgrade",
    });
  });

  it("has nothing to do for the same version", () => {
    expect(checkUpgradePath("4.5.0", { version: "4.5.0", upgradeFrom: ">=4.4.0 <4.5.0" })).toEqual({
      kind: "same",
      version: "4.5.0",
    });
  });

  it("refuses a skipped required version, naming the range and the way through", () => {
    const error = refusal(() =>
      checkUpgradePath("4.3.2", { version: "4.5.0", upgradeFrom: ">=4.4.0 <4.5.0" }),
    );
    expect(error.code).toBe("UPGRADE_PATH_SKIPPED");
    expect(error.message).toBe("4.5.0 upgrades from >=4.4.0 <4.5.0, which the installed 4.3.2 is not");
    expect(error.hint).toContain("upgrade through a version in >=4.4.0 <4.5.0 first");
  });

  it("refuses a downgrade unless allowed; the allowance does not let an upgrade skip a version", () => {
    const error = refusal(() => checkUpgradePath("4.5.0", { version: "4.4.0" }));
    expect(error.code).toBe("UPGRADE_DOWNGRADE");
    expect(error.hint).toContain("--allow-downgrade");
    expect(checkUpgradePath("4.5.0", { version: "4.4.0" }, { allowDowngrade: true })).toEqual({
      kind: "downgrade",
      from: "4.5.0",
      to: "4.4.0",
    });
    // The allowance is for downgrades only: a skipped version on the way up stays refused.
    expect(
      refusal(() =>
        checkUpgradePath("4.3.0", { version: "4.5.0", upgradeFrom: ">=4.4.0" }, { allowDowngrade: true }),
      ).code,
    ).toBe("UPGRADE_PATH_SKIPPED");
  });

  it("refuses versions and ranges that are not semver", () => {
    expect(refusal(() => checkUpgradePath("four", { version: "4.5.0" })).code).toBe("VERSION_INVALID");
    expect(refusal(() => checkUpgradePath("4.4.0", { version: "4.5" })).where).toBe("the bundle's version");
    expect(refusal(() => checkUpgradePath("4.4.0", { version: "4.5.0", upgradeFrom: "soon" })).where).toBe(
      "upgradeFrom",
    );
  });
});
