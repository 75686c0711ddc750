import { execFile } from "node:child_process";
import { createReadStream } from "node:fs";
import {
  mkdir,
  mkdtemp,
  open,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  truncate,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BLOCK,
  encodeHeader,
  endOfArchive,
  entryLength,
  indexTarFile,
  paddingFor,
  readTar,
  MAX_METADATA_ENTRY_BYTES,
  sealHeader,
  type TarEntry,
  type TarEntryType,
  type TarReadEntry,
} from "../../../bundle/tar.js";
import { rejection } from "../../helpers/errors.js";

const run = promisify(execFile);
const MTIME = 1_700_000_000;

interface Spec {
  name: string;
  data?: Uint8Array;
  type?: TarEntryType;
  mode?: number;
}

interface Built {
  bytes: Buffer;
  /** Where each entry's first header block and its body start. */
  offsets: { name: string; offset: number; dataOffset: number }[];
}

function pattern(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

function buildTar(specs: Spec[]): Built {
  const pieces: Uint8Array[] = [];
  const offsets: Built["offsets"] = [];
  let position = 0;
  for (const spec of specs) {
    const type = spec.type ?? "file";
    const data = spec.data ?? new Uint8Array(0);
    const header = encodeHeader({
      name: spec.name,
      size: data.byteLength,
      mode: spec.mode ?? (type === "directory" ? 0o755 : 0o644),
      type,
      mtime: MTIME,
    });
    offsets.push({ name: spec.name, offset: position, dataOffset: position + header.byteLength });
    pieces.push(header, data, new Uint8Array(paddingFor(data.byteLength)));
    position += header.byteLength + data.byteLength + paddingFor(data.byteLength);
  }
  pieces.push(endOfArchive());
  return { bytes: Buffer.concat(pieces), offsets };
}

async function* chunksOf(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.byteLength; i += size) {
    await Promise.resolve();
    yield data.subarray(i, Math.min(i + size, data.byteLength));
  }
}

interface ReadEntry extends TarEntry {
  data: Buffer;
}

async function readEntries(source: AsyncIterable<Uint8Array>): Promise<ReadEntry[]> {
  const out: ReadEntry[] = [];
  for await (const entry of readTar(source)) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of entry.body) chunks.push(Buffer.from(chunk));
    const { body: _body, ...rest } = entry;
    out.push({ ...rest, data: Buffer.concat(chunks) });
  }
  return out;
}

const LONG_COMPONENT = `${"long-component-".repeat(9)}end.txt`;
const NESTED = `manifests/${"nested/".repeat(20)}values.yaml`;
const UNICODE = `files/${"é".repeat(60)}.txt`;

const SMALL: Spec[] = [
  { name: "airlock.json", data: Buffer.from('{"name":"mgmt","version":"4.5.0"}\n') },
  { name: "blobs", type: "directory" },
  { name: "blobs/sha256/", type: "directory" },
  { name: "empty", data: new Uint8Array(0) },
  { name: "one", data: pattern(1, 1) },
  { name: "block-1", data: pattern(511, 2) },
  { name: "block", data: pattern(512, 3) },
  { name: "block+1", data: pattern(513, 4) },
  { name: LONG_COMPONENT, data: pattern(5000, 5) },
  { name: NESTED, data: pattern(777, 6), mode: 0o600 },
  { name: UNICODE, data: Buffer.from("unicode\n") },
  { name: "bin/k3s", data: pattern(70_000, 7), mode: 0o755 },
];

function expectSmall(entries: ReadEntry[], built: Built): void {
  expect(entries.map((e) => e.name)).toEqual(
    SMALL.map((s) => (s.type === "directory" && !s.name.endsWith("/") ? `${s.name}/` : s.name)),
  );
  for (const [i, spec] of SMALL.entries()) {
    const entry = entries[i]!;
    const data = spec.data ?? new Uint8Array(0);
    expect(entry.typeflag, spec.name).toBe(spec.type === "directory" ? "5" : "0");
    expect(entry.size, spec.name).toBe(data.byteLength);
    expect(entry.mode, spec.name).toBe(spec.mode ?? (spec.type === "directory" ? 0o755 : 0o644));
    expect(entry.data.equals(data), spec.name).toBe(true);
    expect(entry.dataOffset, spec.name).toBe(built.offsets[i]!.dataOffset);
    expect(entry.offset, spec.name).toBe(built.offsets[i]!.offset);
  }
}

