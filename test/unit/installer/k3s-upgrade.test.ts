/** The k3s version a binary prints, and Kubernetes's skew rules for replacing a server's binary. */
import { describe, expect, it } from "vitest";
import { k3sSkewProblem, parseK3sVersion } from "../../../installer/k3s/index.js";
import { k3sChangeOf } from "../../../installer/upgrade/plan.js";

const version = (text: string) =>
  parseK3sVersion(`k3s version ${text} (079ffa8d)\ngo version go1.23.6\n`, "k3s");

describe("k3s versions", () => {
  it("reads k3s --version's first line, its +k3sN build included", () => {
    expect(version("v1.32.3+k3s1")).toEqual({
      text: "v1.32.3+k3s1",
      major: 1,
      minor: 32,
      patch: 3,
      build: 1,
    });
    expect(version("v1.33.0").build).toBe(0);
    expect(() => parseK3sVersion("Usage: k3s [global options]", "/usr/local/bin/k3s-airlock-next")).toThrow(
      expect.objectContaining({ code: "K3S_VERSION_UNKNOWN", where: "/usr/local/bin/k3s-airlock-next" }),
    );
  });

  it("allows a newer patch, build or the next minor; refuses older, a skipped minor, another major", () => {
    const current = version("v1.32.3+k3s1");
    for (const allowed of ["v1.32.3+k3s2", "v1.32.4+k3s1", "v1.33.0+k3s1", "v1.33.9+k3s3"]) {
      expect(k3sSkewProblem(current, version(allowed))).toBeUndefined();
    }
    expect(k3sSkewProblem(current, version("v1.32.2+k3s1"))).toMatch(
      /is older than the running v1\.32\.3\+k3s1/,
    );
    expect(k3sSkewProblem(current, version("v1.34.1+k3s1"))).toMatch(
      /skips a minor version: upgrade through v1\.33 first/,
    );
    expect(k3sSkewProblem(current, version("v2.0.0+k3s1"))).toMatch(/skips a minor version/);
  });
});

describe("the plan's k3s change", () => {
  const file = (sha: string) => ({
    path: "bin/k3s",
    sha256: sha.repeat(64),
    size: 70_000_000,
    digest: `sha256:${sha.repeat(64)}`,
  });
  it("is the new bundle's bin/k3s when the installed bundle had another or none; nothing when the same or absent", () => {
    expect(k3sChangeOf([file("a")], [file("b")])).toEqual({
      from: "a".repeat(64),
      to: "b".repeat(64),
      size: 70_000_000,
    });
    expect(k3sChangeOf([], [file("b")])).toEqual({ from: undefined, to: "b".repeat(64), size: 70_000_000 });
    expect(k3sChangeOf([file("a")], [file("a")])).toBeUndefined();
    expect(k3sChangeOf([file("a")], [])).toBeUndefined();
  });
});
