import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, copyFile, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateFixtures } from "../../../scripts/fixtures.mjs";
import { buildMsgbrokerImage } from "../../../scripts/msgbroker-image.mjs";
import type { MsgbrokerImage } from "../../../scripts/msgbroker-image.mjs";

const run = promisify(execFile);
const REPO_ROOT = path.resolve(import.meta.dirname, "../../..");
const SCRIPT = path.join(REPO_ROOT, "scripts", "msgbroker-image.mjs");
const REF = "hubble/msgbroker:4.5.0";
const BINARY = "/usr/sbin/nats-server";
// 2026-01-01T00:00:00Z, the default `created`.
const MTIME = 1767225600;

interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}
interface Index {
  manifests: Descriptor[];
}
interface Manifest {
  mediaType: string;
  config: Descriptor;
  layers: Descriptor[];
}
interface ImageConfig {
  architecture: string;
  os: string;
  created: string;
  config: {
    User: string;
    Entrypoint: string[];
    Cmd: string[];
    ExposedPorts: Record<string, object>;
    Labels: Record<string, string>;
  };
  rootfs: { type: string; diff_ids: string[] };
}
interface TarEntry {
  name: string;
  mode: number;
  uid: number;
  gid: number;
  uname: string;
  mtime: number;
  type: string;
  size: number;
  data: Buffer;
}

let root: string;
let first: MsgbrokerImage;
let second: MsgbrokerImage;
let layer: Buffer;
let entries: TarEntry[];
let libraries: string[];
let debianVersion: string;
let debianArchitecture: string;

const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");
const blobPath = (layout: string, digest: string) =>
  path.join(layout, "blobs", "sha256", digest.slice("sha256:".length));
const readJson = async <T>(file: string) => JSON.parse(await readFile(file, "utf8")) as T;

