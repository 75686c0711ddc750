/**
 * Preflight's host checks through the fake host view: OS and architecture, CPUs, memory, swap, the
 * clock, cgroups, kernel modules and IP forwarding, each in every outcome it has.
 */
import { describe, expect, it } from "vitest";
import type { BundleFacts, CheckResult, FakeHostSpec } from "../../../installer/preflight/index.js";
import { FACTS, GiB, checkResult } from "../../helpers/preflight.js";

/** One check over the healthy fake host, changed by `change`, against `facts` (undefined: no bundle). */
function check(
  id: string,
  change?: (spec: FakeHostSpec) => void,
  facts: BundleFacts | undefined = FACTS,
): Promise<CheckResult> {
  return checkResult(id, { ...(change === undefined ? {} : { change }), facts: facts ?? null });
}

describe("OS and architecture", () => {
  it("passes a host whose platform every image carries", async () => {
    expect(await check("os-arch")).toMatchObject({
      status: "pass",
      detail: expect.stringContaining("linux/amd64") as unknown,
    });
  });

  it("fails an architecture an image lacks, naming the image", async () => {
    const result = await check("os-arch", (s) => (s.platform.architecture = "arm64"));
    expect(result.status).toBe("fail");
    expect(result.detail).toContain("hubble/msgbroker:4.5.0 (linux/amd64)");
    expect(result.detail).not.toContain("hubble/console");
  });

  it("fails a host k3s does not run on, bundle or not", async () => {
    expect((await check("os-arch", (s) => (s.platform.os = "darwin"), undefined)).status).toBe("fail");
    expect((await check("os-arch", (s) => (s.platform.architecture = "riscv64"), undefined)).status).toBe(
      "fail",
    );
  });
});

describe("CPUs and memory against the sizing", () => {
  it("pass at the default sizing, and fail below the bundle's own", async () => {
    expect(await check("cpu")).toMatchObject({ status: "pass", detail: "4 available, 2 needed" });
    const big = { ...FACTS, sizing: { cpus: 8, memoryBytes: 16 * GiB, source: "bundle" as const } };
    expect(await check("cpu", undefined, big)).toMatchObject({
      status: "fail",
      detail: "4 available, 8 the bundle asks for",
    });
    expect((await check("memory", undefined, big)).status).toBe("fail");
  });

  it("warn when memory is there but taken", async () => {
    expect((await check("memory")).status).toBe("pass");
    const result = await check(
      "memory",
      (s) => (s.memory = { totalBytes: 8 * GiB, availableBytes: 0.5 * GiB }),
    );
    expect(result.status).toBe("warn");
    expect((await check("cpu", (s) => (s.cpus = 1))).status).toBe("fail");
  });
});

describe("swap", () => {
  it("passes with none, warns when on or unreadable", async () => {
    expect((await check("swap")).status).toBe("pass");
    const on = await check("swap", (s) => {
      s.files["/proc/swaps"] += "/dev/sda2\tpartition\t1048572\t0\t-2\n";
    });
    expect(on).toMatchObject({ status: "warn", detail: "swap is on (/dev/sda2)" });
    expect((await check("swap", (s) => delete s.files["/proc/swaps"])).status).toBe("warn");
  });
});

describe("clock", () => {
  it("passes after the bundle was made; fails before it, or before this airlock was built", async () => {
    expect((await check("clock")).status).toBe("pass");
    const early = await check("clock", (s) => (s.now = new Date("2026-12-02T00:00:00Z")), {
      ...FACTS,
      created: "2026-12-02T10:00:00Z",
    });
    expect(early).toMatchObject({
      status: "fail",
      detail: expect.stringContaining("before the bundle was made") as unknown,
    });
    const unset = await check("clock", (s) => (s.now = new Date("1970-01-01T00:00:00Z")), undefined);
    expect(unset).toMatchObject({
      status: "fail",
      detail: expect.stringContaining("before this airlock was built") as unknown,
    });
  });
});

describe("cgroups", () => {
  it("passes v2 with cpu, memory and pids; fails v2 without memory", async () => {
    expect((await check("cgroups")).status).toBe("pass");
    const result = await check("cgroups", (s) => {
      s.files["/sys/fs/cgroup/cgroup.controllers"] = "cpuset cpu io pids\n";
    });
    expect(result).toMatchObject({ status: "fail", detail: "cgroup v2 without the memory controller" });
  });

  it("warns on v1 and fails with no cgroups at all", async () => {
    const v1 = (s: FakeHostSpec): void => void delete s.files["/sys/fs/cgroup/cgroup.controllers"];
    expect((await check("cgroups", v1)).status).toBe("warn");
    expect(
      (
        await check("cgroups", (s) => {
          v1(s);
          delete s.files["/proc/cgroups"];
        })
      ).status,
    ).toBe("fail");
  });
});

describe("kernel modules", () => {
  const unload = (name: string) => (s: FakeHostSpec) => {
    s.dirs = s.dirs.filter((dir) => dir !== `/sys/module/${name}`);
    s.files["/proc/filesystems"] = "nodev\tsysfs\n\text4\n";
  };

  it("pass when loaded, built in, or on disk for k3s to load", async () => {
    expect(await check("module:overlay")).toMatchObject({ status: "pass", detail: "loaded" });
    expect(await check("module:br_netfilter", unload("br_netfilter"))).toMatchObject({
      status: "pass",
      detail: "not loaded; k3s loads it at start",
    });
    const builtin = await check("module:overlay", (s) => {
      unload("overlay")(s);
      s.files["/lib/modules/6.1.0-28-amd64/modules.builtin"] += "kernel/fs/overlayfs/overlay.ko\n";
      s.files["/lib/modules/6.1.0-28-amd64/modules.dep"] = "";
    });
    expect(builtin).toMatchObject({ status: "pass", detail: "built into the kernel" });
  });

  it("pass overlay when /proc/filesystems lists it, and br_netfilter when its sysctls exist", async () => {
    const viaProc = await check("module:overlay", (s) => {
      s.dirs = s.dirs.filter((dir) => dir !== "/sys/module/overlay");
    });
    expect(viaProc).toMatchObject({ status: "pass", detail: "loaded" });
    const viaSysctl = await check("module:br_netfilter", (s) => {
      unload("br_netfilter")(s);
      s.files["/proc/sys/net/bridge/bridge-nf-call-iptables"] = "1\n";
    });
    expect(viaSysctl).toMatchObject({ status: "pass", detail: "loaded" });
  });

  it("fail when neither loaded nor found for the running kernel", async () => {
    for (const name of ["overlay", "br_netfilter"]) {
      const result = await check(`module:${name}`, (s) => {
        unload(name)(s);
        s.files["/lib/modules/6.1.0-28-amd64/modules.dep"] = "kernel/fs/ext4/ext4.ko:\n";
      });
      expect(result.status).toBe("fail");
      expect(result.hint).toContain(`modprobe ${name}`);
    }
  });
});

describe("IP forwarding", () => {
  it("passes on, warns off, fails unreadable", async () => {
    expect((await check("sysctl:net.ipv4.ip_forward")).status).toBe("pass");
    const off = (s: FakeHostSpec): void => void (s.files["/proc/sys/net/ipv4/ip_forward"] = "0\n");
    expect((await check("sysctl:net.ipv4.ip_forward", off)).status).toBe("warn");
    const gone = (s: FakeHostSpec): void => void delete s.files["/proc/sys/net/ipv4/ip_forward"];
    expect((await check("sysctl:net.ipv4.ip_forward", gone)).status).toBe("fail");
  });
});