let work: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "airlock-tar-"));
});

afterAll(async () => {
  await rm(work, { recursive: true, force: true });
});

describe("encodeHeader + readTar round trips", () => {
  const built = buildTar(SMALL);

  it.each([1, 7, 511, 512, 513, 4 * 1024 * 1024])(
    "reads back every entry fed in %i-byte chunks",
    async (size) => {
      expectSmall(await readEntries(chunksOf(built.bytes, size)), built);
    },
  );

  it("reads a 6 MiB body fed in 4 MiB, 1 MiB+1 and 511-byte chunks", async () => {
    const big = pattern(6 * 1024 * 1024 + 3, 9);
    const archive = buildTar([
      { name: "a", data: Buffer.from("a") },
      { name: "blobs/sha256/big", data: big },
      { name: "z", data: Buffer.from("zz") },
    ]);
    for (const size of [4 * 1024 * 1024, 1024 * 1024 + 1, 511]) {
      const entries = await readEntries(chunksOf(archive.bytes, size));
      expect(entries.map((e) => [e.name, e.size])).toEqual([
        ["a", 1],
        ["blobs/sha256/big", big.length],
        ["z", 2],
      ]);
      expect(entries[1]!.data.equals(big)).toBe(true);
      expect(entries[2]!.data.toString()).toBe("zz");
    }
  });

  it("is deterministic and sized as entryLength says", () => {
    expect(buildTar(SMALL).bytes.equals(built.bytes)).toBe(true);
    for (const [i, spec] of SMALL.entries()) {
      const size = spec.data?.byteLength ?? 0;
      const length = entryLength({
        name: spec.name,
        size,
        mode: 0o644,
        type: spec.type ?? "file",
        mtime: MTIME,
      });
      const next = built.offsets[i + 1]?.offset ?? built.bytes.length - 2 * BLOCK;
      expect(length, spec.name).toBe(next - built.offsets[i]!.offset);
    }
    expect(built.bytes.length % BLOCK).toBe(0);
    expect(built.bytes.subarray(-1024).every((b) => b === 0)).toBe(true);
  });
});

describe("long names and sizes", () => {
  it("keeps names of up to 100 bytes in the ustar header and puts longer ones in a PAX record", async () => {
    const hundred = "n".repeat(100);
    expect(encodeHeader({ name: hundred, size: 0, mode: 0o644, type: "file", mtime: MTIME })).toHaveLength(
      BLOCK,
    );
    for (const name of [
      `${hundred}1`,
      LONG_COMPONENT,
      NESTED,
      UNICODE,
      `${"x".repeat(300)}/${"y".repeat(300)}`,
    ]) {
      const header = encodeHeader({ name, size: 3, mode: 0o644, type: "file", mtime: MTIME });
      expect(header.byteLength, name).toBeGreaterThan(BLOCK);
      expect(String.fromCharCode(header[156]!)).toBe("x");
      const entries = await readEntries(chunksOf(buildTar([{ name, data: Buffer.from("abc") }]).bytes, 100));
      expect(entries.map((e) => [e.name, e.data.toString()])).toEqual([[name, "abc"]]);
    }
    const entries = await readEntries(
      chunksOf(buildTar([{ name: hundred, data: Buffer.from("x") }]).bytes, 512),
    );
    expect(entries[0]!.name).toBe(hundred);
  });

  it("puts sizes over 8 GiB in a PAX size record", async () => {
    const size = 9 * 1024 * 1024 * 1024 + 5;
    const header = encodeHeader({ name: "blobs/sha256/huge", size, mode: 0o644, type: "file", mtime: MTIME });
    expect(Buffer.from(header).toString("latin1")).toContain(` size=${size}\n`);
    const entries = readTar(chunksOf(Buffer.concat([header, pattern(4096, 1)]), 1000));
    const first = await entries.next();
    expect(first.done).toBe(false);
    expect(first.value).toMatchObject({ name: "blobs/sha256/huge", size, dataOffset: header.byteLength });
    expect((await rejection(entries.next())).code).toBe("BUNDLE_TRUNCATED");
  });
});