function tarEntries(tar: Buffer): TarEntry[] {
  const field = (header: Buffer, offset: number, length: number) =>
    header.toString("ascii", offset, offset + length).replace(/\0.*$/s, "");
  const list: TarEntry[] = [];
  let offset = 0;
  while (tar.subarray(offset, offset + 512).some((byte) => byte !== 0)) {
    const header = tar.subarray(offset, offset + 512);
    const size = parseInt(field(header, 124, 12), 8);
    list.push({
      name: field(header, 0, 100),
      mode: parseInt(field(header, 100, 8), 8),
      uid: parseInt(field(header, 108, 8), 8),
      gid: parseInt(field(header, 116, 8), 8),
      uname: field(header, 265, 32),
      mtime: parseInt(field(header, 136, 12), 8),
      type: field(header, 156, 1),
      size,
      data: tar.subarray(offset + 512, offset + 512 + size),
    });
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  expect(tar.length - offset).toBe(1024);
  expect(tar.subarray(offset).every((byte) => byte === 0)).toBe(true);
  return list;
}

/** The shared objects `ldd` names for the installed binary, as image paths without the leading '/'. */
async function lddLibraries(binary: string): Promise<string[]> {
  const { stdout } = await run("ldd", [binary]);
  return [...stdout.matchAll(/(?:=>\s+|^\s*)(\/\S+)\s+\(0x/gm)].map((match) => match[1]!.slice(1)).sort();
}

/** A nats-server .deb made with dpkg-deb from `files` (image path → host file). */
async function makeDeb(dir: string, version: string, files: Record<string, string>): Promise<string> {
  const tree = path.join(dir, "tree");
  await mkdir(path.join(tree, "DEBIAN"), { recursive: true });
  await writeFile(
    path.join(tree, "DEBIAN", "control"),
    [
      "Package: nats-server",
      `Version: ${version}`,
      `Architecture: ${debianArchitecture}`,
      "Maintainer: Airlock tests <tests@airlock.invalid>",
      "Description: nats-server repacked for a test",
      "",
    ].join("\n"),
  );
  for (const [imagePath, from] of Object.entries(files)) {
    const target = path.join(tree, imagePath);
    await mkdir(path.dirname(target), { recursive: true });
    await copyFile(from, target);
    await chmod(target, imagePath.includes("/doc/") ? 0o644 : 0o755);
  }
  const deb = path.join(dir, "nats-server.deb");
  await run("dpkg-deb", ["--root-owner-group", "-Znone", "-b", tree, deb]);
  return deb;
}

/** The smallest x86-64 Linux executable: one PT_LOAD segment that calls exit(0). Statically linked. */
function tinyStaticElf(): Buffer {
  const elf = Buffer.alloc(64 + 56 + 12);
  const base = 0x400000n;
  elf.write("\x7fELF", 0, "latin1");
  elf.set([2, 1, 1], 4); // 64-bit, little-endian, ELF version 1
  elf.writeUInt16LE(2, 16); // ET_EXEC
  elf.writeUInt16LE(0x3e, 18); // x86-64
  elf.writeUInt32LE(1, 20);
  elf.writeBigUInt64LE(base + 120n, 24); // entry
  elf.writeBigUInt64LE(64n, 32); // program headers
  elf.writeUInt16LE(64, 52);
  elf.writeUInt16LE(56, 54);
  elf.writeUInt16LE(1, 56);
  elf.writeUInt32LE(1, 64); // PT_LOAD
  elf.writeUInt32LE(5, 68); // R+X
  elf.writeBigUInt64LE(base, 80);
  elf.writeBigUInt64LE(base, 88);
  elf.writeBigUInt64LE(BigInt(elf.length), 96);
  elf.writeBigUInt64LE(BigInt(elf.length), 104);
  elf.writeBigUInt64LE(0x1000n, 112);
  elf.set([0xb8, 60, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05], 120); // mov eax, 60; xor edi, edi; syscall
  return elf;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "airlock-msgbroker-image-test-"));
  [first, second] = await Promise.all([
    buildMsgbrokerImage({ out: path.join(root, "a"), ref: REF }),
    buildMsgbrokerImage({ out: path.join(root, "b"), ref: REF }),
  ]);
  layer = await readFile(blobPath(first.layout, first.layer.digest));
  entries = tarEntries(gunzipSync(layer));
  libraries = await lddLibraries(BINARY);
  debianVersion = (await run("dpkg-query", ["-W", "-f=${Version}", "nats-server"])).stdout;
  debianArchitecture = (await run("dpkg", ["--print-architecture"])).stdout.trim();
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("buildMsgbrokerImage", () => {
  it("gives the same digest and the same blobs when built twice", async () => {
    expect(first.digest).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(second.digest).toBe(first.digest);
    expect(second.layer).toEqual(first.layer);
    const blobs = async (layout: string) => (await readdir(path.join(layout, "blobs", "sha256"))).sort();
    expect(await blobs(second.layout)).toEqual(await blobs(first.layout));
    for (const name of await blobs(first.layout)) {
      const bytes = await readFile(path.join(first.layout, "blobs", "sha256", name));
      expect(sha256(bytes), name).toBe(name);
      expect(bytes.equals(await readFile(path.join(second.layout, "blobs", "sha256", name))), name).toBe(
        true,
      );
    }
    const index = await readJson<Index>(path.join(first.layout, "index.json"));
    const manifestSize = index.manifests.find((entry) => entry.digest === first.digest)!.size;
    expect(first.totalBytes).toBe(first.layer.size + first.config.size + manifestSize);
  });

  it("writes an OCI layout skopeo reads by its ref: entrypoint, user, ports and the version label", async () => {
    const reference = `oci:${first.layout}:${REF}`;
    const { stdout } = await run("skopeo", ["inspect", reference]);
    const inspected = JSON.parse(stdout) as {
      Digest: string;
      Architecture: string;
      Os: string;
      Created: string;
      Layers: string[];
      Labels: Record<string, string>;
    };
    const upstream = debianVersion.replace(/^\d+:/, "").replace(/-[^-]*$/, "");
    expect(inspected).toMatchObject({
      Digest: first.digest,
      Architecture: { x64: "amd64", arm64: "arm64" }[process.arch as string],
      Os: "linux",
      Created: "2026-01-01T00:00:00Z",
      Layers: [first.layer.digest],
    });
    expect(inspected.Labels).toMatchObject({
      "org.opencontainers.image.version": upstream,
      "io.nats.server.version": upstream,
    });
    expect(inspected.Labels["dev.airlock.debian.packages"]).toContain(`nats-server=${debianVersion}`);
    expect(first.natsServer).toEqual({ version: debianVersion, upstreamVersion: upstream, path: BINARY });

    const { stdout: configText } = await run("skopeo", ["inspect", "--config", reference]);
    const config = JSON.parse(configText) as ImageConfig;
    expect(config.config).toMatchObject({
      User: "1000:1000",
      Entrypoint: [BINARY],
      Cmd: ["--config", "/etc/nats/nats.conf"],
      ExposedPorts: { "4222/tcp": {}, "6222/tcp": {}, "8222/tcp": {} },
    });

    const index = await readJson<Index>(path.join(first.layout, "index.json"));
    expect(index.manifests).toEqual([
      {
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        digest: first.digest,
        size: expect.any(Number) as number,
        annotations: { "org.opencontainers.image.ref.name": REF },
      },
    ]);
    expect(await readJson(path.join(first.layout, "oci-layout"))).toEqual({ imageLayoutVersion: "1.0.0" });
  });

  it("has one deterministic gzip layer whose tar is the config's diff_id", async () => {
    const manifest = await readJson<Manifest>(blobPath(first.layout, first.digest));
    expect(manifest.layers).toEqual([
      {
        mediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
        digest: first.layer.digest,
        size: layer.length,
      },
    ]);
    // No file name, no comment, mtime 0.
    expect(layer.subarray(0, 4)).toEqual(Buffer.from([0x1f, 0x8b, 8, 0]));
    expect(layer.readUInt32LE(4)).toBe(0);
    const tar = gunzipSync(layer);
    expect(tar.length).toBe(first.layer.tarSize);
    const config = await readJson<ImageConfig>(blobPath(first.layout, manifest.config.digest));
    expect(config.rootfs).toEqual({ type: "layers", diff_ids: [`sha256:${sha256(tar)}`] });
    expect(first.layer.diffId).toBe(`sha256:${sha256(tar)}`);
  });

  it("packs the nats-server binary (0755), the libraries ldd names, passwd, group and the default config", async () => {
    expect(libraries.length, "Debian's nats-server is dynamically linked against libc").toBeGreaterThan(0);
    const files = entries.filter((entry) => entry.type === "0");
    expect(files.map((entry) => entry.name).filter((name) => !libraries.includes(name))).toEqual([
      "etc/group",
      "etc/nats/nats.conf",
      "etc/nsswitch.conf",
      "etc/passwd",
      "usr/sbin/nats-server",
      "usr/share/doc/libc6/copyright",
      "usr/share/doc/nats-server/copyright",
    ]);
    const byName = new Map(entries.map((entry) => [entry.name, entry]));
    const binary = byName.get("usr/sbin/nats-server")!;
    expect(binary).toMatchObject({ mode: 0o755, uid: 0, gid: 0, type: "0" });
    expect(sha256(binary.data)).toBe(sha256(await readFile(BINARY)));
    for (const library of libraries) {
      const entry = byName.get(library);
      expect(entry, library).toBeDefined();
      expect(entry!.mode, library).toBe(0o755);
      expect(sha256(entry!.data), library).toBe(sha256(await readFile(`/${library}`)));
    }
    expect(byName.get("etc/passwd")!.data.toString()).toMatch(/^nats:x:1000:1000:/m);
    expect(byName.get("etc/group")!.data.toString()).toMatch(/^nats:x:1000:$/m);
    expect(byName.get("etc/nats/nats.conf")!.data.toString()).toMatch(/^http_port: 8222$/m);
    expect(first.files.find((file) => file.path === "/usr/sbin/nats-server")).toEqual({
      path: "/usr/sbin/nats-server",
      type: "file",
      mode: 0o755,
      uid: 0,
      gid: 0,
      size: binary.size,
    });
  });

  it("has sorted entries, fixed mtimes, root-owned files, /tmp 1777, /data owned by nats and every parent directory", () => {
    const names = entries.map((entry) => entry.name);
    expect(names).toEqual([...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
    expect(new Set(names).size).toBe(names.length);
    for (const entry of entries) {
      expect(entry.mtime, entry.name).toBe(MTIME);
      expect(["0", "5"], entry.name).toContain(entry.type);
      if (entry.type === "0") expect(entry, entry.name).toMatchObject({ uid: 0, gid: 0, uname: "root" });
      for (
        let dir = path.posix.dirname(entry.name.replace(/\/$/, ""));
        dir !== ".";
        dir = path.posix.dirname(dir)
      )
        expect(names.indexOf(`${dir}/`), `${dir}/ before ${entry.name}`).toBeLessThan(
          names.indexOf(entry.name),
        );
    }
    const directory = (name: string) => entries.find((entry) => entry.name === name);
    expect(directory("tmp/")).toMatchObject({ type: "5", mode: 0o1777, uid: 0, gid: 0 });
    expect(directory("data/")).toMatchObject({ type: "5", mode: 0o755, uid: 1000, gid: 1000 });
    expect(directory("etc/")).toMatchObject({ type: "5", mode: 0o755, uid: 0, gid: 0 });
    expect(first.files.map((file) => file.path)).toEqual(names.map((name) => `/${name.replace(/\/$/, "")}`));
  });

  it("adds itself to an existing layout, replacing only the entry of its own ref", async () => {
    // The fixtures already hold this image as hubble/msgbroker:4.5.0; their 4.4.0 is a seeded fake.
    const fixtures = await generateFixtures({ out: path.join(root, "fixtures"), size: "256K" });
    expect(fixtures.images[REF]!.digest).toBe(first.digest);
    const previous = "hubble/msgbroker:4.4.0";
    const before = await readJson<Index>(path.join(fixtures.layout, "index.json"));
    const refName = (entry: Descriptor) => entry.annotations?.["org.opencontainers.image.ref.name"];
    const image = await buildMsgbrokerImage({ out: fixtures.layout, ref: previous });
    expect(image.digest).toBe(first.digest);
    const after = await readJson<Index>(path.join(fixtures.layout, "index.json"));
    expect(after.manifests.map(refName).sort()).toEqual(before.manifests.map(refName).sort());
    expect(after.manifests.find((entry) => refName(entry) === previous)?.digest).toBe(first.digest);
    expect(after.manifests.filter((entry) => entry.digest === first.digest)).toHaveLength(2);
    for (const kept of before.manifests.filter((entry) => refName(entry) !== previous)) {
      expect(after.manifests, refName(kept)).toContainEqual(kept);
    }
    const { stdout } = await run("skopeo", ["inspect", `oci:${fixtures.layout}:${previous}`]);
    expect((JSON.parse(stdout) as { Digest: string }).Digest).toBe(first.digest);

    // Built again under another ref, it is one more entry and the same blobs.
    const blobs = async () => (await readdir(path.join(fixtures.layout, "blobs", "sha256"))).sort();
    const blobsBefore = await blobs();
    await buildMsgbrokerImage({ out: fixtures.layout, ref: "hubble/msgbroker:latest" });
    const again = await readJson<Index>(path.join(fixtures.layout, "index.json"));
    expect(again.manifests.filter((entry) => entry.digest === first.digest)).toHaveLength(3);
    expect(again.manifests).toHaveLength(before.manifests.length + 1);
    expect(await blobs()).toEqual(blobsBefore);
    expect(blobsBefore.filter((name) => name.startsWith("."))).toEqual([]);
  });

  it("from a nats-server .deb holding the installed files, makes the very same image", async () => {
    const dir = await mkdtemp(path.join(root, "deb-"));
    const deb = await makeDeb(dir, debianVersion, {
      [BINARY]: BINARY,
      "/usr/share/doc/nats-server/copyright": "/usr/share/doc/nats-server/copyright",
    });
    const image = await buildMsgbrokerImage({ out: path.join(dir, "layout"), ref: REF, deb });
    expect(image.digest).toBe(first.digest);
  });

  it("packs no libraries and no loader for a statically linked binary", async () => {
    const dir = await mkdtemp(path.join(root, "static-"));
    const elf = path.join(dir, "static-elf");
    await writeFile(elf, tinyStaticElf(), { mode: 0o755 });
    const ldd = await run("ldd", [elf]).catch((error: { stdout: string; stderr: string }) => error);
    expect(`${ldd.stdout}${ldd.stderr}`).toMatch(/not a dynamic executable|statically linked/);

    const deb = await makeDeb(dir, "9.9.9-1", { [BINARY]: elf });
    const image = await buildMsgbrokerImage({ out: path.join(dir, "layout"), deb });
    expect(image.ref).toBe("hubble/msgbroker:9.9.9");
    expect(image.packages).toEqual({ "nats-server": "9.9.9-1" });
    expect(image.files.filter((file) => file.type === "file").map((file) => file.path)).toEqual([
      "/etc/group",
      "/etc/nats/nats.conf",
      "/etc/nsswitch.conf",
      "/etc/passwd",
      "/usr/sbin/nats-server",
    ]);
    expect(image.files.map((file) => file.path)).not.toContain("/lib64");
  });

  it("has a CLI that prints the image as JSON; --created changes the digest, bad arguments exit 2", async () => {
    const out = path.join(root, "cli");
    const { stdout } = await run(process.execPath, [SCRIPT, "--out", out, "--ref", REF]);
    expect((JSON.parse(stdout) as MsgbrokerImage).digest).toBe(first.digest);

    const { stdout: later } = await run(process.execPath, [
      SCRIPT,
      "--out",
      path.join(root, "cli-later"),
      "--ref",
      REF,
      "--created",
      "2026-06-01T00:00:00Z",
    ]);
    const laterImage = JSON.parse(later) as MsgbrokerImage;
    expect(laterImage.digest).not.toBe(first.digest);
    expect(laterImage.layer.digest).not.toBe(first.layer.digest);

    const usage = await run(process.execPath, [SCRIPT]).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(usage).toMatchObject({ code: 2, stderr: expect.stringMatching(/--out is required/) as string });
  });

  it("refuses an output path with ':', a bad created date and a file that is not a .deb", async () => {
    await expect(buildMsgbrokerImage({ out: path.join(root, "a:b") })).rejects.toThrow(/':'/);
    await expect(buildMsgbrokerImage({ out: path.join(root, "x"), created: "yesterday" })).rejects.toThrow(
      RangeError,
    );
    const notDeb = path.join(root, "not.deb");
    await writeFile(notDeb, "hello");
    await expect(buildMsgbrokerImage({ out: path.join(root, "y"), deb: notDeb })).rejects.toThrow(
      /not a Debian package/,
    );
  });
});
