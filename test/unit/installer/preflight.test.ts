/**
 * Preflight's disk, data dir, port and site checks through the fake host view, the report, the
 * bundle's facts and sizing, and the real host view's port probe on loopback.
 */
import { createServer, type Server } from "node:net";
import { describe, expect, it } from "vitest";
import {
  DEFAULT_SIZING,
  EXT4,
  factsOf,
  parseListen,
  parseMeminfo,
  realHostView,
  storeGrowth,
  type FakeHostSpec,
} from "../../../installer/preflight/index.js";
import type { BundleMetadata } from "../../../bundle/index.js";
import { EMPTY_SITE, FACTS, GiB, checkResult, preflightOn } from "../../helpers/preflight.js";

const withFree =
  (freeBytes: number) =>
  (s: FakeHostSpec): void => {
    s.filesystems[0]!.freeBytes = freeBytes;
  };

/** What FACTS needs on one filesystem: store + growth, k3s base + archive + twice the images, the binary. */
const NEED =
  3 * GiB + storeGrowth(3 * GiB) + GiB + FACTS.k3sArchiveBytes + 2 * FACTS.imageBytes + FACTS.k3sBinaryBytes;

describe("free disk", () => {
  it("adds up what goes onto one filesystem, and passes with room", async () => {
    const result = await checkResult("disk:data-dir");
    expect(result.status).toBe("pass");
    expect(result.title).toBe("Free disk: data dir, k3s data, k3s binary");
    expect(result.detail).toContain("/var/lib/airlock (data dir, 3.5 GiB)");
    expect(result.detail).toContain("/var/lib/rancher/k3s (k3s data, 3.2 GiB)");
  });

  it("warns with little to spare, and fails short of the need", async () => {
    expect((await checkResult("disk:data-dir", { change: withFree(NEED + 1) })).status).toBe("warn");
    const short = await checkResult("disk:data-dir", { change: withFree(NEED - GiB) });
    expect(short.status).toBe("fail");
    expect(short.hint).toContain("free 1.0 GiB");
  });

  it("checks each filesystem on its own, under the host root", async () => {
    const report = await preflightOn({
      options: { hostRoot: "/srv/root" },
      change: (s) =>
        s.filesystems.push({ mount: "/srv/root/var/lib/rancher", type: EXT4, freeBytes: 2 * GiB }),
    });
    const disks = report.checks.filter((c) => c.id.startsWith("disk:"));
    expect(disks.map((c) => [c.id, c.status])).toEqual([
      ["disk:data-dir", "pass"],
      ["disk:k3s-data", "fail"],
    ]);
    expect(disks[0]!.detail).toContain("/srv/root/usr/local/bin (k3s binary");
    expect(disks[1]!.detail).toBe("2.0 GiB free for /srv/root/var/lib/rancher/k3s: 3.2 GiB needed");
  });

  it("without a bundle, needs only the store's and k3s's own room", async () => {
    const result = await checkResult("disk:data-dir", { facts: null, change: withFree(1.6 * GiB) });
    expect(result.status).toBe("warn");
    expect(result.detail).not.toContain("k3s binary");
  });
});

describe("the data dir", () => {
  const mountDataDir =
    (type: number, readOnly = false) =>
    (s: FakeHostSpec) =>
      void s.filesystems.push({ mount: "/var/lib/airlock", type, freeBytes: 100 * GiB, readOnly });

  it("passes on a local filesystem, warns on tmpfs or one it does not know, fails on NFS or FAT", async () => {
    expect((await checkResult("data-dir-filesystem")).detail).toBe("/var/lib is on ext4");
    expect((await checkResult("data-dir-filesystem", { change: mountDataDir(0x01021994) })).status).toBe(
      "warn",
    );
    expect((await checkResult("data-dir-filesystem", { change: mountDataDir(0x1234) })).detail).toContain(
      "0x1234",
    );
    const nfs = await checkResult("data-dir-filesystem", { change: mountDataDir(0x6969) });
    expect(nfs).toMatchObject({ status: "fail", detail: expect.stringContaining("nfs") as unknown });
    expect((await checkResult("data-dir-filesystem", { change: mountDataDir(0x4d44) })).status).toBe("fail");
  });

  it("must be writable (or its nearest parent, when it does not exist yet)", async () => {
    expect((await checkResult("data-dir-writable")).detail).toBe(
      "/var/lib is writable (/var/lib/airlock will be made there)",
    );
    const readOnly = await checkResult("data-dir-writable", { change: mountDataDir(EXT4, true) });
    expect(readOnly).toMatchObject({ status: "fail", detail: "/var/lib/airlock is not writable" });
  });
});