describe("archives made by GNU tar", () => {
  let src: string;
  const longFile = `${"f".repeat(150)}.bin`;
  const nestedDir = `${"d".repeat(60)}/${"e".repeat(60)}`;
  const unicodeFile = `${"é".repeat(60)}-ü.txt`;
  const contents = new Map<string, Buffer>([
    [longFile, pattern(3000, 11)],
    [unicodeFile, Buffer.from("unicode name\n")],
    [`${nestedDir}/file.txt`, Buffer.from("nested\n")],
    ["small.txt", Buffer.from("hello\n")],
    ["empty", Buffer.alloc(0)],
  ]);

  beforeAll(async () => {
    src = join(work, "gnu-src");
    await mkdir(join(src, nestedDir), { recursive: true });
    for (const [name, data] of contents) await writeFile(join(src, name), data);
    await symlink("small.txt", join(src, "link"));
  });

  async function gnuTar(format: string, extra: string[] = []): Promise<string> {
    const out = join(work, `${format}${extra.join("")}.tar`);
    await run("tar", [
      `--format=${format}`,
      ...extra,
      "-cf",
      out,
      "-C",
      src,
      longFile,
      unicodeFile,
      nestedDir,
      "small.txt",
      "empty",
      "link",
    ]);
    return out;
  }

  async function checkArchive(path: string): Promise<void> {
    const entries = await readEntries(createReadStream(path, { highWaterMark: 777 }));
    const byName = new Map(entries.map((e) => [e.name, e]));
    expect([...byName.keys()].sort()).toEqual(
      [longFile, unicodeFile, `${nestedDir}/`, `${nestedDir}/file.txt`, "small.txt", "empty", "link"].sort(),
    );
    for (const [name, data] of contents) {
      expect(byName.get(name)!.typeflag, name).toBe("0");
      expect(byName.get(name)!.data.equals(data), name).toBe(true);
    }
    expect(byName.get(`${nestedDir}/`)!.typeflag).toBe("5");
    expect(byName.get("link")).toMatchObject({ typeflag: "2", linkname: "small.txt", size: 0 });

    const index = await indexTarFile(path);
    expect([...index.keys()].sort()).toEqual([...byName.keys()].sort());
    const handle = await open(path, "r");
    try {
      for (const [name, data] of contents) {
        const entry = index.get(name)!;
        const buffer = Buffer.alloc(entry.size);
        await handle.read(buffer, 0, entry.size, entry.dataOffset);
        expect(buffer.equals(data), name).toBe(true);
        expect(entry.offset, name).toBe(byName.get(name)!.offset);
        expect(entry.dataOffset, name).toBe(byName.get(name)!.dataOffset);
      }
    } finally {
      await handle.close();
    }
  }

  it("reads --format=gnu with ././@LongLink names", async () => {
    const path = await gnuTar("gnu");
    expect((await readFile(path)).toString("latin1")).toContain("././@LongLink");
    await checkArchive(path);
  });

  it("reads --format=gnu --incremental, whose headers carry atime and ctime where ustar has its prefix", async () => {
    const path = await gnuTar("gnu", ["--incremental"]);
    const entries = await readEntries(createReadStream(path));
    const small = entries.find((e) => e.name.endsWith("small.txt"));
    expect(small?.name).toBe("small.txt");
    expect(entries.find((e) => e.name.endsWith("link"))).toMatchObject({ name: "link", typeflag: "2" });
    expect((await indexTarFile(path)).has("small.txt")).toBe(true);
  });

  it("reads --format=posix with PAX headers (long names, mtime, atime, ctime)", async () => {
    const path = await gnuTar("posix");
    expect((await readFile(path)).toString("latin1")).toContain("PaxHeaders");
    await checkArchive(path);
  });

  it("reads --format=ustar with prefix-split names", async () => {
    const path = join(work, "ustar.tar");
    await run("tar", ["--format=ustar", "-cf", path, "-C", src, nestedDir]);
    const entries = await readEntries(createReadStream(path));
    expect(entries.map((e) => e.name)).toEqual([`${nestedDir}/`, `${nestedDir}/file.txt`]);
    expect(entries[1]!.data.toString()).toBe("nested\n");
  });
});

