/**
 * Shared helpers of the integration and e2e tests: generated fixtures in a temp dir per test file,
 * the built CLI, hashing, and snapshots of a store to prove a failed operation left it as it was.
 */
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { copyFile, mkdir, mkdtemp, open, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";
import { generateFixtures } from "../../scripts/fixtures.mjs";
import type { FixturesSummary } from "../../scripts/fixtures.mjs";
import { buildBundle, indexTarFile, readBundleHead, type BundleMetadata } from "../../bundle/index.js";
import type { AirlockError } from "../../registry/oci/index.js";
import { Store, type StoreOptions, type StoredBundle, type TagRecord } from "../../registry/store/index.js";
import { rejection } from "./errors.js";

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
/** The built CLI; `npm test` builds it before vitest runs. */
export const CLI = join(REPO_ROOT, "dist", "installer", "cli", "main.js");
export const MiB = 1024 * 1024;

export interface Fixtures {
  /** The temp dir holding everything; removed by `cleanup`. */
  root: string;
  summary: FixturesSummary;
  /**
   * sample/bundle.yaml: mgmt 4.5.0 from an OCI layout (the real msgbroker image), an oci-archive
   * (console's two-platform index), a docker-archive (agent), a pack, manifests and bin/k3s.
   */
  spec: string;
  /** sample/bundle-4.4.0.yaml: mgmt 4.4.0, msgbroker:4.4.0 only (shares a layer with 4.5.0's console and agent). */
  spec440: string;
  sampleDir: string;
  /** A fresh directory under `root`. */
  dir(name: string): Promise<string>;
  cleanup(): Promise<void>;
}

/** Generates seeded fixtures into a temp dir of their own: one set per test file, never shared across processes. */
export async function useFixtures(options: { size?: number; seed?: number } = {}): Promise<Fixtures> {
  const root = await mkdtemp(join(tmpdir(), "airlock-it-"));
  try {
    const summary = await generateFixtures({
      out: join(root, "fx"),
      seed: options.seed ?? 42,
      size: options.size ?? 20 * MiB,
    });
    let counter = 0;
    return {
      root,
      summary,
      spec: summary.sample,
      spec440: join(dirname(summary.sample), "bundle-4.4.0.yaml"),
      sampleDir: dirname(summary.sample),
      dir: async (name: string) => mkdtemp(join(root, `${name}-${counter++}-`)),
      cleanup: () => rm(root, { recursive: true, force: true }),
    };
  } catch (error) {
    await rm(root, { recursive: true, force: true });
    throw error;
  }
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest("hex");
}

export async function sha256Files(paths: string[]): Promise<string> {
  const hash = createHash("sha256");
  for (const path of paths)
    for await (const chunk of createReadStream(path) as AsyncIterable<Buffer>) hash.update(chunk);
  return hash.digest("hex");
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI to completion; never throws on a non-zero exit. */
export function runCli(
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<CliResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      cwd: options.cwd ?? REPO_ROOT,
      env: { ...process.env, NO_COLOR: "1", ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code, signal) => resolvePromise({ code, signal, stdout, stderr }));
  });
}

/** Runs a program (skopeo, openssl, tar) to completion and returns its output; never throws on exit status. */
export function runTool(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: { ...process.env, ...options.env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.on("error", reject);
    child.on("close", (code) => resolvePromise({ code, stdout: Buffer.concat(out), stderr }));
  });
}

export { rejection };

/** Asserts the typed error every bad input must give: its code, a culprit named in where or message, a hint. */
export async function expectAirlockError(
  promise: Promise<unknown>,
  code: string,
  culprit?: string | RegExp,
): Promise<AirlockError> {
  const error = await rejection(promise);
  expect(error.code, `${error.code}: ${error.message} (where: ${error.where})`).toBe(code);
  expect(error.hint, "an AirlockError for bad input carries a hint").toEqual(expect.any(String));
  expect(error.hint!.length).toBeGreaterThan(5);
  if (culprit !== undefined) {
    const text = `${error.where ?? ""}\n${error.message}`;
    if (typeof culprit === "string") expect(text).toContain(culprit);
    else expect(text).toMatch(culprit);
  }
  return error;
}

export interface BlobFile {
  name: string;
  size: number;
  ino: number;
  mtimeMs: number;
}

/** Every blob file in the store with its inode and mtime: proves blobs were neither added, removed nor rewritten. */
export async function blobFiles(dataDir: string): Promise<Map<string, BlobFile>> {
  const out = new Map<string, BlobFile>();
  for (const algorithm of ["sha256", "sha512"]) {
    const dir = join(dataDir, "store", "blobs", algorithm);
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names.sort()) {
      const info = await stat(join(dir, name)).catch(() => undefined);
      if (info !== undefined)
        out.set(`${algorithm}:${name}`, {
          name: `${algorithm}:${name}`,
          size: info.size,
          ino: info.ino,
          mtimeMs: info.mtimeMs,
        });
    }
  }
  return out;
}

