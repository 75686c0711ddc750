/**
 * `airlock preflight` through the built CLI on this machine: one JSON document with --json (the same
 * report whether checks pass or fail), a table without, exit 0 with no failed check and 1 with one,
 * 2 for a bad flag, and nothing written to the data dir.
 */
import { mkdir, readdir, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { PreflightReport } from "../../installer/preflight/index.js";
import { runCli, sampleBundle, useFixtures, type Fixtures } from "../helpers/fixtures.js";

let fx: Fixtures;
let dataDir: string;
let bundle: string;

beforeAll(async () => {
  fx = await useFixtures({ size: 2 * 1024 * 1024 });
  dataDir = join(await fx.dir("data"), "airlock");
  ({ bundle } = await sampleBundle(fx));
});

afterAll(async () => {
  await fx.cleanup();
});

function expectShape(report: PreflightReport, code: number | null): void {
  expect(typeof report.ok).toBe("boolean");
  expect(report.dataDir).toBe(dataDir);
  expect(report.checks.length).toBeGreaterThanOrEqual(17);
  for (const check of report.checks) {
    expect(check.id).toMatch(/^[a-z0-9:._-]+$/);
    expect(check.title).not.toBe("");
    expect(["pass", "warn", "fail"]).toContain(check.status);
    expect(check.detail).not.toBe("");
    if (check.status !== "pass") expect(check.hint, check.id).toBeTruthy();
  }
  const counted = { pass: 0, warn: 0, fail: 0 };
  for (const check of report.checks) counted[check.status]++;
  expect(report.counts).toEqual(counted);
  expect(report.ok).toBe(counted.fail === 0);
  expect(code).toBe(counted.fail === 0 ? 0 : 1);
}

async function preflight(
  args: string[],
): Promise<{ report: PreflightReport; code: number | null; stderr: string }> {
  const result = await runCli(["--data-dir", dataDir, "--json", "preflight", ...args]);
  const report = JSON.parse(result.stdout) as PreflightReport;
  expectShape(report, result.code);
  return { report, code: result.code, stderr: result.stderr };
}

describe("airlock preflight on this machine", () => {
  it("--json gives one document of checks, and writes nothing", async () => {
    const { report } = await preflight([]);
    expect(report.bundle).toBeNull();
    expect(report.hostRoot).toBe("/");
    expect(report.checks.map((c) => c.id)).toEqual(
      expect.arrayContaining([
        "os-arch",
        "cpu",
        "memory",
        "disk:data-dir",
        "port:registry",
        "cgroups",
        "clock",
      ]),
    );
    expect(await readdir(join(dataDir, ".."))).toEqual([]);
  });

  it("--bundle checks against the sample bundle read from its head", async () => {
    const { report } = await preflight(["--bundle", bundle]);
    expect(report.bundle).toMatchObject({ name: "mgmt", version: "4.5.0" });
    expect(report.checks[0]).toMatchObject({ id: "bundle", status: "pass" });
    // The sample's msgbroker image is packed from this machine's own nats-server: its platform is ours.
    expect(report.checks.find((c) => c.id === "os-arch")).toMatchObject({
      status: "pass",
      detail: expect.stringContaining("every image of the bundle has it") as unknown,
    });
    const disks = report.checks.filter((c) => c.id.startsWith("disk:"));
    expect(disks.some((c) => c.detail.includes("k3s binary"))).toBe(true);
  });

  it("fails, exit 1, with the same document when a port is taken; the error goes to stderr", async () => {
    const server: Server = createServer();
    await new Promise<void>((resolvePromise) =>
      server.listen({ host: "127.0.0.1", port: 0 }, resolvePromise),
    );
    const { port } = server.address() as { port: number };
    try {
      const { report, code, stderr } = await preflight(["--registry-listen", `127.0.0.1:${port}`]);
      expect(code).toBe(1);
      expect(report.checks.find((c) => c.id === "port:registry")).toMatchObject({
        status: "fail",
        detail: `127.0.0.1:${port} is in use by another program`,
      });
      expect(stderr).toContain("error PREFLIGHT_FAILED");
      expect(stderr).toContain("port:registry");

      const text = await runCli([
        "--data-dir",
        dataDir,
        "preflight",
        "--registry-listen",
        `127.0.0.1:${port}`,
      ]);
      expect(text.code).toBe(1);
      expect(text.stdout).toMatch(
        /^FAIL {2}Port \d+ \(registry\) +127\.0\.0\.1:\d+ is in use by another program$/m,
      );
      expect(text.stdout).toMatch(/^ +hint: find it with/m);
      expect(text.stdout).toMatch(/^not ready: this host: \d+ passed, \d+ warnings, \d+ failed$/m);
    } finally {
      await new Promise((resolvePromise) => server.close(resolvePromise));
    }
  });

  it("fails on a k3s under --host-root that Airlock did not install", async () => {
    const hostRoot = await fx.dir("host-root");
    await mkdir(join(hostRoot, "etc/rancher/k3s"), { recursive: true });
    await writeFile(join(hostRoot, "etc/rancher/k3s/k3s.yaml"), "apiVersion: v1\n");
    const { report, code } = await preflight(["--host-root", hostRoot]);
    expect(code).toBe(1);
    expect(report.hostRoot).toBe(hostRoot);
    expect(report.checks.find((c) => c.id === "existing-k3s")).toMatchObject({ status: "fail" });
  });

  it("a listen address that is not host:port is a usage error, exit 2", async () => {
    const result = await runCli(["--data-dir", dataDir, "preflight", "--registry-listen", "5443"]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("error USAGE: --registry-listen");
  });
});