describe("indexTarFile", () => {
  it("returns each entry's first header offset and a dataOffset where its bytes are", async () => {
    const built = buildTar(SMALL);
    const path = join(work, "index.tar");
    await writeFile(path, built.bytes);
    const index = await indexTarFile(path);
    expect(index.size).toBe(SMALL.length);
    for (const [i, spec] of SMALL.entries()) {
      const name = spec.type === "directory" && !spec.name.endsWith("/") ? `${spec.name}/` : spec.name;
      const entry = index.get(name);
      expect(entry, name).toMatchObject({
        offset: built.offsets[i]!.offset,
        dataOffset: built.offsets[i]!.dataOffset,
      });
      const data = spec.data ?? new Uint8Array(0);
      expect(
        built.bytes.subarray(entry!.dataOffset, entry!.dataOffset + entry!.size).equals(data),
        name,
      ).toBe(true);
    }
  });

  it("agrees with readTar on every offset", async () => {
    const built = buildTar(SMALL);
    const path = join(work, "agree.tar");
    await writeFile(path, built.bytes);
    const index = await indexTarFile(path);
    for await (const entry of readTar(createReadStream(path, { highWaterMark: 1000 }))) {
      expect({ offset: entry.offset, dataOffset: entry.dataOffset }, entry.name).toEqual({
        offset: index.get(entry.name)!.offset,
        dataOffset: index.get(entry.name)!.dataOffset,
      });
    }
  });

  it("strips a leading ./ from names", async () => {
    const path = join(work, "dot.tar");
    await writeFile(path, buildTar([{ name: "./index.json", data: Buffer.from("{}") }]).bytes);
    expect([...(await indexTarFile(path)).keys()]).toEqual(["index.json"]);
  });
});

describe("bodies left unread", () => {
  const big = pattern(100_000, 21);
  const built = buildTar([
    { name: "first", data: big },
    { name: "second", data: Buffer.from("second body") },
    { name: "third", data: pattern(1500, 22) },
    { name: "fourth", data: Buffer.from("fourth body") },
  ]);

  it.each([1, 300, 4096, 1 << 20])(
    "are skipped whether untouched, read partly or abandoned mid-read (%i-byte chunks)",
    async (size) => {
      const seen: [string, string][] = [];
      for await (const entry of readTar(chunksOf(built.bytes, size))) {
        if (entry.name === "first") {
          const next: IteratorResult<Uint8Array> = await entry.body.next();
          expect(next.done).toBe(false);
          const value = next.value as Uint8Array;
          expect(Buffer.from(value).equals(big.subarray(0, value.byteLength))).toBe(true);
        } else if (entry.name === "third") {
          for await (const chunk of entry.body) {
            expect(chunk.byteLength).toBeGreaterThan(0);
            break;
          }
        } else if (entry.name === "second") {
          seen.push([entry.name, "untouched"]);
          continue;
        } else {
          const chunks: Uint8Array[] = [];
          for await (const chunk of entry.body) chunks.push(chunk);
          seen.push([entry.name, Buffer.concat(chunks).toString()]);
          continue;
        }
        seen.push([entry.name, "partial"]);
      }
      expect(seen).toEqual([
        ["first", "partial"],
        ["second", "untouched"],
        ["third", "partial"],
        ["fourth", "fourth body"],
      ]);
    },
  );
});

