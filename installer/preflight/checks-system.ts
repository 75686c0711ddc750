import { formatBytes, formatPlatform, parsePlatform, platformMatches } from "../../registry/oci/index.js";
import type { Check, CheckResult } from "./types.js";

/** Architectures k3s ships for. */
const K3S_ARCHITECTURES = ["amd64", "arm64", "arm"];

export const checkPlatform: Check = ({ host, bundle }) => {
  const platform = host.platform();
  const name = formatPlatform(platform);
  const base = { id: "os-arch", title: "OS and architecture" };
  if (platform.os !== "linux" || !K3S_ARCHITECTURES.includes(platform.architecture)) {
    return {
      ...base,
      status: "fail",
      detail: `${name}: Airlock installs on linux/amd64, linux/arm64 or linux/arm`,
      hint: "run the install on a Linux host of one of those architectures",
    };
  }
  const missing = (bundle?.images ?? []).filter(
    (image) =>
      image.platforms.length > 0 &&
      !image.platforms.some((p) => platformMatches(parsePlatform(p, image.ref), platform)),
  );
  if (missing.length > 0) {
    return {
      ...base,
      status: "fail",
      detail: `${name}, but the bundle has no ${name} image of ${missing.map((i) => `${i.ref} (${i.platforms.join(", ")})`).join("; ")}`,
      hint: `ask the vendor for a bundle built with ${name} images, or install on a host of the bundle's platform`,
    };
  }
  return {
    ...base,
    status: "pass",
    detail: bundle === undefined ? name : `${name}; every image of the bundle has it`,
  };
};

export const checkCpu: Check = ({ host, sizing }) => {
  const count = host.cpuCount();
  const base = { id: "cpu", title: "CPUs" };
  const wanted = `${sizing.cpus} ${sizing.source === "bundle" ? "the bundle asks for" : "needed"}`;
  if (count < sizing.cpus) {
    return {
      ...base,
      status: "fail",
      detail: `${count} available, ${wanted}`,
      hint: `give the host at least ${sizing.cpus} CPUs`,
    };
  }
  return { ...base, status: "pass", detail: `${count} available, ${wanted}` };
};

export const checkMemory: Check = async ({ host, sizing }) => {
  const { totalBytes, availableBytes } = await host.memory();
  const base = { id: "memory", title: "Memory" };
  const found = `${formatBytes(totalBytes)} total, ${formatBytes(availableBytes)} available`;
  const wanted = `${formatBytes(sizing.memoryBytes)} ${sizing.source === "bundle" ? "the bundle asks for" : "needed"}`;
  if (totalBytes < sizing.memoryBytes) {
    return {
      ...base,
      status: "fail",
      detail: `${found}; ${wanted}`,
      hint: `give the host at least ${formatBytes(sizing.memoryBytes)} of memory`,
    };
  }
  if (availableBytes < sizing.memoryBytes / 2) {
    return {
      ...base,
      status: "warn",
      detail: `${found}; ${wanted}, and other processes hold most of it`,
      hint: "stop what else runs on the host, or the plane's pods may be evicted",
    };
  }
  return { ...base, status: "pass", detail: `${found}; ${wanted}` };
};

export const checkSwap: Check = async ({ host }) => {
  const swaps = await host.readFile("/proc/swaps");
  const base = { id: "swap", title: "Swap" };
  if (swaps === undefined) {
    return {
      ...base,
      status: "warn",
      detail: "/proc/swaps cannot be read",
      hint: "check that /proc is mounted",
    };
  }
  const devices = swaps
    .split("\n")
    .slice(1)
    .filter((line) => line.trim() !== "")
    .map((line) => line.split(/\s+/)[0]!);
  if (devices.length > 0) {
    return {
      ...base,
      status: "warn",
      detail: `swap is on (${devices.join(", ")})`,
      hint: "turn it off (`swapoff -a`, and drop it from /etc/fstab): the kubelet's memory limits assume no swap",
    };
  }
  return { ...base, status: "pass", detail: "off" };
};

export const checkClock: Check = ({ host, bundle, clockFloor }): CheckResult => {
  const now = host.now();
  const base = { id: "clock", title: "Clock" };
  const hint =
    "set the clock (`timedatectl set-time 'YYYY-MM-DD HH:MM:SS'`): certificates issued now would not be valid yet elsewhere";
  if (now < clockFloor) {
    return {
      ...base,
      status: "fail",
      detail: `${now.toISOString()} is before this airlock was built (${clockFloor.toISOString()})`,
      hint,
    };
  }
  if (bundle !== undefined && now < new Date(bundle.created)) {
    return {
      ...base,
      status: "fail",
      detail: `${now.toISOString()} is before the bundle was made (${bundle.created})`,
      hint,
    };
  }
  return { ...base, status: "pass", detail: now.toISOString() };
};
