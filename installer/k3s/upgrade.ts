import { parse } from "yaml";
import type { CommandRunner, HostRoot, Systemd } from "../host/index.js";
import { AirlockError } from "../../registry/oci/index.js";
import { K3S_BINARY, K3S_CONFIG, k3sPaths } from "./layout.js";

/**
 * k3s replaced by the binary of a newer bundle, on the host: the new one staged beside the running
 * one and asked its version, the Kubernetes version skew rules checked (no downgrade, no skipped
 * minor), the running binary kept, the new one renamed into place (atomic: the service never sees
 * half a file), the service restarted; and the kept one put back for a rollback.
 */

/** The new binary, staged: executable, so its `--version` can be asked before it replaces anything. */
export const K3S_STAGED = `${K3S_BINARY}-airlock-next`;
/** The binary it replaced, kept until the next upgrade: what a rollback restores. */
export const K3S_PREVIOUS = `${K3S_BINARY}-airlock-previous`;

export interface K3sVersion {
  /** As k3s and the Node's kubeletVersion print it: `v1.32.3+k3s1`. */
  text: string;
  major: number;
  minor: number;
  patch: number;
  /** The `+k3sN` build of the same Kubernetes version. */
  build: number;
}

/** `k3s --version`'s first line: `k3s version v1.32.3+k3s1 (079ffa8d)`. */
export function parseK3sVersion(output: string, where: string): K3sVersion {
  const match = /^k3s version (v(\d+)\.(\d+)\.(\d+)(?:\+k3s(\d+))?)\b/m.exec(output);
  if (match === null) {
    throw new AirlockError("K3S_VERSION_UNKNOWN", `${where} --version did not print a k3s version`, {
      where,
      hint: "the bundle's bin/k3s must be a k3s binary for this host's architecture",
    });
  }
  const [, text, major, minor, patch, build] = match;
  return {
    text: text!,
    major: Number(major),
    minor: Number(minor),
    patch: Number(patch),
    build: Number(build ?? 0),
  };
}

export async function k3sVersionAt(
  host: HostRoot,
  hostPath: string,
  run: CommandRunner,
): Promise<K3sVersion> {
  const { stdout } = await run(host.path(hostPath), ["--version"]);
  return parseK3sVersion(stdout, hostPath);
}

function compare(a: K3sVersion, b: K3sVersion): number {
  return a.major - b.major || a.minor - b.minor || a.patch - b.patch || a.build - b.build;
}

/**
 * Kubernetes's skew rules for replacing a server's binary: never older, and at most one minor
 * version newer (1.31 → 1.33 must go through 1.32). A reason when refused, undefined when allowed.
 */
export function k3sSkewProblem(current: K3sVersion, next: K3sVersion): string | undefined {
  if (compare(next, current) < 0)
    return `${next.text} is older than the running ${current.text}: k3s is never downgraded`;
  if (next.major !== current.major || next.minor > current.minor + 1) {
    return `${current.text} → ${next.text} skips a minor version: upgrade through v${current.major}.${current.minor + 1} first`;
  }
  return undefined;
}

/** Writes the new binary beside the running one (0755, atomic); false (and nothing staged) when they are the same. */
export async function stageK3s(host: HostRoot, binary: string): Promise<boolean> {
  await host.installFile(binary, K3S_STAGED, 0o755);
  if ((await host.sha256(K3S_STAGED)) !== (await host.sha256(K3S_BINARY))) return true;
  await host.remove(K3S_STAGED);
  return false;
}

/** The node name and unit of the k3s server Airlock installed here, from its config.yaml. */
export async function installedK3s(host: HostRoot): Promise<{ nodeName: string; unit: string }> {
  const config = await host.readFile(K3S_CONFIG);
  const nodeName =
    config === undefined ? undefined : (parse(config) as { "node-name"?: string })["node-name"];
  if (nodeName === undefined) {
    throw new AirlockError("K3S_NOT_INSTALLED", "this host runs no k3s server Airlock installed", {
      where: K3S_CONFIG,
      hint: "the bundle carries k3s, but the plane runs on a cluster Airlock did not install: upgrade that cluster's Kubernetes by its own means",
    });
  }
  return { nodeName, unit: k3sPaths("server").unit };
}

/** Keeps the running binary as K3S_PREVIOUS, renames the staged one into place, restarts the service. */
export async function swapK3s(host: HostRoot, systemd: Systemd, unit: string): Promise<void> {
  await host.installFile(host.path(K3S_BINARY), K3S_PREVIOUS, 0o755);
  await host.rename(K3S_STAGED, K3S_BINARY);
  await systemd.enableAndStart(unit, true);
}

/** Puts the kept binary back (atomic) and restarts the service; false when none was kept. */
export async function restoreK3s(host: HostRoot, systemd: Systemd, unit: string): Promise<boolean> {
  if (!(await host.exists(K3S_PREVIOUS))) return false;
  await host.installFile(host.path(K3S_PREVIOUS), K3S_BINARY, 0o755);
  await systemd.enableAndStart(unit, true);
  return true;
}