describe("damaged archives", () => {
  const built = buildTar([
    { name: "airlock.json", data: Buffer.from("{}") },
    { name: LONG_COMPONENT, data: pattern(1000, 31) },
    { name: "last", data: pattern(700, 32) },
  ]);
  const [, second, third] = built.offsets as [Built["offsets"][0], Built["offsets"][0], Built["offsets"][0]];
  const end = built.bytes.length;

  it.each([
    ["inside the first header", 100],
    ["right after the first header", BLOCK],
    ["inside a PAX header", second.offset + 300],
    ["between the PAX record and its header", second.dataOffset - BLOCK],
    ["inside a body", second.dataOffset + 500],
    ["inside a body's padding", second.dataOffset + 1010],
    ["after the last body, before the end blocks", third.dataOffset + 1024],
    ["inside the last body", third.dataOffset + 1],
    ["after the first end block", end - BLOCK],
    ["inside the second end block", end - 10],
    ["with no bytes at all", 0],
  ])("a cut %s is BUNDLE_TRUNCATED", async (_where, cut) => {
    const error = await rejection(readEntries(chunksOf(built.bytes.subarray(0, cut), 333)));
    expect(error.code).toBe("BUNDLE_TRUNCATED");
    expect(error.where).toMatch(/^byte \d+$/);
    expect(Number(error.where!.slice(5))).toBeLessThanOrEqual(cut);
  });

  it("indexTarFile refuses a file cut inside a header or a body", async () => {
    for (const cut of [100, second.dataOffset + 500, third.dataOffset + 1024]) {
      const path = join(work, `cut-${cut}.tar`);
      await writeFile(path, built.bytes.subarray(0, cut));
      expect((await rejection(indexTarFile(path))).code, `cut at ${cut}`).toBe("BUNDLE_TRUNCATED");
    }
  });

  it("a header whose checksum does not match is BUNDLE_CORRUPT, naming its offset", async () => {
    const damaged = Buffer.from(built.bytes);
    damaged[third.offset + 2] = damaged[third.offset + 2]! ^ 0x20;
    const error = await rejection(readEntries(chunksOf(damaged, 4096)));
    expect(error).toMatchObject({ code: "BUNDLE_CORRUPT", where: `byte ${third.offset}` });
    expect(error.message).toContain("checksum");
    const path = join(work, "corrupt.tar");
    await writeFile(path, damaged);
    expect(await rejection(indexTarFile(path))).toMatchObject({
      code: "BUNDLE_CORRUPT",
      where: `byte ${third.offset}`,
    });
  });

  it("a size field that is not octal is BUNDLE_CORRUPT even with a matching checksum", async () => {
    const damaged = Buffer.from(built.bytes);
    const header = damaged.subarray(0, BLOCK);
    header.write("0000000009x\0", 124, "latin1");
    header.fill(0x20, 148, 156);
    let sum = 0;
    for (const byte of header) sum += byte;
    header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "latin1");
    expect((await rejection(readEntries(chunksOf(damaged, 4096)))).code).toBe("BUNDLE_CORRUPT");
  });

  it("reports symlinks with typeflag 2 and their target rather than following them", async () => {
    const dir = join(work, "symlink-src");
    await mkdir(dir, { recursive: true });
    await symlink("/etc/passwd", join(dir, "evil"));
    const path = join(work, "symlink.tar");
    await run("tar", ["-cf", path, "-C", dir, "evil"]);
    const entries = await readEntries(createReadStream(path));
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ name: "evil", typeflag: "2", linkname: "/etc/passwd", size: 0 });
    expect((await indexTarFile(path)).get("evil")).toMatchObject({ typeflag: "2", linkname: "/etc/passwd" });
  });
});

