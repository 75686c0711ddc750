import { renderUnit } from "../host/index.js";
import { K3S_BINARY, type K3sRole } from "./layout.js";

/** k3s's service unit as its install script writes it, for a server or an agent. */
export function k3sUnit(role: K3sRole, envFile: string): string {
  return renderUnit(`k3s ${role}, installed from the bundle`, [
    [
      "Unit",
      [
        ["Description", role === "server" ? "Lightweight Kubernetes" : "Lightweight Kubernetes agent"],
        ["Wants", "network-online.target"],
        ["After", "network-online.target"],
      ],
    ],
    ["Install", [["WantedBy", "multi-user.target"]]],
    [
      "Service",
      [
        ["Type", "notify"],
        ["EnvironmentFile", `-${envFile}`],
        ["KillMode", "process"],
        ["Delegate", "yes"],
        ["LimitNOFILE", "1048576"],
        ["LimitNPROC", "infinity"],
        ["LimitCORE", "infinity"],
        ["TasksMax", "infinity"],
        ["TimeoutStartSec", "0"],
        ["Restart", "always"],
        ["RestartSec", "5s"],
        ["ExecStartPre", "-/sbin/modprobe br_netfilter"],
        ["ExecStartPre", "-/sbin/modprobe overlay"],
        ["ExecStart", `${K3S_BINARY} ${role}`],
      ],
    ],
  ]);
}

/** The unit's environment: an agent's server and join secret (0600: it holds the secret). */
export function k3sEnvFile(join: { server: string; token: string } | undefined): string {
  const lines = ["# Written by Airlock."];
  if (join !== undefined)
    lines.push(`K3S_URL=${JSON.stringify(join.server)}`, `K3S_TOKEN=${JSON.stringify(join.token)}`);
  return `${lines.join("\n")}\n`;
}
