import { runCommand, type CommandRunner } from "./run.js";
import type { HostRoot } from "./files.js";

/** A unit file's sections, in order, each a list of `Key=value` lines (keys may repeat). */
export type UnitSections = [section: string, lines: [key: string, value: string][]][];

export function renderUnit(description: string, sections: UnitSections): string {
  const lines = [`# Written by Airlock: ${description}. Re-running the install rewrites it.`];
  for (const [section, entries] of sections) {
    lines.push("", `[${section}]`, ...entries.map(([key, value]) => `${key}=${value}`));
  }
  return `${lines.join("\n")}\n`;
}

/** The folder where Airlock puts the units it writes, as the host sees it. */
export const UNIT_DIR = "/etc/systemd/system";

/**
 * systemd, through one command runner: the real `systemctl` on a host, a stand-in that records its
 * calls in tests. Units are files under the host root; `install` writes one and says whether it
 * changed, so the caller reloads and restarts only what changed.
 */
export class Systemd {
  constructor(
    private readonly host: HostRoot,
    private readonly run: CommandRunner = runCommand,
  ) {}

  /** Writes `/etc/systemd/system/<name>`; true when its content changed. */
  installUnit(name: string, content: string): Promise<boolean> {
    return this.host.writeFile(`${UNIT_DIR}/${name}`, content, 0o644);
  }

  async daemonReload(): Promise<void> {
    await this.run("systemctl", ["daemon-reload"]);
  }

  /** Enables the unit and starts it; restarts it instead when `restart` (its files changed). */
  async enableAndStart(name: string, restart: boolean): Promise<void> {
    await this.run("systemctl", ["enable", name]);
    await this.run("systemctl", [restart ? "restart" : "start", name]);
  }

  async stop(name: string): Promise<void> {
    await this.run("systemctl", ["stop", name]);
  }

  /**
   * Stops, disables and removes a unit Airlock wrote earlier under another name; true when there was
   * one (the caller then reloads systemd).
   */
  async removeUnit(name: string): Promise<boolean> {
    if (!(await this.host.exists(`${UNIT_DIR}/${name}`))) return false;
    await this.run("systemctl", ["stop", name]);
    await this.run("systemctl", ["disable", name]);
    await this.host.removeFile(`${UNIT_DIR}/${name}`);
    return true;
  }

  /** `systemctl is-active`: true only for "active" (it exits non-zero for every other state). */
  async isActive(name: string): Promise<boolean> {
    try {
      const { stdout } = await this.run("systemctl", ["is-active", name]);
      return stdout.trim() === "active";
    } catch {
      return false;
    }
  }
}