describe("GNU tar reads what we write", () => {
  it("lists and extracts our archive byte-identically, with modes and mtimes", async () => {
    const built = buildTar(SMALL);
    const path = join(work, "ours.tar");
    await writeFile(path, built.bytes);
    const { stdout } = await run("tar", ["-tvf", path]);
    const lines = stdout.trimEnd().split("\n");
    expect(lines).toHaveLength(SMALL.length);
    for (const [i, spec] of SMALL.entries()) {
      const size = spec.data?.byteLength ?? 0;
      expect(lines[i]).toMatch(spec.type === "directory" ? /^d/ : /^-/);
      expect(lines[i]!.endsWith(` ${spec.name}`) || lines[i]!.endsWith(` ${spec.name}/`), lines[i]).toBe(
        true,
      );
      expect(lines[i]).toContain(` ${size} `);
    }
    const listed = (await run("tar", ["-tf", path])).stdout.trimEnd().split("\n");
    expect(listed).toEqual(
      SMALL.map((s) => (s.type === "directory" && !s.name.endsWith("/") ? `${s.name}/` : s.name)),
    );

    const out = join(work, "extracted");
    await mkdir(out);
    await run("tar", ["-xf", path, "-C", out]);
    for (const spec of SMALL) {
      const file = join(out, spec.name);
      const info = await stat(file);
      if (spec.type === "directory") {
        expect(info.isDirectory(), spec.name).toBe(true);
        continue;
      }
      expect((await readFile(file)).equals(Buffer.from(spec.data ?? new Uint8Array(0))), spec.name).toBe(
        true,
      );
      expect(info.mode & 0o777, spec.name).toBe(spec.mode ?? 0o644);
      expect(Math.floor(info.mtimeMs / 1000), spec.name).toBe(MTIME);
    }
  });

  it("GNU tar re-creates a symlink from its archive and we report it", async () => {
    const dir = join(work, "roundtrip-link");
    await mkdir(dir);
    await symlink("target/file", join(dir, "l"));
    const path = join(work, "roundtrip-link.tar");
    await run("tar", ["-cf", path, "-C", dir, "l"]);
    const out = join(work, "roundtrip-link-out");
    await mkdir(out);
    await run("tar", ["-xf", path, "-C", out]);
    expect(await readlink(join(out, "l"))).toBe("target/file");
    const [entry] = await readEntries(createReadStream(path));
    expect(entry).toMatchObject({ typeflag: "2", linkname: "target/file" });
  });
});

/** Our header for `name`, with `edit` applied to its ustar block and the checksum recomputed. */
function editedHeader(name: string, size: number, edit: (block: Buffer) => void): Buffer {
  const block = Buffer.from(encodeHeader({ name, size, mode: 0o644, type: "file", mtime: MTIME }));
  edit(block);
  sealHeader(block);
  return block;
}

/** A GNU base-256 number field: 0x80, then the value big-endian in the field's other bytes. */
function base256(value: bigint, length: number): Buffer {
  const field = Buffer.alloc(length);
  field[0] = 0x80;
  for (let i = length - 1, rest = value; i > 0; i--, rest >>= 8n) field[i] = Number(rest & 0xffn);
  return field;
}

