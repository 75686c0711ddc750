import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  AirlockError,
  ERROR_CODES,
  OCI_ERROR_CODES,
  errorCodeInfo,
  errorCodesMarkdown,
  type ErrorCode,
} from "../../../registry/oci/index.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** The libraries' folders: where codes are thrown, compared and answered (tests do not count). */
const SOURCE_FOLDERS = ["registry", "bundle", "manifests", "installer", "ui-lite"];
const TABLE_FILE = join("registry", "oci", "error-codes.ts");

const codes = Object.keys(ERROR_CODES) as ErrorCode[];

async function sourceTexts(): Promise<string[]> {
  const texts: string[] = [];
  for (const folder of SOURCE_FOLDERS) {
    for (const name of await readdir(join(ROOT, folder), { recursive: true })) {
      if (!name.endsWith(".ts") || join(folder, name) === TABLE_FILE) continue;
      texts.push(await readFile(join(ROOT, folder, name), "utf8"));
    }
  }
  return texts;
}

describe("the error-code table", () => {
  it("holds SCREAMING_SNAKE codes in order, each with a one-line summary and a usable exit code", () => {
    expect(codes).toEqual([...codes].sort());
    for (const code of codes) {
      const info = errorCodeInfo(code);
      expect(code).toMatch(/^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$/);
      expect(info.summary, code).toMatch(/^[^\n]{10,110}$/);
      expect([1, 2], code).toContain(info.exitCode);
      expect(info.exitCode === 2 && info.retryable, `${code}: a usage error is not retried`).toBe(false);
      if (info.http !== undefined) expect(info.http, code).toBeGreaterThanOrEqual(400);
    }
  });

  it("gives every AirlockError its code's exit code", () => {
    expect(new AirlockError("USAGE", "x").exitCode).toBe(2);
    expect(new AirlockError("SPEC_INVALID", "x").exitCode).toBe(2);
    expect(new AirlockError("STORE_WRITE_FAILED", "x").exitCode).toBe(1);
  });

  it("derives the registry's OCI codes and statuses from the table", () => {
    const oci = codes.filter((code) => errorCodeInfo(code).oci === true);
    expect(Object.keys(OCI_ERROR_CODES).sort()).toEqual(oci);
    expect(OCI_ERROR_CODES).toMatchObject({ BLOB_UNKNOWN: 404, UNAUTHORIZED: 401, UNKNOWN: 500 });
    for (const code of oci) expect(errorCodeInfo(code).http, code).toBeDefined();
  });

  it("has no dead codes: each is thrown, compared or answered somewhere in the libraries", async () => {
    const texts = await sourceTexts();
    // A use is the code as a string, or as a key of a table by code (hints, messages); not a comment.
    const used = (code: ErrorCode): RegExp => new RegExp(`"${code}"|^\\s*${code}:`, "m");
    const unused = codes.filter((code) => !texts.some((text) => used(code).test(text)));
    expect(unused).toEqual([]);
  });

  it("is what docs/errors.md says (regenerate: npm run build && node scripts/write-error-codes.mjs)", async () => {
    const committed = await readFile(join(ROOT, "docs", "errors.md"), "utf8");
    expect(committed).toBe(errorCodesMarkdown());
    for (const code of codes)
      expect(committed).toContain(`- \`${code}\` (exit ${errorCodeInfo(code).exitCode}`);
  });
});
