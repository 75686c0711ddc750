import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  basicAuthorization,
  credentialsFromAuthFile,
  parseChallenge,
  parseCredentials,
} from "../../../registry/client/index.js";

describe("parseChallenge", () => {
  it("reads a Bearer challenge with quoted values, commas inside quotes and an error", () => {
    expect(
      parseChallenge(
        'Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push",error="insufficient_scope"',
      ),
    ).toEqual({
      scheme: "bearer",
      params: {
        realm: "https://auth.example/token",
        service: "registry.example",
        scope: "repository:a/b:pull,push",
        error: "insufficient_scope",
      },
    });
  });

  it("reads a Basic challenge, and unquoted values", () => {
    expect(parseChallenge('Basic realm="Registry Realm"')).toEqual({
      scheme: "basic",
      params: { realm: "Registry Realm" },
    });
    expect(parseChallenge("Bearer realm=https://x/token, service=x")?.params).toEqual({
      realm: "https://x/token",
      service: "x",
    });
    expect(parseChallenge("")).toBeUndefined();
  });
});

describe("credentials", () => {
  it("from a docker-style auth.json by host, as base64 user:password or as fields", async () => {
    const dir = await mkdtemp(join(tmpdir(), "airlock-auth-"));
    try {
      const file = join(dir, "auth.json");
      await writeFile(
        file,
        JSON.stringify({
          auths: {
            "harbor.site:443": { auth: Buffer.from("robot:pa:ss").toString("base64") },
            "https://zot.site": { username: "u", password: "p" },
          },
        }),
      );
      expect(await credentialsFromAuthFile(file, "harbor.site:443")).toEqual({
        username: "robot",
        password: "pa:ss",
      });
      expect(await credentialsFromAuthFile(file, "zot.site")).toEqual({ username: "u", password: "p" });
      expect(await credentialsFromAuthFile(file, "other.site")).toBeUndefined();
      await expect(credentialsFromAuthFile(join(dir, "missing.json"), "x")).rejects.toMatchObject({
        code: "AUTH_FILE_UNREADABLE",
      });
      await writeFile(file, "{ nope");
      await expect(credentialsFromAuthFile(file, "x")).rejects.toMatchObject({ code: "AUTH_FILE_INVALID" });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("from USER:PASSWORD, the password keeping its colons; a value without one is a usage error", () => {
    expect(parseCredentials("a:b:c")).toEqual({ username: "a", password: "b:c" });
    expect(() => parseCredentials("nobody")).toThrow(expect.objectContaining({ code: "USAGE", exitCode: 2 }));
    expect(basicAuthorization({ username: "a", password: "b" })).toBe(
      `Basic ${Buffer.from("a:b").toString("base64")}`,
    );
  });
});