describe("GNU base-256 numbers", () => {
  it("reads a base-256 size (what GNU tar writes over 8 GiB), as GNU tar does", async () => {
    const size = 9n * 1024n ** 3n + 5n;
    const header = editedHeader("blobs/sha256/huge", 0, (block) => base256(size, 12).copy(block, 124));
    const entries = readTar(chunksOf(Buffer.concat([header, pattern(4096, 3)]), 700));
    const first = await entries.next();
    expect(first.value).toMatchObject({ name: "blobs/sha256/huge", size: Number(size), dataOffset: BLOCK });
    expect((await rejection(entries.next())).code).toBe("BUNDLE_TRUNCATED");
    // GNU tar lists the same size before it runs out of bytes.
    const short = join(work, "base256-size.tar");
    await writeFile(short, Buffer.concat([header, pattern(4096, 3)]));
    const listing = await run("tar", ["-tvf", short]).catch((error: { stdout: string }) => error);
    expect(listing.stdout).toContain(` ${size} `);
    // The whole archive as a sparse file (body and end blocks are holes): indexTar seeks past the body.
    const sparse = join(work, "base256-sparse.tar");
    await writeFile(sparse, header);
    await truncate(sparse, BLOCK + Number(size) + paddingFor(Number(size)) + 2 * BLOCK);
    expect((await indexTarFile(sparse)).get("blobs/sha256/huge")?.size).toBe(Number(size));
    await rm(sparse);
  });

  it("reads a small base-256 size and the body after it", async () => {
    const header = editedHeader("small", 0, (block) => base256(3n, 12).copy(block, 124));
    const archive = Buffer.concat([header, Buffer.from("abc"), Buffer.alloc(509), endOfArchive()]);
    const entries = await readEntries(chunksOf(archive, 100));
    expect(entries.map((e) => [e.name, e.data.toString()])).toEqual([["small", "abc"]]);
  });

  it("reads the base-256 uid and gid GNU tar writes for ids over 2097151, with the owner names", async () => {
    const dir = join(work, "big-ids");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "f"), "hi\n");
    const path = join(work, "big-ids.tar");
    await run("tar", [
      "--format=gnu",
      "--owner=big:3000000",
      "--group=grp:4000000",
      "-cf",
      path,
      "-C",
      dir,
      "f",
    ]);
    expect((await readFile(path))[108]).toBe(0x80);
    const [entry] = await readEntries(createReadStream(path));
    expect(entry).toMatchObject({ name: "f", uid: 3_000_000, gid: 4_000_000, uname: "big", gname: "grp" });
    expect((await indexTarFile(path)).get("f")).toMatchObject({ uid: 3_000_000, gid: 4_000_000 });
  });

  it("refuses a negative (0xff) or malformed base-256 field as BUNDLE_CORRUPT", async () => {
    for (const first of [0xff, 0x81]) {
      const header = editedHeader("neg", 0, (block) => {
        block.fill(first, 124, 125);
      });
      const error = await rejection(readEntries(chunksOf(Buffer.concat([header, endOfArchive()]), 512)));
      expect(error, first.toString(16)).toMatchObject({ code: "BUNDLE_CORRUPT", where: "byte 0" });
      expect(error.message).toContain("base-256");
    }
  });
});

/** A metadata entry (typeflag x or L) header declaring `size` bytes, followed by nothing. */
function metadataHeader(typeflag: "x" | "L", size: number): Buffer {
  return editedHeader(typeflag === "x" ? "PaxHeader" : "././@LongLink", 0, (block) => {
    block.write(typeflag, 156, "latin1");
    if (size > 8 ** 11 - 1) base256(BigInt(size), 12).copy(block, 124);
    else block.write(`${size.toString(8).padStart(11, "0")}\0`, 124, "latin1");
  });
}

describe("metadata entries are capped at 1 MiB", () => {
  it.each([
    ["a PAX header declaring 4 GiB", "x", 4 * 1024 ** 3],
    ["a PAX header declaring 64 GiB in base-256", "x", 64 * 1024 ** 3],
    ["a PAX header of 1 MiB + 1", "x", MAX_METADATA_ENTRY_BYTES + 1],
    ["a GNU long name declaring 2 GiB", "L", 2 * 1024 ** 3],
  ] as const)("%s is BUNDLE_CORRUPT before any of it is read", async (_title, typeflag, size) => {
    const archive = Buffer.concat([metadataHeader(typeflag, size), pattern(4096, 5)]);
    const error = await rejection(readEntries(chunksOf(archive, 1024)));
    expect(error).toMatchObject({ code: "BUNDLE_CORRUPT", where: "byte 0" });
    expect(error.message).toContain(`${size} bytes is over the ${MAX_METADATA_ENTRY_BYTES}-byte limit`);
    const path = join(work, `meta-${typeflag}-${size}.tar`);
    await writeFile(path, archive);
    expect(await rejection(indexTarFile(path))).toMatchObject({ code: "BUNDLE_CORRUPT", where: "byte 0" });
  });

  it("a PAX header of exactly 1 MiB is read and applied", async () => {
    const record = (key: string, value: string): string => {
      const body = ` ${key}=${value}\n`;
      let length = body.length + 1;
      while (String(length).length + body.length !== length) length = String(length).length + body.length;
      return `${length}${body}`;
    };
    const path = record("path", `manifests/${"long/".repeat(30)}values.yaml`);
    let filler = MAX_METADATA_ENTRY_BYTES - path.length - 20;
    while (path.length + record("comment", "c".repeat(filler)).length < MAX_METADATA_ENTRY_BYTES) filler++;
    const paxBody = Buffer.from(path + record("comment", "c".repeat(filler)));
    expect(paxBody.length).toBe(MAX_METADATA_ENTRY_BYTES);
    const archive = Buffer.concat([
      metadataHeader("x", paxBody.length),
      paxBody,
      encodeHeader({ name: "short", size: 2, mode: 0o644, type: "file", mtime: MTIME }),
      Buffer.from("ok"),
      Buffer.alloc(510),
      endOfArchive(),
    ]);
    const entries = await readEntries(chunksOf(archive, 64 * 1024));
    expect(entries.map((e) => [e.name, e.data.toString()])).toEqual([
      [`manifests/${"long/".repeat(30)}values.yaml`, "ok"],
    ]);
  });
});

