import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";

/** Tools the suite drives for real. A missing one fails the run up front instead of skipping tests. */
const REQUIRED_TOOLS = [
  "skopeo",
  "openssl",
  "tar",
  "sha256sum",
  "containerd",
  "ctr",
  "docker-registry",
  "htpasswd",
];

export default function setup(): void {
  const missing = REQUIRED_TOOLS.filter((tool) => {
    try {
      execFileSync("sh", ["-c", `command -v ${tool}`], { stdio: "ignore" });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) {
    throw new Error(`missing tools: ${missing.join(", ")}: run \`bash scripts/setup\` (as root) first`);
  }
  if (!existsSync("dist/installer/cli/main.js")) {
    throw new Error("dist/ is not built: run `npm run build` (npm test does it for you)");
  }
}
