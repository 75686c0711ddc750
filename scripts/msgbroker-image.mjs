#!/usr/bin/env node
// The real msgbroker image: Debian's nats-server binary and the shared libraries `ldd` finds for it,
// packed into a minimal OCI image (one gzip layer, no base image, non-root user) in an OCI image layout.
//
//   node scripts/msgbroker-image.mjs --out DIR [--ref hubble/msgbroker:TAG] [--deb FILE.deb]
//
// Without --deb the installed package is used (`apt-get install nats-server`, as scripts/setup does);
// with it, the binary comes from that .deb (what `apt-get download nats-server` fetches) and the
// libraries from the host. Nothing is downloaded. The same binary, libraries and package versions give
// the same digest (for a given Node zlib build): fixed mtimes, owners, order and gzip framing.
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { Buffer } from "node:buffer";
import { $ } from "zx";
import { runIfMain } from "./cli.mjs";
import {
  REF_NAME_ANNOTATION,
  addToIndex,
  openLayout,
  platformName,
  writeImage,
  writeLayerBlob,
} from "./oci-layout.mjs";

const CREATED = "2026-01-01T00:00:00Z";
const PACKAGE = "nats-server";
const REPOSITORY = "hubble/msgbroker";

// The tar stream is cut into blocks of this size before deflating, so the gzip bytes never depend
// on how the files happened to be read.
const DEFLATE_CHUNK = 1024 * 1024;
const GZIP_LEVEL = 9;

const NATS_UID = 1000;
const NATS_GID = 1000;
const CONFIG_PATH = "/etc/nats/nats.conf";
const PORTS = { client: 4222, cluster: 6222, monitor: 8222 };

// Debian architecture → OCI platform.
const PLATFORMS = {
  amd64: { architecture: "amd64", os: "linux" },
  arm64: { architecture: "arm64", os: "linux", variant: "v8" },
  armhf: { architecture: "arm", os: "linux", variant: "v7" },
  i386: { architecture: "386", os: "linux" },
  ppc64el: { architecture: "ppc64le", os: "linux" },
  riscv64: { architecture: "riscv64", os: "linux" },
  s390x: { architecture: "s390x", os: "linux" },
};

const PASSWD = `root:x:0:0:root:/root:/usr/sbin/nologin
nats:x:${NATS_UID}:${NATS_GID}:NATS server:/data:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
`;
const GROUP = `root:x:0:
nats:x:${NATS_GID}:
nogroup:x:65534:
`;
// No nsswitch.conf makes Go's resolver guess; this is the order glibc and Go both default to.
const NSSWITCH = `passwd: files
group: files
hosts: files dns
`;
const DEFAULT_CONFIG = `# Default configuration of the msgbroker image: one broker, no TLS, no cluster.
# The management plane mounts its own configuration (cluster routes, TLS) over /etc/nats.
port: ${PORTS.client}
http_port: ${PORTS.monitor}
`;

/**
 * Builds the msgbroker image into the OCI image layout `out` (made if missing; an existing layout
 * keeps its other images, and an entry with the same ref is replaced) and returns what it wrote.
 */
