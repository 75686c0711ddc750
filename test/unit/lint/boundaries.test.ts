import path from "node:path";
import { fileURLToPath } from "node:url";
import { ESLint } from "eslint";
import tseslint from "typescript-eslint";
import { describe, expect, it } from "vitest";
import { LIBRARIES, dependencyOrder } from "../../../eslint/boundaries.js";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../..");
// The repository's own eslint.config.js, without type information so that files which do not exist
// on disk can be linted: the boundary rule needs only the import specifiers.
const eslint = new ESLint({ cwd: repoRoot, overrideConfig: [tseslint.configs.disableTypeChecked] });

async function boundaryMessages(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return (result?.messages ?? [])
    .filter((message) => message.ruleId === "airlock/boundaries" || message.fatal === true)
    .map((message) => `${message.line}: ${message.message}`);
}

describe("folder boundaries (eslint/boundaries.js through eslint.config.js)", () => {
  it("reports an import of another library's internal file", async () => {
    const messages = await boundaryMessages(
      "bundle/planted.ts",
      'import { FsBlobStore } from "../registry/store/blobs.js";\nexport const store = FsBlobStore;\n',
    );
    expect(messages).toEqual([
      "1: '../registry/store/blobs.js' is internal to registry/store: import registry/store/index.js instead",
    ]);
  });

  it("reports an internal import between installer sub-folders", async () => {
    const messages = await boundaryMessages(
      "installer/cli/planted.ts",
      'export { issueCertificate } from "../pki/x509.js";\n',
    );
    expect(messages).toEqual([
      "1: '../pki/x509.js' is internal to installer/pki: import installer/pki/index.js instead",
    ]);
  });

  it("reports registry/oci importing registry/store, even through its index or as a type", async () => {
    const messages = await boundaryMessages(
      "registry/oci/planted.ts",
      [
        'import type { ContentStore } from "../store/index.js";',
        'export type Store = import("../store/index.js").ContentStore;',
        'export const load = () => import("../store/index.js");',
        "export type P = ContentStore;",
      ].join("\n"),
    );
    const wrongWay =
      "registry/oci may not import registry/store (it may import: nothing); the table is in eslint/boundaries.js";
    expect(messages).toEqual([`1: ${wrongWay}`, `2: ${wrongWay}`, `3: ${wrongWay}`]);
  });

  it("reports bundle importing the installer, and a sibling registry library it may not use", async () => {
    const messages = await boundaryMessages(
      "bundle/planted.ts",
      'export * from "../installer/cli/index.js";\nexport { serveRegistry } from "../registry/server/index.js";\n',
    );
    expect(messages).toEqual([
      expect.stringMatching(/^1: bundle may not import installer\/cli \(it may import: registry\/oci, /),
      expect.stringMatching(/^2: bundle may not import registry\/server /),
    ]);
  });

  it("reports a library importing a file that belongs to no library, and a file outside the table", async () => {
    expect(await boundaryMessages("manifests/planted.ts", 'import "../test/helpers/errors.js";\n')).toEqual([
      "1: '../test/helpers/errors.js' is in no library: manifests imports only its own files and libraries' index.ts",
    ]);
    expect(await boundaryMessages("registry/shared/planted.ts", "export const x = 1;\n")).toEqual([
      "1: registry/shared/planted.ts is in no library of the table in eslint/boundaries.js: add its folder there",
    ]);
  });

  it("accepts an index import along the table, a library's own files, and tests importing internals", async () => {
    expect(
      await boundaryMessages(
        "bundle/planted.ts",
        [
          'import type { ContentStore } from "../registry/store/index.js";',
          'import { RegistryClient } from "../registry/client/index.js";',
          'import { parseBundleSpec } from "./spec.js";',
          "export type P = ContentStore;",
          "export const used = [RegistryClient, parseBundleSpec];",
        ].join("\n"),
      ),
    ).toEqual([]);
    expect(
      await boundaryMessages("installer/cli/planted.ts", 'export { loadPki } from "../pki/index.js";\n'),
    ).toEqual([]);
    expect(
      await boundaryMessages(
        "test/unit/registry/planted.test.ts",
        'export { FsBlobStore } from "../../../registry/store/blobs.js";\n',
      ),
    ).toEqual([]);
  });
});

describe("the boundary table", () => {
  it("is one-way: every library comes after all it may import", () => {
    const order = dependencyOrder(LIBRARIES);
    for (const [library, dependencies] of Object.entries(LIBRARIES)) {
      for (const dependency of dependencies)
        expect(order.indexOf(dependency)).toBeLessThan(order.indexOf(library));
    }
    expect(() => dependencyOrder({ a: ["b"], b: ["c"], c: ["a"] })).toThrow("a → b → c → a");
  });

  it("names only libraries of the table", () => {
    for (const dependencies of Object.values(LIBRARIES)) {
      for (const dependency of dependencies) expect(Object.keys(LIBRARIES)).toContain(dependency);
    }
  });
});
