import { hostname } from "node:os";
import { basename } from "node:path";
import type { HostRoot, Systemd } from "../host/index.js";
import type { OperationOptions } from "../../registry/oci/index.js";
import { k3sConfigYaml, type K3sSettings } from "./config.js";
import { K3S_BINARY, K3S_CONFIG, K3S_REGISTRIES, K3S_REGISTRY_CA, k3sPaths, type K3sRole } from "./layout.js";
import { k3sEnvFile, k3sUnit } from "./units.js";

export interface K3sInstallOptions extends OperationOptions {
  host: HostRoot;
  systemd: Systemd;
  role: K3sRole;
  /** The k3s binary to install: a file anywhere (the store's blob of the bundle's `bin/k3s`). */
  binary: string;
  /** Air-gap image archives k3s imports at start (the bundle's k3s images), by file name. */
  imageArchives?: readonly { name: string; source: string }[];
  /** registries.yaml (see registriesYaml) and the CA its ca_file names. */
  registries: string;
  registryCaPem: string;
  settings?: K3sSettings;
  /** An agent's server URL and join token. */
  join?: { server: string; token: string };
}

export interface K3sInstallResult {
  unit: string;
  nodeName: string;
  /** Host paths whose content changed: empty on a re-run that found everything in place. */
  changed: string[];
  /** Whether the service was restarted (a file it reads changed while it may have been running). */
  restarted: boolean;
}

/**
 * k3s from the bundle, as its install script would place it but with nothing downloaded: the
 * binary, the air-gap images, registries.yaml pointing at Airlock's registry, config.yaml, the unit
 * and its env file; then systemd reloads and starts it. Every file is written only if it differs,
 * so a re-run changes nothing, and a changed file restarts the service it feeds.
 */
export async function installK3s(options: K3sInstallOptions): Promise<K3sInstallResult> {
  const { host, role } = options;
  const settings = options.settings ?? {};
  const paths = k3sPaths(role, settings.dataDir);
  const nodeName = settings.nodeName ?? hostname();
  const files: [path: string, write: () => Promise<boolean>][] = [
    [K3S_BINARY, () => host.installFile(options.binary, K3S_BINARY, 0o755)],
    ...(options.imageArchives ?? []).map(({ name, source }): [string, () => Promise<boolean>] => {
      const target = `${paths.imagesDir}/${basename(name)}`;
      return [target, () => host.installFile(source, target, 0o644)];
    }),
    [K3S_REGISTRY_CA, () => host.writeFile(K3S_REGISTRY_CA, options.registryCaPem, 0o644)],
    // registries.yaml holds the pull account's password.
    [K3S_REGISTRIES, () => host.writeFile(K3S_REGISTRIES, options.registries, 0o600)],
    [K3S_CONFIG, () => host.writeFile(K3S_CONFIG, k3sConfigYaml(role, settings, nodeName), 0o600)],
    [paths.envFile, () => host.writeFile(paths.envFile, k3sEnvFile(options.join), 0o600)],
  ];
  const changed: string[] = [];
  for (const [index, [path, write]] of files.entries()) {
    options.signal?.throwIfAborted();
    options.onProgress?.({
      phase: "k3s files",
      done: index,
      total: files.length + 1,
      unit: "items",
      item: path,
    });
    if (await write()) changed.push(path);
  }
  const unitChanged = await options.systemd.installUnit(paths.unit, k3sUnit(role, paths.envFile));
  if (unitChanged) changed.push(`/etc/systemd/system/${paths.unit}`);
  options.onProgress?.({
    phase: "k3s service",
    done: files.length,
    total: files.length + 1,
    unit: "items",
    item: paths.unit,
  });
  if (unitChanged) await options.systemd.daemonReload();
  const running = await options.systemd.isActive(paths.unit);
  const restarted = running && changed.length > 0;
  if (!running || restarted) await options.systemd.enableAndStart(paths.unit, restarted);
  return { unit: paths.unit, nodeName, changed, restarted };
}