export async function buildMsgbrokerImage({ out, ref, deb, created = CREATED }) {
  const layoutDir = path.resolve(out);
  // skopeo splits oci: references at the first ':'.
  if (layoutDir.includes(":")) throw new Error(`output path must not contain ':': ${layoutDir}`);
  const createdDate = new Date(created);
  if (Number.isNaN(createdDate.getTime())) throw new RangeError(`created is not a date: ${created}`);
  const mtime = Math.floor(createdDate.getTime() / 1000);
  if (mtime < 0) throw new RangeError(`created must not be before 1970: ${created}`);
  const createdText = createdDate.toISOString().replace(/\.000Z$/, "Z");

  const scratch = deb === undefined ? undefined : await fs.mkdtemp(path.join(os.tmpdir(), "msgbroker-deb-"));
  try {
    const source =
      deb === undefined ? await installedPackage() : await debPackage(path.resolve(deb), scratch);
    const platform = PLATFORMS[source.architecture];
    if (platform === undefined)
      throw new Error(`no OCI platform for Debian architecture ${source.architecture}`);
    const imageRef = ref ?? `${REPOSITORY}:${source.upstreamVersion}`;
    if (!/^\S+$/.test(imageRef))
      throw new Error(`ref must be a non-empty name without spaces, got "${imageRef}"`);

    const libraries = await sharedLibraries(source.binary);
    const packages = new Map([[source.name, source.version]]);
    const copyrights = new Map([[source.name, source.copyright]]);
    for (const library of libraries) {
      const owner = await owningPackage(library);
      if (owner === undefined) continue;
      packages.set(owner.name, owner.version);
      const copyright = `/usr/share/doc/${owner.name}/copyright`;
      if (await exists(copyright)) copyrights.set(owner.name, copyright);
    }

    const entries = await imageEntries({ source, libraries, copyrights });
    const layout = await openLayout(layoutDir);
    const layer = await writeLayerBlob(layout, entries, {
      level: GZIP_LEVEL,
      mtime,
      chunkSize: DEFLATE_CHUNK,
    });
    const packageList = [...packages].sort(([a], [b]) => (a < b ? -1 : 1));
    const { manifest, config } = await writeImage(layout, {
      created: createdText,
      platform,
      config: {
        User: `${NATS_UID}:${NATS_GID}`,
        ExposedPorts: Object.fromEntries(Object.values(PORTS).map((port) => [`${port}/tcp`, {}])),
        Env: ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        Entrypoint: [source.imagePath],
        Cmd: ["--config", CONFIG_PATH],
        WorkingDir: "/data",
        Labels: {
          "org.opencontainers.image.title": "msgbroker",
          "org.opencontainers.image.description": "NATS server from Debian's nats-server package",
          "org.opencontainers.image.version": source.upstreamVersion,
          "org.opencontainers.image.licenses": "Apache-2.0",
          "io.nats.server.version": source.upstreamVersion,
          "dev.airlock.debian.packages": packageList.map(([name, version]) => `${name}=${version}`).join(" "),
        },
      },
      history: [
        {
          created: createdText,
          created_by: `airlock scripts/msgbroker-image.mjs: ${source.name} ${source.version} and its shared libraries`,
        },
      ],
      layers: [layer],
    });
    await addToIndex(layout, [{ ...manifest, annotations: { [REF_NAME_ANNOTATION]: imageRef } }]);

    return {
      layout: layoutDir,
      ref: imageRef,
      digest: manifest.digest,
      mediaType: manifest.mediaType,
      platform: platformName(platform),
      natsServer: {
        version: source.version,
        upstreamVersion: source.upstreamVersion,
        path: source.imagePath,
      },
      packages: Object.fromEntries(packageList),
      config: config,
      layer: { ...layer.descriptor, diffId: layer.diffId, tarSize: layer.tarSize },
      files: entries.map(({ name, type, mode, uid, gid, size }) => ({
        path: `/${name.replace(/\/$/, "")}`,
        type: type === "5" ? "directory" : "file",
        mode,
        uid,
        gid,
        size,
      })),
      totalBytes: manifest.size + config.size + layer.descriptor.size,
    };
  } finally {
    if (scratch !== undefined) await fs.rm(scratch, { recursive: true, force: true });
  }
}

// ---- where the bytes come from ------------------------------------------------------------

const sh = $({ quiet: true });
// `${Version}` is dpkg-query's field syntax, not a template.
const field = (name) => "${" + name + "}";

