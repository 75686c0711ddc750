/**
 * The built CLI (`dist/installer/cli/main.js`) as an operator runs it: keys, build, verify, inspect,
 * import, ls, fsck, diff, inventory, gc; JSON on stdout with --json; errors as `error CODE: …` with a
 * hint on stderr, no stack unless --debug; exit 0 ok, 1 failed, 2 usage.
 */
import { readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { indexTarFile } from "../../bundle/index.js";
import { Store } from "../../registry/store/index.js";
import {
  MiB,
  flipByte,
  runCli,
  sha256File,
  useFixtures,
  type CliResult,
  type Fixtures,
} from "../helpers/fixtures.js";

let fx: Fixtures;
let work: string;
let dataDir: string;
let key: string;
let pub: string;
let otherPub: string;
let fingerprint: string;
let bundle: string;
let bundle440: string;

/** Runs the CLI and expects exit 0 with nothing alarming on stderr. */
async function ok(args: string[], env?: NodeJS.ProcessEnv): Promise<CliResult> {
  const result = await runCli(args, { env });
  expect(result.code, `airlock ${args.join(" ")}\n${result.stderr}`).toBe(0);
  expect(result.stderr).not.toMatch(/^error /m);
  return result;
}

function json<T>(result: CliResult): T {
  return JSON.parse(result.stdout) as T;
}

/** An AirlockError as the CLI prints it: `error CODE: message`, where, hint; no stack; the exit code. */
function expectPrintedError(result: CliResult, code: string, exitCode: number): void {
  expect(result.code, result.stderr).toBe(exitCode);
  const lines = result.stderr.trimEnd().split("\n");
  expect(lines[0]).toMatch(new RegExp(`^error ${code}: \\S`));
  expect(result.stderr).toMatch(/^ {2}hint: +\S/m);
  expect(result.stderr).not.toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  expect(result.stderr).not.toContain("AirlockError:");
}

beforeAll(async () => {
  fx = await useFixtures({ size: 8 * MiB });
  work = await fx.dir("work");
  dataDir = join(await fx.dir("site"), "data");
  key = join(work, "key.pem");
  pub = join(work, "pub.pem");
  otherPub = join(work, "other-pub.pem");
  bundle = join(work, "mgmt-4.5.0.airlock.tar");
  bundle440 = join(work, "mgmt-4.4.0.airlock.tar");
});

afterAll(async () => {
  await fx?.cleanup();
});

describe("airlock, run as a user", () => {
  it("keys generate makes an ECDSA P-256 pair, the private key 0600, and refuses to overwrite it", async () => {
    const result = json<{ privateKey: string; publicKey: string; fingerprint: string }>(
      await ok(["--json", "keys", "generate", "--private-key", key, "--public-key", pub]),
    );
    expect(result).toEqual({
      privateKey: key,
      publicKey: pub,
      fingerprint: expect.stringMatching(/^sha256:[a-f0-9]{64}$/) as string,
    });
    fingerprint = result.fingerprint;
    expect((await stat(key)).mode & 0o777).toBe(0o600);
    expect(await readFile(pub, "utf8")).toContain("BEGIN PUBLIC KEY");
    await ok(["keys", "generate", "--private-key", join(work, "other-key.pem"), "--public-key", otherPub]);

    const again = await runCli(["keys", "generate", "--private-key", key, "--public-key", pub]);
    expectPrintedError(again, "KEY_EXISTS", 2);
  });

  it("bundle build --sign-key writes a signed bundle and reports it", async () => {
    const text = await ok([
      "--no-progress",
      "bundle",
      "build",
      "-f",
      fx.spec,
      "-o",
      bundle,
      "--sign-key",
      key,
    ]);
    expect(text.stdout).toContain(`built mgmt 4.5.0 → ${bundle}`);
    expect(text.stdout).toContain(`signed     yes, key ${fingerprint}`);
    const first = await sha256File(bundle);
    const result = json<{
      name: string;
      version: string;
      signed: boolean;
      keyFingerprint: string;
      digest: string;
      bytes: number;
    }>(await ok(["--json", "bundle", "build", "-f", fx.spec, "-o", bundle, "--sign-key", key]));
    expect(result).toMatchObject({
      name: "mgmt",
      version: "4.5.0",
      signed: true,
      keyFingerprint: fingerprint,
      bytes: (await stat(bundle)).size,
    });
    expect(await sha256File(bundle)).toBe(first);
    await ok(["--no-progress", "bundle", "build", "-f", fx.spec440, "-o", bundle440]);
  });

  it("bundle verify --key checks the signature and every entry", async () => {
    const text = await ok(["--no-progress", "bundle", "verify", bundle, "--key", pub]);
    expect(text.stdout).toMatch(/^ok: mgmt 4\.5\.0, \d+ entries/m);
    expect(text.stdout).toContain(`signature verified by ${fingerprint}`);
    const result = json<{ ok: boolean; signature: { status: string }; parts: number; entries: number }>(
      await ok(["bundle", "verify", bundle, "--key", pub, "--json"]),
    );
    expect(result).toMatchObject({ ok: true, signature: { status: "verified" }, parts: 1 });
    // Every regular entry after airlock.json and its signature was checked.
    const regular = [...(await indexTarFile(bundle)).values()].filter((entry) => entry.typeflag === "0");
    expect(result.entries).toBe(regular.length - 2);
  });

  it("bundle inspect --json shows what the bundle holds", async () => {
    const result = json<{
      name: string;
      version: string;
      upgradeFrom: string;
      images: { ref: string; digest: string; platforms: string[]; kind: string }[];
      packs: { name: string; version: string }[];
      files: { path: string }[];
      totals: { images: number; parts: number; archiveBytes: number };
      signature: { status: string; keyFingerprint?: string };
    }>(await ok(["--json", "bundle", "inspect", bundle, "--key", pub]));
    expect(result).toMatchObject({
      name: "mgmt",
      version: "4.5.0",
      upgradeFrom: ">=4.4.0 <4.5.0",
      signature: { status: "verified", keyFingerprint: fingerprint },
    });
    expect(result.images.map((image) => image.ref).sort()).toEqual([
      "hubble/agent:4.5.0",
      "hubble/console:4.5.0",
      "hubble/msgbroker:4.5.0",
      "packs/observability:0.1.0",
    ]);
    expect(result.images.find((image) => image.ref === "hubble/console:4.5.0")).toMatchObject({
      digest: fx.summary.images["hubble/console:4.5.0"]!.digest,
      platforms: ["linux/amd64", "linux/arm64/v8"],
    });
    expect(result.images.find((image) => image.ref === "hubble/msgbroker:4.5.0")).toMatchObject({
      digest: fx.summary.images["hubble/msgbroker:4.5.0"]!.digest,
      platforms: fx.summary.images["hubble/msgbroker:4.5.0"]!.platforms,
    });
    expect(result.packs).toMatchObject([{ name: "observability", version: "0.1.0" }]);
    expect(result.files.map((file) => file.path).sort()).toEqual([
      "bin/k3s",
      "manifests/namespace.yaml",
      "manifests/values.yaml",
    ]);
    expect(result.totals).toMatchObject({ images: 4, parts: 1, archiveBytes: (await stat(bundle)).size });
    const text = await ok(["bundle", "inspect", bundle]);
    expect(text.stdout).toMatch(/^name +mgmt 4\.5\.0 \(upgrades from >=4\.4\.0 <4\.5\.0\)$/m);
    expect(text.stdout).toMatch(/^signature +unchecked$/m);
  });

  it("bundle import --json imports into --data-dir; a second import is a no-op", async () => {
    const first = json<{
      imported: boolean;
      name: string;
      version: string;
      blobsWritten: number;
      signature: { status: string };
    }>(await ok(["--data-dir", dataDir, "--json", "bundle", "import", bundle, "--key", pub]));
    expect(first).toMatchObject({
      imported: true,
      name: "mgmt",
      version: "4.5.0",
      signature: { status: "verified" },
    });
    expect(first.blobsWritten).toBeGreaterThan(10);
    const second = json<{ imported: boolean; blobsWritten: number }>(
      await ok(["--data-dir", dataDir, "--json", "bundle", "import", bundle]),
    );
    expect(second).toMatchObject({ imported: false, blobsWritten: 0 });
    const text = await ok(["--data-dir", dataDir, "--no-progress", "bundle", "import", bundle]);
    expect(text.stdout).toContain("already imported");
  });

  it("bundle ls --json lists the imported bundle, with --data-dir or AIRLOCK_HOME", async () => {
    const list = json<{ name: string; version: string; signature: string; images: unknown[] }[]>(
      await ok(["--data-dir", dataDir, "--json", "bundle", "ls"]),
    );
    expect(list).toHaveLength(1);
    expect(list[0]).toMatchObject({ name: "mgmt", version: "4.5.0", signature: "verified" });
    expect(list[0]!.images).toHaveLength(4);
    const viaEnv = json<unknown[]>(await ok(["--json", "bundle", "ls"], { AIRLOCK_HOME: dataDir }));
    expect(viaEnv).toEqual(list);
  });

  it("store fsck --json reports a clean store", async () => {
    const report = json<{
      ok: boolean;
      blobs: number;
      corrupt: unknown[];
      missing: unknown[];
      unreferenced: unknown[];
    }>(await ok(["--data-dir", dataDir, "--json", "store", "fsck"]));
    expect(report).toMatchObject({ ok: true, corrupt: [], missing: [], unreferenced: [] });
    expect(report.blobs).toBeGreaterThan(10);
  });

  it("bundle diff A B --json compares two bundles", async () => {
    const diff = json<{
      from: { version: string };
      to: { version: string };
      images: { added: { ref: string }[]; removed: { ref: string }[] };
      blobs: { shared: number; sharedBytes: number };
      deltaBytes: number;
    }>(await ok(["--json", "bundle", "diff", bundle440, bundle]));
    expect(diff.from.version).toBe("4.4.0");
    expect(diff.to.version).toBe("4.5.0");
    expect(diff.images.removed.map((image) => image.ref)).toEqual(["hubble/msgbroker:4.4.0"]);
    expect(diff.images.added).toHaveLength(4);
    expect(diff.blobs.shared).toBe(1);
    expect(diff.deltaBytes).toBeGreaterThan(0);
  });

  it("bundle inventory -o writes what the site holds, and a delta builds from it", async () => {
    const inventory = join(work, "inventory.json");
    const result = await ok(["--data-dir", dataDir, "bundle", "inventory", "-o", inventory]);
    expect(result.stdout).toContain(`wrote ${inventory}: 1 bundles`);
    const doc = JSON.parse(await readFile(inventory, "utf8")) as {
      kind: string;
      bundles: { name: string; version: string }[];
      blobs: { digest: string }[];
    };
    expect(doc.kind).toBe("airlock-inventory");
    expect(doc.bundles).toMatchObject([{ name: "mgmt", version: "4.5.0" }]);
    const fsck = json<{ blobs: number }>(await ok(["--data-dir", dataDir, "--json", "store", "fsck"]));
    expect(doc.blobs).toHaveLength(fsck.blobs);
    // A delta against a site that holds everything carries no blob at all.
    const delta = join(work, "delta.airlock.tar");
    const built = json<{ base: { blobsOmitted: number } }>(
      await ok(["--json", "bundle", "build", "-f", fx.spec, "-o", delta, "--base-inventory", inventory]),
    );
    const inspected = json<{ totals: { blobs: number }; base: { blobs: number } }>(
      await ok(["--json", "bundle", "inspect", delta]),
    );
    expect(inspected.totals.blobs).toBe(0);
    expect(inspected.base.blobs).toBe(built.base.blobsOmitted);
    await ok(["--data-dir", dataDir, "bundle", "import", delta]);
  });

  it("gc spares young unreferenced blobs; --grace 0s --dry-run lists them and removes nothing; registry gc removes them", async () => {
    const store = await Store.open(dataDir);
    let orphan: string;
    try {
      orphan = (await store.blobs.put([Buffer.from("an orphan blob no bundle references\n")], {})).digest;
    } finally {
      store.close();
    }
    const young = json<{ removed: { digest: string }[] }>(
      await ok(["--data-dir", dataDir, "--json", "store", "gc", "--dry-run"]),
    );
    expect(young.removed).toEqual([]);
    const report = json<{ dryRun: boolean; removed: { digest: string }[]; bytesFreed: number }>(
      await ok(["--data-dir", dataDir, "--json", "store", "gc", "--dry-run", "--grace", "0s"]),
    );
    expect(report.dryRun).toBe(true);
    expect(report.removed.map((blob) => blob.digest)).toEqual([orphan]);
    expect(report.bytesFreed).toBe(36);
    const path = join(dataDir, "store", "blobs", "sha256", orphan.slice("sha256:".length));
    await expect(stat(path)).resolves.toBeDefined();
    const real = json<{ dryRun: boolean; removed: { digest: string }[] }>(
      await ok(["--data-dir", dataDir, "--json", "registry", "gc", "--grace", "0s"]),
    );
    expect(real.removed.map((blob) => blob.digest)).toEqual([orphan]);
    await expect(stat(path)).rejects.toThrow();
  });
});

describe("errors, as the operator sees them", () => {
  it("a wrong key: `error CODE: …` and a hint on stderr, no stack, exit 1", async () => {
    const result = await runCli(["--no-progress", "bundle", "verify", bundle, "--key", otherPub]);
    expectPrintedError(result, "BUNDLE_SIGNATURE_INVALID", 1);
    expect(result.stderr).toContain(`where: ${bundle}`);
    expect(result.stdout).toBe("");
  });

  it("--json puts the error on stdout as JSON too", async () => {
    const result = await runCli(["--json", "bundle", "verify", bundle, "--key", otherPub]);
    expectPrintedError(result, "BUNDLE_SIGNATURE_INVALID", 1);
    expect(json<{ error: { code: string; where: string; hint: string } }>(result).error).toMatchObject({
      code: "BUNDLE_SIGNATURE_INVALID",
      where: bundle,
      hint: expect.any(String) as string,
    });
  });

  it("--debug adds the stack", async () => {
    const result = await runCli(["--debug", "--no-progress", "bundle", "verify", bundle, "--key", otherPub]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^error BUNDLE_SIGNATURE_INVALID: /);
    expect(result.stderr).toMatch(/^\s+at .+:\d+:\d+\)?$/m);
  });

  it("a damaged bundle names the bad entry, exit 1", async () => {
    const damaged = join(work, "damaged.airlock.tar");
    await ok(["--no-progress", "bundle", "build", "-f", fx.spec, "-o", damaged]);
    const victim = [...(await indexTarFile(damaged)).values()].find(
      (entry) => entry.name.startsWith("blobs/sha256/") && entry.size > 4096,
    )!;
    await flipByte(damaged, victim.dataOffset + 1000);
    const result = await runCli(["--no-progress", "bundle", "verify", damaged]);
    expectPrintedError(result, "BUNDLE_ENTRY_CORRUPT", 1);
    expect(result.stderr).toContain(victim.name);
    // A fresh site: in dataDir the same airlock.json is already imported, and import stops at its head.
    const site = join(await fx.dir("damaged-site"), "data");
    const imported = await runCli(["--data-dir", site, "--no-progress", "bundle", "import", damaged]);
    expectPrintedError(imported, "BUNDLE_ENTRY_CORRUPT", 1);
    expect(json<unknown[]>(await ok(["--data-dir", site, "--json", "bundle", "ls"]))).toEqual([]);
    const fsck = json<{ ok: boolean; blobs: number; unreferenced: string[]; staleIngests: number }>(
      await ok(["--data-dir", site, "--json", "store", "fsck"]),
    );
    // What it stored before the damaged entry stays for gc, referenced by nothing (issue 10, point 5).
    expect(fsck).toMatchObject({ ok: true, staleIngests: 0 });
    expect(fsck.unreferenced).toHaveLength(fsck.blobs);
  });

  it("an invalid bundle.yaml: SPEC_INVALID at file:line:col, exit 2; a missing one: SPEC_NOT_FOUND", async () => {
    const spec = join(fx.sampleDir, "bad.yaml");
    await writeFile(spec, (await readFile(fx.spec, "utf8")).replace("version: 4.5.0", "version: v4.5"));
    const result = await runCli(["--no-progress", "bundle", "build", "-f", spec, "-o", join(work, "x.tar")]);
    expectPrintedError(result, "SPEC_INVALID", 2);
    expect(result.stderr).toContain(`where: ${spec}:2:10`);
    const missing = await runCli([
      "--no-progress",
      "bundle",
      "build",
      "-f",
      join(fx.sampleDir, "nope.yaml"),
      "-o",
      join(work, "x.tar"),
    ]);
    expectPrintedError(missing, "SPEC_NOT_FOUND", 2);
    await expect(stat(join(work, "x.tar"))).rejects.toThrow();
  });

  it("usage errors exit 2: an unknown flag, a missing -f", async () => {
    const unknown = await runCli(["bundle", "verify", bundle, "--bogus"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("unknown option '--bogus'");
    expect(unknown.stderr).not.toMatch(/^\s+at /m);

    const missing = await runCli(["bundle", "build", "-o", join(work, "x.tar")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("required option '-f, --file <bundle.yaml>' not specified");
    await expect(stat(join(work, "x.tar"))).rejects.toThrow();

    const badSize = await runCli([
      "bundle",
      "build",
      "-f",
      fx.spec,
      "-o",
      join(work, "x.tar"),
      "--split-size",
      "lots",
    ]);
    expectPrintedError(badSize, "USAGE", 2);
  });
});
