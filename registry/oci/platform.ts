import { AirlockError } from "./errors.js";
import type { Platform } from "./manifest.js";

/** Parses `os/arch[/variant]`, as `--platform` and `platforms:` spell it. */
export function parsePlatform(value: string, where?: string): Platform {
  const parts = value.split("/");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => !/^[a-z0-9._-]+$/.test(p))) {
    throw new AirlockError("PLATFORM_INVALID", `not a platform: ${JSON.stringify(value)}`, {
      where,
      hint: "write a platform as os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8",
    });
  }
  const [os, architecture, variant] = parts as [string, string, string | undefined];
  return variant === undefined ? { os, architecture } : { os, architecture, variant };
}

export function formatPlatform(platform: Platform): string {
  return [platform.os, platform.architecture, platform.variant].filter(Boolean).join("/");
}

/** True when `candidate` satisfies `wanted`; a wanted platform without a variant accepts any variant. */
export function platformMatches(candidate: Platform | undefined, wanted: Platform): boolean {
  if (candidate === undefined) return false;
  if (candidate.os !== wanted.os || candidate.architecture !== wanted.architecture) return false;
  return wanted.variant === undefined || candidate.variant === wanted.variant;
}