/** The installed nats-server package: its binary from `dpkg -L`, version and architecture from dpkg. */
async function installedPackage() {
  const format = [field("Status"), field("Version"), field("Architecture")].join("\t");
  const status = await $({ quiet: true, nothrow: true })`dpkg-query -W -f=${format} ${PACKAGE}`;
  const [state, version, architecture] = status.stdout.split("\t");
  if (status.exitCode !== 0 || !state?.endsWith(" installed")) {
    throw new Error(
      `Debian package ${PACKAGE} is not installed: run \`apt-get install ${PACKAGE}\` (scripts/setup does)`,
    );
  }
  const files = (await sh`dpkg -L ${PACKAGE}`).stdout.split("\n");
  const binary = files.find((file) => /^\/(usr\/)?s?bin\/nats-server$/.test(file));
  if (binary === undefined) throw new Error(`dpkg -L ${PACKAGE} lists no nats-server binary`);
  const copyright = `/usr/share/doc/${PACKAGE}/copyright`;
  return {
    name: PACKAGE,
    version,
    upstreamVersion: upstreamVersion(version),
    architecture,
    binary,
    imagePath: binary,
    copyright: (await exists(copyright)) ? copyright : undefined,
  };
}

/** A nats-server .deb, unpacked into `scratch` with dpkg-deb. */
async function debPackage(deb, scratch) {
  const info = await $({ quiet: true, nothrow: true })`dpkg-deb -f ${deb} Package Version Architecture`;
  if (info.exitCode !== 0) throw new Error(`${deb} is not a Debian package: ${info.stderr.trim()}`);
  const fields = Object.fromEntries(
    info.stdout
      .trim()
      .split("\n")
      .map((line) => line.split(/:\s*/, 2)),
  );
  if (fields.Package !== PACKAGE) throw new Error(`${deb} holds ${fields.Package}, not ${PACKAGE}`);
  await sh`dpkg-deb -x ${deb} ${scratch}`;
  let imagePath;
  for (const candidate of [
    "/usr/sbin/nats-server",
    "/usr/bin/nats-server",
    "/sbin/nats-server",
    "/bin/nats-server",
  ]) {
    if (await exists(path.join(scratch, candidate))) {
      imagePath = candidate;
      break;
    }
  }
  if (imagePath === undefined) throw new Error(`${deb} holds no nats-server binary`);
  const copyright = path.join(scratch, "usr/share/doc", PACKAGE, "copyright");
  return {
    name: PACKAGE,
    version: fields.Version,
    upstreamVersion: upstreamVersion(fields.Version),
    architecture: fields.Architecture,
    binary: path.join(scratch, imagePath),
    imagePath,
    copyright: (await exists(copyright)) ? copyright : undefined,
  };
}

/** "1:2.9.10-1+b3" → "2.9.10": no epoch, no Debian revision. */
function upstreamVersion(version) {
  return version.replace(/^\d+:/, "").replace(/-[^-]*$/, "");
}

/**
 * The absolute paths of every shared object the binary loads, the dynamic loader included, as `ldd`
 * reports them (the paths the loader opens). None for a static binary.
 */