describe("ports", () => {
  it("pass when free, on the configured addresses", async () => {
    const report = await preflightOn({ options: { registryListen: "[::1]:6000", k3sApiPort: 7443 } });
    expect(report.checks.filter((c) => c.id.startsWith("port:")).map((c) => c.detail)).toEqual([
      "[::1]:6000 is free",
      "0.0.0.0:7443 is free",
      "0.0.0.0:10250 is free",
    ]);
  });

  it("fail when another program holds one or the address is not the host's", async () => {
    const busy = await checkResult("port:registry", {
      change: (s) => void (s.ports["127.0.0.1:5443"] = { state: "in-use" }),
    });
    expect(busy).toMatchObject({ status: "fail", detail: "127.0.0.1:5443 is in use by another program" });
    const foreign = await checkResult("port:registry", {
      options: { registryListen: "10.9.9.9:5443" },
      change: (s) => void (s.ports["10.9.9.9:5443"] = { state: "unavailable", reason: "EADDRNOTAVAIL" }),
    });
    expect(foreign.status).toBe("fail");
    expect(foreign.hint).toContain("not an address of this host");
  });

  it("warn when this site's own earlier install likely holds them", async () => {
    const site = {
      ...EMPTY_SITE,
      latestInstall: { id: 1, bundleName: "mgmt", version: "4.5.0", state: "failed" },
      clusterStepStarted: true,
    };
    const api = await checkResult("port:k3s-api", {
      options: { site },
      change: (s) => void (s.ports["0.0.0.0:6443"] = { state: "in-use" }),
    });
    expect(api.status).toBe("warn");
    expect(api.detail).toContain("this site's own k3s");
  });

  it("rejects a listen address that is not host:port as a usage error", () => {
    expect(() => parseListen("5443")).toThrow(expect.objectContaining({ code: "USAGE", exitCode: 2 }));
    expect(parseListen("0.0.0.0:5443")).toEqual({ host: "0.0.0.0", port: 5443 });
  });
});

describe("another install", () => {
  const release = { bundleName: "mgmt", bundleDigest: "sha256:aa", version: "4.4.0" };

  it("passes an empty data dir or one holding the same plane", async () => {
    expect((await checkResult("existing-install")).detail).toBe("none");
    const same = await checkResult("existing-install", { options: { site: { ...EMPTY_SITE, release } } });
    expect(same).toMatchObject({
      status: "pass",
      detail: expect.stringContaining("mgmt 4.4.0 is installed") as unknown,
    });
  });

  it("fails a data dir holding another bundle's release or unfinished install", async () => {
    const other = { ...release, bundleName: "billing" };
    expect(
      (await checkResult("existing-install", { options: { site: { ...EMPTY_SITE, release: other } } }))
        .status,
    ).toBe("fail");
    const unfinished = { id: 2, bundleName: "billing", version: "1.0.0", state: "running" };
    const result = await checkResult("existing-install", {
      options: { site: { ...EMPTY_SITE, latestInstall: unfinished } },
    });
    expect(result).toMatchObject({
      status: "fail",
      detail: expect.stringContaining("unfinished install of billing") as unknown,
    });
  });

  it("fails a k3s under the host root that Airlock did not install, passes its own", async () => {
    expect((await checkResult("existing-k3s")).status).toBe("pass");
    const k3s = (s: FakeHostSpec): void =>
      void (s.files["/srv/root/etc/rancher/k3s/k3s.yaml"] = "apiVersion: v1\n");
    const foreign = await checkResult("existing-k3s", { change: k3s, options: { hostRoot: "/srv/root" } });
    expect(foreign).toMatchObject({
      status: "fail",
      detail: "/srv/root/etc/rancher/k3s/k3s.yaml present, not installed by Airlock",
    });
    expect(foreign.hint).toContain("--kubeconfig");
    const own = await checkResult("existing-k3s", {
      change: k3s,
      options: { hostRoot: "/srv/root", site: { ...EMPTY_SITE, clusterStepStarted: true } },
    });
    expect(own.status).toBe("pass");
  });
});