/** Reads every entry and returns what readTar returns at the end: the offset past end-of-archive. */
async function endOffset(archive: Uint8Array): Promise<number | undefined> {
  const entries = readTar(chunksOf(archive, 1000));
  for (;;) {
    const next = await entries.next();
    if (next.done === true) return next.value;
  }
}

describe("owner, mode, mtime and raw header bytes", () => {
  it("reports the fixed owner and mtime we write, and each entry's header bytes as encodeHeader made them", async () => {
    const built = buildTar(SMALL);
    const entries: TarReadEntry[] = [];
    for await (const entry of readTar(chunksOf(built.bytes, 777))) entries.push(entry);
    for (const [i, spec] of SMALL.entries()) {
      const type = spec.type ?? "file";
      const size = spec.data?.byteLength ?? 0;
      const mode = spec.mode ?? (type === "directory" ? 0o755 : 0o644);
      expect(entries[i], spec.name).toMatchObject({
        uid: 0,
        gid: 0,
        uname: "",
        gname: "",
        mtime: MTIME,
        mode,
      });
      const header = encodeHeader({ name: spec.name, size, mode, type, mtime: MTIME });
      expect(Buffer.from(entries[i]!.header).equals(header), spec.name).toBe(true);
      expect(entries[i]!.header.byteLength).toBe(built.offsets[i]!.dataOffset - built.offsets[i]!.offset);
    }
  });

  it("applies PAX uid, gid, uname, gname and mtime over the ustar fields (GNU tar --format=posix)", async () => {
    const dir = join(work, "pax-owner");
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, "f"), "hi\n");
    const path = join(work, "pax-owner.tar");
    await run("tar", [
      "--format=posix",
      "--owner=big:3000000",
      "--group=grp:4000000",
      "--mtime=@1700000000.5",
      "-cf",
      path,
      "-C",
      dir,
      "f",
    ]);
    expect((await readFile(path)).toString("latin1")).toContain(" uid=3000000\n");
    const [entry] = await readEntries(createReadStream(path));
    expect(entry).toMatchObject({
      uid: 3_000_000,
      gid: 4_000_000,
      uname: "big",
      gname: "grp",
      mtime: 1700000000.5,
    });
  });
});

describe("the end of the archive", () => {
  const built = buildTar(SMALL);
  const length = built.bytes.length;

  it.each([
    ["nothing after the two zero blocks", Buffer.alloc(0), length],
    ["one byte after them", Buffer.from([7]), length],
    ["512 random bytes after them", pattern(512, 41), length],
    ["zero padding after them (as GNU tar pads to its record size)", Buffer.alloc(8 * BLOCK), length],
  ])("with %s, readTar returns the offset past the marker", async (_title, extra, expected) => {
    expect(await endOffset(Buffer.concat([built.bytes, extra]))).toBe(expected);
  });

  it("a lone zero block followed by a header ends the archive after that block, as GNU tar stops there", async () => {
    const lone = Buffer.concat([
      built.bytes.subarray(0, length - 2 * BLOCK),
      Buffer.alloc(BLOCK),
      encodeHeader({ name: "hidden", size: 0, mode: 0o644, type: "file", mtime: MTIME }),
      endOfArchive(),
    ]);
    expect(await endOffset(lone)).toBe(length - BLOCK);
  });
});