async function sharedLibraries(binary) {
  const result = await $({ quiet: true, nothrow: true })`ldd ${binary}`;
  const output = `${result.stdout}${result.stderr}`;
  if (/not a dynamic executable|statically linked/.test(output)) return [];
  if (result.exitCode !== 0) throw new Error(`ldd ${binary} failed: ${output.trim()}`);
  const libraries = new Set();
  for (const line of result.stdout.split("\n")) {
    const text = line.trim();
    if (text === "") continue;
    const missing = /^(\S+) => not found/.exec(text);
    if (missing) throw new Error(`${binary} needs ${missing[1]}, which is not installed`);
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or the loader "/lib64/ld-linux-x86-64.so.2 (0x…)";
    // linux-vdso.so.1 lives in the kernel and has no path.
    const found = /=>\s+(\/\S+)/.exec(text) ?? /^(\/\S+)\s+\(0x/.exec(text);
    if (found) libraries.add(path.normalize(found[1]));
  }
  return [...libraries].sort();
}

/** The Debian package owning a file (through its symlinks if need be), or undefined. */
async function owningPackage(file) {
  for (const candidate of new Set([file, await fs.realpath(file)])) {
    const search = await $({ quiet: true, nothrow: true })`dpkg -S ${candidate}`;
    if (search.exitCode !== 0) continue;
    // "libc6:amd64: /lib/x86_64-linux-gnu/libc.so.6"; diversions add lines of their own.
    const line = search.stdout
      .split("\n")
      .find((text) => text.endsWith(`: ${candidate}`) && !text.startsWith("diversion"));
    if (line === undefined) continue;
    const name = line.slice(0, line.indexOf(": ")).split(",")[0].trim().split(":")[0];
    const version = (await sh`dpkg-query -W -f=${field("Version")} ${name}`).stdout;
    return { name, version };
  }
  return undefined;
}

async function exists(file) {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

// ---- the image's file system ------------------------------------------------------------

/** Every tar entry of the layer, sorted by name, each parent directory before its children. */
async function imageEntries({ source, libraries, copyrights }) {
  const files = new Map();
  const addFile = async (imagePath, from) => {
    const stats = await fs.stat(from);
    if (!stats.isFile()) throw new Error(`${from} is not a regular file`);
    files.set(imagePath, {
      from,
      size: stats.size,
      // Executables stay executable; nothing else keeps the host's mode bits.
      mode: stats.mode & 0o111 ? 0o755 : 0o644,
    });
  };
  const addText = (imagePath, text) => {
    const content = Buffer.from(text);
    files.set(imagePath, { content, size: content.length, mode: 0o644 });
  };

  await addFile(source.imagePath, source.binary);
  for (const library of libraries) await addFile(library, library);
  for (const [name, copyright] of copyrights) {
    if (copyright !== undefined) await addFile(`/usr/share/doc/${name}/copyright`, copyright);
  }
  addText("/etc/passwd", PASSWD);
  addText("/etc/group", GROUP);
  addText("/etc/nsswitch.conf", NSSWITCH);
  addText(CONFIG_PATH, DEFAULT_CONFIG);

  const directories = new Map([
    ["/tmp", { mode: 0o1777, uid: 0, gid: 0 }],
    ["/data", { mode: 0o755, uid: NATS_UID, gid: NATS_GID }],
    ["/etc", { mode: 0o755, uid: 0, gid: 0 }],
  ]);
  for (const file of files.keys()) {
    for (let dir = path.posix.dirname(file); dir !== "/"; dir = path.posix.dirname(dir)) {
      if (!directories.has(dir)) directories.set(dir, { mode: 0o755, uid: 0, gid: 0 });
    }
  }

  const entries = [
    ...[...directories].map(([dir, { mode, uid, gid }]) => ({
      name: `${dir.slice(1)}/`,
      type: "5",
      mode,
      uid,
      gid,
      uname: userName(uid),
      gname: userName(gid),
      size: 0,
    })),
    ...[...files].map(([file, { from, content, size, mode }]) => ({
      name: file.slice(1),
      type: "0",
      mode,
      uid: 0,
      gid: 0,
      uname: userName(0),
      gname: userName(0),
      size,
      from,
      content,
    })),
  ];
  // Byte order of the names: "etc/" sorts before "etc/group", so parents come first.
  return entries.sort((a, b) => Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)));
}

/** The name /etc/passwd and /etc/group of the image give an id: root's or the broker's. */
function userName(id) {
  return id === 0 ? "root" : "nats";
}

// ---- CLI --------------------------------------------------------------------------------

const USAGE =
  "usage: node scripts/msgbroker-image.mjs --out DIR [--ref hubble/msgbroker:TAG] [--deb nats-server.deb] [--created ISO-DATE]";

await runIfMain(import.meta, {
  name: "msgbroker-image",
  usage: USAGE,
  options: {
    out: { type: "string" },
    ref: { type: "string" },
    deb: { type: "string" },
    created: { type: "string" },
  },
  required: ["out"],
  toOptions: (values) => ({
    out: values.out,
    ref: values.ref,
    deb: values.deb,
    created: values.created ?? CREATED,
  }),
  run: buildMsgbrokerImage,
});
