// test/helpers' NATS client and request/reply traffic (nats-client.ts, nats-traffic.ts) for the
// scripts: transpiled to JavaScript in a directory of the caller's (they import only node: modules
// and each other), so the demo and bench/upgrade.mjs run the very client the tests run.
import fs from "node:fs/promises";
import path from "node:path";
import ts from "typescript";

const HELPERS = path.resolve(import.meta.dirname, "..", "test", "helpers");

/** Writes the two modules into `dir`; resolves with nats-traffic's exports and the NatsClient class. */
export async function loadNatsTraffic(dir) {
  await fs.mkdir(dir, { recursive: true });
  for (const name of ["nats-client", "nats-traffic"]) {
    const source = await fs.readFile(path.join(HELPERS, `${name}.ts`), "utf8");
    const { outputText } = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
    });
    await fs.writeFile(path.join(dir, `${name}.js`), outputText);
  }
  await fs.writeFile(path.join(dir, "package.json"), '{ "type": "module" }\n');
  const traffic = await import(path.join(dir, "nats-traffic.js"));
  const { NatsClient } = await import(path.join(dir, "nats-client.js"));
  return { ...traffic, NatsClient };
}
