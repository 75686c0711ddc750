import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultAuthFile } from "../../../bundle/registry-source.js";

describe("defaultAuthFile: where skopeo and podman look", () => {
  let runtimeDir: string;

  beforeAll(async () => {
    runtimeDir = await mkdtemp(join(tmpdir(), "airlock-xdg-"));
  });

  afterAll(async () => {
    await rm(runtimeDir, { recursive: true, force: true });
  });

  it("takes $REGISTRY_AUTH_FILE first, whether or not the file exists (reading it says so)", () => {
    expect(defaultAuthFile({ REGISTRY_AUTH_FILE: "/srv/auth.json", XDG_RUNTIME_DIR: runtimeDir })).toBe(
      "/srv/auth.json",
    );
  });

  it("falls back to $XDG_RUNTIME_DIR/containers/auth.json only when it exists", async () => {
    expect(defaultAuthFile({ XDG_RUNTIME_DIR: runtimeDir })).toBeUndefined();
    await mkdir(join(runtimeDir, "containers"));
    await writeFile(join(runtimeDir, "containers", "auth.json"), '{"auths":{}}');
    expect(defaultAuthFile({ XDG_RUNTIME_DIR: runtimeDir, REGISTRY_AUTH_FILE: "" })).toBe(
      join(runtimeDir, "containers", "auth.json"),
    );
    expect(defaultAuthFile({})).toBeUndefined();
  });
});
