import { existsSync } from "node:fs";
import { join } from "node:path";
import { ADMIN_USER } from "../install/index.js";
import { STATE_FILE, openState, type State } from "../state/index.js";

/** How the site's install set the registry up: what `airlock serve` runs with unless flags say otherwise. */
export interface InstalledSite {
  registryListen?: string;
  tls?: { certFile: string; keyFile: string };
  auth?: { file: string; pushUser: string };
}

function doneDetail(state: State, installId: number, name: string): Record<string, unknown> | undefined {
  const step = state.installs.steps(installId).find((candidate) => candidate.name === name);
  return step?.state === "done" ? step.detail : undefined;
}

function stringAt(record: Record<string, unknown> | undefined, key: string): string | undefined {
  const value = record?.[key];
  return typeof value === "string" ? value : undefined;
}

/** The registry's address, certificate and accounts the latest install recorded; nothing on a bare data dir. */
export function installedSite(dataDir: string): InstalledSite {
  if (!existsSync(join(dataDir, STATE_FILE))) return {};
  const state = openState(dataDir, { actor: "daemon" });
  try {
    const latest = state.installs.latest();
    if (latest === undefined) return {};
    const pki = doneDetail(state, latest.id, "pki");
    const registry = doneDetail(state, latest.id, "registry");
    const tls = pki?.registry as Record<string, unknown> | undefined;
    const certFile = stringAt(tls, "certFile");
    const keyFile = stringAt(tls, "keyFile");
    const htpasswdFile = stringAt(registry, "htpasswdFile");
    return {
      registryListen: stringAt(registry, "listen"),
      tls: certFile !== undefined && keyFile !== undefined ? { certFile, keyFile } : undefined,
      auth: htpasswdFile === undefined ? undefined : { file: htpasswdFile, pushUser: ADMIN_USER },
    };
  } finally {
    state.close();
  }
}
