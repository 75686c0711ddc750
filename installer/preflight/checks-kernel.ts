import type { Check, CheckResult, PreflightContext } from "./types.js";

/** Controllers the kubelet needs to place and limit pods. */
const CGROUP_CONTROLLERS = ["cpu", "memory", "pids"];

export const checkCgroups: Check = async ({ host }) => {
  const base = { id: "cgroups", title: "cgroups" };
  const controllers = await host.readFile("/sys/fs/cgroup/cgroup.controllers");
  if (controllers !== undefined) {
    const present = controllers.trim().split(/\s+/);
    const missing = CGROUP_CONTROLLERS.filter((name) => !present.includes(name));
    if (missing.length > 0) {
      return {
        ...base,
        status: "fail",
        detail: `cgroup v2 without the ${missing.join(", ")} controller${missing.length > 1 ? "s" : ""}`,
        hint: "enable them on the kernel command line (e.g. cgroup_enable=memory) or for this cgroup's parent (cgroup.subtree_control)",
      };
    }
    return { ...base, status: "pass", detail: `v2 (${CGROUP_CONTROLLERS.join(", ")} present)` };
  }
  if ((await host.readFile("/proc/cgroups")) !== undefined) {
    return {
      ...base,
      status: "warn",
      detail: "cgroup v1: supported by k3s, but deprecated",
      hint: "boot with systemd.unified_cgroup_hierarchy=1 to use cgroup v2",
    };
  }
  return {
    ...base,
    status: "fail",
    detail: "no cgroup filesystem under /sys/fs/cgroup",
    hint: "mount cgroup2 on /sys/fs/cgroup (systemd does at boot)",
  };
};

/** Where a kernel module can come from: loaded now, built in, or on disk for k3s to load at start. */
async function moduleState(
  host: PreflightContext["host"],
  name: string,
  loadedSignal: () => Promise<boolean>,
): Promise<"loaded" | "builtin" | "loadable" | "missing"> {
  if ((await host.exists(`/sys/module/${name}`)) || (await loadedSignal())) return "loaded";
  const release = (await host.readFile("/proc/sys/kernel/osrelease"))?.trim();
  if (release === undefined) return "missing";
  const file = new RegExp(`(^|/)${name}\\.ko(\\.[a-z]+)?:?(\\s|$)`, "m");
  if (file.test((await host.readFile(`/lib/modules/${release}/modules.builtin`)) ?? "")) return "builtin";
  if (file.test((await host.readFile(`/lib/modules/${release}/modules.dep`)) ?? "")) return "loadable";
  return "missing";
}

function moduleCheck(
  name: string,
  why: string,
  loadedSignal: (context: PreflightContext) => Promise<boolean>,
): Check {
  return async (context): Promise<CheckResult> => {
    const base = { id: `module:${name}`, title: `Kernel module ${name}` };
    const state = await moduleState(context.host, name, () => loadedSignal(context));
    switch (state) {
      case "loaded":
        return { ...base, status: "pass", detail: "loaded" };
      case "builtin":
        return { ...base, status: "pass", detail: "built into the kernel" };
      case "loadable":
        return { ...base, status: "pass", detail: "not loaded; k3s loads it at start" };
      case "missing":
        return {
          ...base,
          status: "fail",
          detail: `not loaded and not found under /lib/modules: ${why}`,
          hint: `install the running kernel's modules package, or load it (\`modprobe ${name}\`)`,
        };
    }
  };
}

export const checkOverlay = moduleCheck(
  "overlay",
  "containerd's overlayfs snapshotter needs it",
  async ({ host }) => /\toverlay$/m.test((await host.readFile("/proc/filesystems")) ?? ""),
);

export const checkBrNetfilter = moduleCheck(
  "br_netfilter",
  "pod traffic across the bridge must pass through iptables",
  ({ host }) => host.exists("/proc/sys/net/bridge"),
);

export const checkIpForward: Check = async ({ host }) => {
  const base = { id: "sysctl:net.ipv4.ip_forward", title: "IP forwarding" };
  const value = (await host.readFile("/proc/sys/net/ipv4/ip_forward"))?.trim();
  if (value === undefined) {
    return {
      ...base,
      status: "fail",
      detail: "net.ipv4.ip_forward cannot be read",
      hint: "check that /proc/sys is mounted and the kernel has IPv4",
    };
  }
  if (value !== "1") {
    return {
      ...base,
      status: "warn",
      detail: `net.ipv4.ip_forward = ${value}; k3s turns it on at start`,
      hint: "make it last: `echo net.ipv4.ip_forward=1 > /etc/sysctl.d/90-k3s.conf && sysctl --system`",
    };
  }
  return { ...base, status: "pass", detail: "net.ipv4.ip_forward = 1" };
};