export async function ingestFiles(dataDir: string): Promise<string[]> {
  return (await readdir(join(dataDir, "store", "ingest")).catch(() => [] as string[])).sort();
}

export interface StoreSnapshot {
  blobs: BlobFile[];
  bundles: StoredBundle[];
  tags: TagRecord[];
  ingest: string[];
}

/** What the store holds, read through its own API plus the files on disk. Asserts fsck is clean. */
export async function snapshotStore(dataDir: string): Promise<StoreSnapshot> {
  const store = await Store.open(dataDir);
  try {
    const report = await store.fsck();
    expect(report.corrupt).toEqual([]);
    expect(report.missing).toEqual([]);
    expect(report.ok).toBe(true);
    return {
      blobs: [...(await blobFiles(dataDir)).values()],
      bundles: store.listBundles(),
      tags: store.listTags(),
      ingest: await ingestFiles(dataDir),
    };
  } finally {
    store.close();
  }
}

/** The store is exactly as it was: same blob files (inode and mtime too), bundle rows, tags, no ingest leftovers. */
export async function expectStoreUnchanged(dataDir: string, before: StoreSnapshot): Promise<void> {
  const after = await snapshotStore(dataDir);
  expect(after.blobs).toEqual(before.blobs);
  expect(after.bundles).toEqual(before.bundles);
  expect(after.tags).toEqual(before.tags);
  expect(after.ingest).toEqual([]);
}

/** Polls `condition` every few milliseconds until it holds; fails after `timeoutMs`. Never a fixed sleep. */
export async function waitFor(
  condition: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolvePromise) => setTimeout(resolvePromise, 2));
  }
}

/** The body of one entry of a tar file, found by its name (read by offset, not by extracting). */
export async function readTarEntry(tarPath: string, name: string): Promise<Buffer> {
  const entries = await indexTarFile(tarPath);
  const entry = entries.get(name);
  if (entry === undefined) throw new Error(`${tarPath} has no entry ${name}`);
  const handle = await open(tarPath, "r");
  try {
    const buffer = Buffer.alloc(entry.size);
    const { bytesRead } = await handle.read(buffer, 0, entry.size, entry.dataOffset);
    expect(bytesRead).toBe(entry.size);
    return buffer;
  } finally {
    await handle.close();
  }
}

/** Flips every bit of the byte at `offset` of a file, in place. */
export async function flipByte(path: string, offset: number): Promise<void> {
  const handle = await open(path, "r+");
  try {
    const byte = Buffer.alloc(1);
    await handle.read(byte, 0, 1, offset);
    byte[0] = byte[0]! ^ 0xff;
    await handle.write(byte, 0, 1, offset);
  } finally {
    await handle.close();
  }
}

/** Opens the store of a data dir for one callback, closing it whatever happens. */
export async function withStore<T>(
  dataDir: string,
  fn: (store: Store) => Promise<T>,
  options: StoreOptions = {},
): Promise<T> {
  const store = await Store.open(dataDir, options);
  try {
    return await fn(store);
  } finally {
    store.close();
  }
}

/**
 * A self-signed ECDSA P-256 server certificate for 127.0.0.1, made by openssl, and a directory holding
 * only it as `ca.crt` (skopeo's --cert-dir reads *.key files there as client keys).
 */
export async function selfSignedCertificate(
  dir: string,
): Promise<{ certFile: string; keyFile: string; trustDir: string }> {
  const certFile = join(dir, "server.crt");
  const keyFile = join(dir, "server.key");
  const made = await runTool("openssl", [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-days",
    "1",
    "-subj",
    "/CN=127.0.0.1",
    "-addext",
    "subjectAltName=IP:127.0.0.1",
    "-keyout",
    keyFile,
    "-out",
    certFile,
  ]);
  if (made.code !== 0) throw new Error(`openssl req failed: ${made.stderr}`);
  const trustDir = join(dir, "trust");
  await mkdir(trustDir);
  await copyFile(certFile, join(trustDir, "ca.crt"));
  return { certFile, keyFile, trustDir };
}

/** `openssl dgst -sha256 -verify`: what a site can run with no Airlock at hand. */
export function opensslVerify(
  publicKey: string,
  signature: string,
  data: string,
): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return runTool("openssl", ["dgst", "-sha256", "-verify", publicKey, "-signature", signature, data]);
}

/** The sample bundle built unsigned into the fixtures' work dir, with its airlock.json. */
export async function sampleBundle(fx: Fixtures): Promise<{ bundle: string; metadata: BundleMetadata }> {
  const bundle = join(await fx.dir("work"), "mgmt.airlock.tar");
  await buildBundle({ specFile: fx.spec, output: bundle });
  return { bundle, metadata: (await readBundleHead([bundle])).metadata };
}