describe("the report", () => {
  it("passes on a healthy host, counting each outcome", async () => {
    const report = await preflightOn();
    expect(report).toMatchObject({ ok: true, bundle: { name: "mgmt", version: "4.5.0" }, hostRoot: "/" });
    expect(report.counts).toEqual({ pass: report.checks.length, warn: 0, fail: 0 });
    expect(report.checks.map((c) => c.id)).toEqual([
      "bundle",
      "os-arch",
      "cpu",
      "memory",
      "disk:data-dir",
      "data-dir-filesystem",
      "data-dir-writable",
      "port:registry",
      "port:k3s-api",
      "port:kubelet",
      "clock",
      "existing-install",
      "cgroups",
      "module:overlay",
      "module:br_netfilter",
      "sysctl:net.ipv4.ip_forward",
      "swap",
      "existing-k3s",
    ]);
  });

  it("is not ok with any fail, and a warning alone keeps it ok", async () => {
    const warned = await preflightOn({
      change: (s) => void (s.files["/proc/sys/net/ipv4/ip_forward"] = "0\n"),
    });
    expect(warned).toMatchObject({ ok: true, counts: { warn: 1, fail: 0 } });
    const failed = await preflightOn({ change: (s) => void (s.cpus = 1) });
    expect(failed).toMatchObject({ ok: false, counts: { fail: 1 } });
  });

  it("turns an unreadable bundle into a failed check and still runs the rest", async () => {
    const report = await preflightOn({ facts: null, options: { bundle: "/nonexistent/mgmt.airlock.tar" } });
    expect(report.ok).toBe(false);
    expect(report.bundle).toBeNull();
    expect(report.checks[0]).toMatchObject({ id: "bundle", status: "fail" });
    expect(report.checks[0]!.detail).toContain("/nonexistent/mgmt.airlock.tar");
    expect(report.checks).toHaveLength(18);
  });

  it("skips the k3s checks for an existing cluster, and checks its kubeconfig instead", async () => {
    const kubeconfig = "/root/.kube/config";
    const missing = await checkResult("kubeconfig", { options: { kubeconfig } });
    expect(missing).toMatchObject({ status: "fail", detail: "/root/.kube/config cannot be read" });
    const notOne = await checkResult("kubeconfig", {
      options: { kubeconfig },
      change: (s) => void (s.files[kubeconfig] = "hello: world\n"),
    });
    expect(notOne.status).toBe("fail");
    const report = await preflightOn({
      options: { kubeconfig },
      change: (s) => void (s.files[kubeconfig] = "apiVersion: v1\nkind: Config\nclusters: []\n"),
    });
    expect(report.checks.find((c) => c.id === "kubeconfig")).toMatchObject({ status: "pass" });
    const ids = report.checks.map((c) => c.id);
    expect(ids).toContain("port:registry");
    for (const id of ["port:k3s-api", "cgroups", "module:overlay", "existing-k3s"])
      expect(ids).not.toContain(id);
    expect(report.checks.find((c) => c.id === "disk:data-dir")!.detail).not.toContain("k3s");
  });
});

function metadata(extra: Record<string, unknown> = {}): BundleMetadata {
  const image = (ref: string, kind: "image" | "pack", totalBytes: number, platforms: string[]) => ({
    ref,
    kind,
    totalBytes,
    platforms,
    digest: "sha256:00",
    mediaType: "application/vnd.oci.image.index.v1+json",
    size: 1,
    blobs: 1,
    sourceDigest: "sha256:00",
  });
  return {
    schemaVersion: 1,
    mediaType: "application/vnd.airlock.bundle.v1+json",
    name: "mgmt",
    version: "4.5.0",
    created: "2026-11-20T00:00:00Z",
    images: [
      image("hubble/msgbroker:4.5.0", "image", 100, ["linux/amd64"]),
      image("packs/obs:1", "pack", 7, []),
    ],
    packs: [],
    files: [
      { path: "bin/k3s", size: 60, sha256: "", mode: 0o755 },
      { path: "bin/k3s-airgap-images-amd64.tar.zst", size: 40, sha256: "", mode: 0o644 },
      { path: "manifests/values.yaml", size: 5, sha256: "", mode: 0o644 },
    ],
    totals: { files: 3, bytes: 1000, images: 2, blobs: 3, blobBytes: 107 },
    ...extra,
  } as BundleMetadata;
}

describe("a bundle's facts", () => {
  it("come from airlock.json: runnable images, bin/ sizes, the store's bytes", () => {
    expect(factsOf(metadata(), "sha256:ff")).toEqual({
      name: "mgmt",
      version: "4.5.0",
      digest: "sha256:ff",
      created: "2026-11-20T00:00:00Z",
      images: [{ ref: "hubble/msgbroker:4.5.0", platforms: ["linux/amd64"] }],
      sizing: DEFAULT_SIZING,
      storeBytes: 1000,
      k3sBinaryBytes: 60,
      k3sArchiveBytes: 40,
      imageBytes: 100,
    });
  });

  it("take a declared sizing, figure by figure, and ignore one that makes no sense", () => {
    expect(factsOf(metadata({ sizing: { cpus: 4 } }), "sha256:ff").sizing).toEqual({
      cpus: 4,
      memoryBytes: DEFAULT_SIZING.memoryBytes,
      source: "bundle",
    });
    expect(factsOf(metadata({ sizing: { cpus: "four", memoryBytes: -1 } }), "sha256:ff").sizing).toEqual(
      DEFAULT_SIZING,
    );
  });
});

describe("the real host view", () => {
  it("reads MemTotal and MemAvailable", () => {
    expect(parseMeminfo("MemTotal:       16384 kB\nMemFree:  1 kB\nMemAvailable:   8192 kB\n")).toEqual({
      totalBytes: 16384 * 1024,
      availableBytes: 8192 * 1024,
    });
  });

  it("probes a port by binding it on loopback: in use while a server holds it, free after", async () => {
    const server: Server = createServer();
    await new Promise<void>((resolvePromise) =>
      server.listen({ host: "127.0.0.1", port: 0 }, resolvePromise),
    );
    const { port } = server.address() as { port: number };
    const host = realHostView();
    expect(await host.probePort("127.0.0.1", port)).toEqual({ state: "in-use" });
    await new Promise((resolvePromise) => server.close(resolvePromise));
    expect(await host.probePort("127.0.0.1", port)).toEqual({ state: "free" });
    expect(await host.probePort("192.0.2.1", port)).toEqual({
      state: "unavailable",
      reason: "EADDRNOTAVAIL",
    });
  });
});
