// Shared helpers of the benchmarks in bench/: paths and options, sizes, timing with peak RSS, alternating
// paired runs, fixtures and bundles, report tables, and the servers a benchmark starts (docker-registry,
// probes of their CPU and peak RSS, registry walks).
import { spawn } from "node:child_process";
import { closeSync, openSync } from "node:fs";
import fs from "node:fs/promises";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { clearTimeout, setTimeout } from "node:timers";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { $ } from "zx";
import { dockerRegistryConfig } from "../scripts/docker-registry.mjs";
import { generateFixtures } from "../scripts/fixtures.mjs";

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;

export const TIME_BIN = "/usr/bin/time";

/** The repository, and its .bench/: generated fixtures, the benchmarks' work files and results. */
export const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
export const BENCH_DIR = path.join(REPO, ".bench");
/** A benchmark's work directory and results file in BENCH_DIR: <name>-work, <name>-results.json. */
export const benchPaths = (name) => ({
  work: path.join(BENCH_DIR, `${name}-work`),
  results: path.join(BENCH_DIR, `${name}-results.json`),
});
/** What every benchmark bundles: the 3 images of 4.5.0 of the generated set. */
export const IMAGES = ["hubble/msgbroker:4.5.0", "hubble/console:4.5.0", "hubble/agent:4.5.0"];

/** Progress and warnings: stderr, so the report on stdout stays clean. */
export const log = (line = "") => process.stderr.write(`${line}\n`);

/**
 * A benchmark's command line: --size (default `size`), --seed 42, --runs 3, --keep, the options `more`
 * (parseArgs' shape), and -h/--help, which prints `usage` and exits. The values come back as parseArgs
 * gives them, but seed and runs checked whole numbers.
 */
export function parseOptions(usage, { size, more = {} }) {
  const { values } = parseArgs({
    options: {
      size: { type: "string", default: size },
      seed: { type: "string", default: "42" },
      runs: { type: "string", default: "3" },
      keep: { type: "boolean", default: false },
      ...more,
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(usage);
    process.exit(0);
  }
  return {
    ...values,
    runs: integerOption(values.runs, "--runs"),
    seed: integerOption(values.seed, "--seed", 0),
  };
}

/** "20MiB", "20M", "512K", "2GiB", "2.25G" or plain bytes; units are binary (as in scripts/fixtures.mjs). */
export function parseSize(text) {
  const match = /^(\d+(?:\.\d+)?)\s*(?:([KMG])(?:iB)?|B)?$/i.exec(String(text).trim());
  if (!match) throw new RangeError(`cannot read size "${text}": use bytes or K, M, G with optional iB`);
  const unit = { K: KiB, M: MiB, G: GiB }[match[2]?.toUpperCase()] ?? 1;
  return Math.floor(Number(match[1]) * unit);
}

/** Exact binary unit when the size is a whole number of them ("2GiB", "20MiB"), bytes otherwise: safe in a path. */
export function sizeLabel(bytes) {
  for (const [unit, factor] of [
    ["GiB", GiB],
    ["MiB", MiB],
    ["KiB", KiB],
  ]) {
    if (bytes % factor === 0) return `${bytes / factor}${unit}`;
  }
  return `${bytes}B`;
}

export function formatBytes(bytes) {
  if (bytes >= GiB) return `${(bytes / GiB).toFixed(2)} GiB`;
  if (bytes >= MiB) return `${(bytes / MiB).toFixed(1)} MiB`;
  if (bytes >= KiB) return `${(bytes / KiB).toFixed(1)} KiB`;
  return `${bytes} B`;
}

export function formatMs(ms) {
  return ms >= 10_000
    ? `${(ms / 1000).toFixed(1)} s`
    : ms >= 1000
      ? `${(ms / 1000).toFixed(2)} s`
      : `${Math.round(ms)} ms`;
}

export function formatRss(kib) {
  return kib === undefined ? "-" : `${(kib / 1024).toFixed(0)} MiB`;
}

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Fails with the install hint unless GNU time is at /usr/bin/time (it reports peak RSS as %M). */
export async function requireGnuTime() {
  try {
    await $({ quiet: true })`${TIME_BIN} -f %M -o /dev/null true`;
  } catch {
    throw new Error(
      `${TIME_BIN} (GNU time) is missing or not GNU time: run \`apt-get install time\` (scripts/setup does it)`,
    );
  }
}

export async function requireTools(tools) {
  const missing = [];
  for (const tool of tools) {
    if ((await $({ quiet: true, nothrow: true })`command -v ${tool}`).exitCode !== 0) missing.push(tool);
  }
  if (missing.length > 0) throw new Error(`missing tools: ${missing.join(", ")} (run \`npm run setup\`)`);
}

/**
 * Runs argv (an array: program and arguments, no shell) under GNU time; returns wall milliseconds
 * measured here, the peak RSS (KiB) of the process, or of its largest descendant for a shell, and the
 * CPU seconds (user + system) of the process and the descendants it waited for.
 */
export async function timeCommand(argv, { rssFile, cwd } = {}) {
  const rssOut = rssFile ?? path.join(os.tmpdir(), `bench-rss-${process.pid}`);
  const started = performance.now();
  const result = await $({
    quiet: true,
    nothrow: true,
    cwd,
  })`${TIME_BIN} -f ${"%M %U %S"} -o ${rssOut} ${argv}`;
  const ms = performance.now() - started;
  if (result.exitCode !== 0) {
    throw new Error(
      `command failed (exit ${result.exitCode}): ${argv.join(" ")}\n${result.stderr.trim()}\n${result.stdout.trim()}`,
    );
  }
  const [rss, user, system] = (await fs.readFile(rssOut, "utf8"))
    .trim()
    .split("\n")
    .pop()
    .split(" ")
    .map(Number);
  return { ms, rssKiB: rss, cpuS: user + system, stdout: result.stdout };
}

/** Flushes dirty pages of every file system, so a timed run never pays for the writeback of the one before. */
export async function syncAll() {
  await $({ quiet: true })`sync`;
}

/**
 * Measures a group of commands side by side. Each command: { key, label, argv, prepare?, cleanup? }.
 * Every command runs once untimed first (warm page cache), then `runs` timed rounds in alternating
 * order (forward, backward, forward, …); before every run its `prepare` (e.g. remove the previous
 * output) and a `sync` happen untimed. Returns per key: every run's ms and RSS, and their medians.
 * Optional per command: `warmArgv` runs instead of `argv` for the untimed warm-up (a lighter load);
 * `after(result, { timed })` runs untimed after every run (e.g. check the output); what it returns for
 * the timed runs is kept, in order, as `extra` of that command.
 */
export async function measureGroup(commands, { runs = 3, log = () => {}, afterWarm } = {}) {
  const samples = new Map(commands.map((command) => [command.key, []]));
  const once = async (command, timed) => {
    await command.prepare?.();
    await syncAll();
    const argv = timed ? command.argv : (command.warmArgv ?? command.argv);
    const result = await timeCommand(argv, { cwd: command.cwd });
    const extra = await command.after?.(result, { timed });
    if (timed) samples.get(command.key).push({ ...result, extra });
    log(
      `  ${timed ? "run " : "warm"} ${command.label.padEnd(34)} ${formatMs(result.ms).padStart(9)}  ${formatRss(result.rssKiB).padStart(8)}`,
    );
  };
  for (const command of commands) await once(command, false);
  const warmNote = await afterWarm?.();
  if (warmNote !== undefined) log(`  after warm-up: ${warmNote}`);
  for (let round = 0; round < runs; round++) {
    const order = round % 2 === 0 ? commands : [...commands].reverse();
    for (const command of order) await once(command, true);
  }
  for (const command of commands) await command.cleanup?.();
  const out = warmNote === undefined ? {} : { afterWarm: warmNote };
  for (const command of commands) {
    const runsOf = samples.get(command.key);
    out[command.key] = {
      label: command.label,
      command: command.argv.join(" "),
      ms: runsOf.map((r) => Math.round(r.ms)),
      rssKiB: runsOf.map((r) => r.rssKiB),
      medianMs: median(runsOf.map((r) => r.ms)),
      medianRssKiB: median(runsOf.map((r) => r.rssKiB)),
      maxRssKiB: Math.max(...runsOf.map((r) => r.rssKiB)),
      cpuS: runsOf.map((r) => Number(r.cpuS.toFixed(2))),
      medianCpuS: median(runsOf.map((r) => r.cpuS)),
      ...(command.after === undefined ? {} : { extra: runsOf.map((r) => r.extra) }),
    };
  }
  return out;
}

/** A plain text table; `align` per column: "l" or "r". */
export function renderTable(header, rows, align = []) {
  const widths = header.map((cell, i) =>
    Math.max(String(cell).length, ...rows.map((row) => String(row[i] ?? "").length)),
  );
  const line = (row) =>
    row
      .map((cell, i) =>
        align[i] === "r" ? String(cell ?? "").padStart(widths[i]) : String(cell ?? "").padEnd(widths[i]),
      )
      .join("  ")
      .trimEnd();
  return [line(header), widths.map((w) => "-".repeat(w)).join("  "), ...rows.map(line)].join("\n");
}

/** Total bytes of the files under a directory (or of one file). */
export async function diskBytes(target) {
  const stat = await fs.lstat(target).catch(() => undefined);
  if (stat === undefined) return 0;
  if (!stat.isDirectory()) return stat.size;
  let total = 0;
  for (const entry of await fs.readdir(target)) total += await diskBytes(path.join(target, entry));
  return total;
}

export async function memInfo() {
  const text = await fs.readFile("/proc/meminfo", "utf8").catch(() => "");
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(text)?.[1] ?? 0) * KiB;
  return { total: field("MemTotal"), available: field("MemAvailable") };
}

/** Linux pressure stall information: share of the last 60 s some task waited for CPU / IO, in percent. */
export async function pressure() {
  const read = async (what) => {
    const text = await fs.readFile(`/proc/pressure/${what}`, "utf8").catch(() => "");
    const value = /^some avg10=[\d.]+ avg60=([\d.]+)/m.exec(text)?.[1];
    return value === undefined ? undefined : Number(value);
  };
  return {
    cpu: await read("cpu"),
    io: await read("io"),
    load: os.loadavg().map((l) => Number(l.toFixed(2))),
  };
}

export function formatPressure(p) {
  const pct = (v) => (v === undefined ? "n/a" : `${v.toFixed(0)}%`);
  return `load ${p.load.join(" ")}, CPU pressure ${pct(p.cpu)}, IO pressure ${pct(p.io)} (PSI some, avg60)`;
}

/** The host a benchmark runs on: date, CPUs, RAM, and the file system BENCH_DIR (the work files) is on. */
export async function hostEnvironment() {
  const mem = await memInfo();
  const fsType = (await $({ quiet: true, nothrow: true })`df --output=fstype ${BENCH_DIR}`).stdout
    .trim()
    .split("\n")
    .pop();
  return {
    date: new Date().toISOString(),
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? "unknown",
    memTotal: mem.total,
    memAvailable: mem.available,
    fs: `${fsType ?? "?"} at ${BENCH_DIR}`,
  };
}

/** The report's `host:` line of a hostEnvironment(). */
export function hostLine(environment) {
  return `host: ${environment.cpus} CPUs (${environment.cpuModel}), ${formatBytes(environment.memTotal)} RAM, Node ${process.version}, ${environment.fs}`;
}

/** The first line a tool prints for `argv` (e.g. its --version), "?" when it prints nothing. */
export async function firstLine(argv) {
  return (await $({ quiet: true, nothrow: true })`${argv}`).stdout.trim().split("\n")[0] ?? "?";
}

/**
 * A copy of the repository's dist/ under `into`, returning the path of its CLI (logged): other engineers
 * rebuild dist/ while a benchmark runs, and a half-written file would fail (or change) a measurement.
 * Node resolves packages from the repo's node_modules above the copy. `hint` follows the build advice.
 */
export async function snapshotDist(into, { hint = "" } = {}) {
  const main = path.join(REPO, "dist", "installer", "cli", "main.js");
  await fs.access(main).catch(() => {
    throw new Error(`${path.relative(REPO, main)} is missing: run \`npm run build\` first${hint}`);
  });
  const copy = path.join(into, "dist");
  await fs.rm(copy, { recursive: true, force: true });
  await fs.cp(path.join(REPO, "dist"), copy, { recursive: true });
  const cli = path.join(copy, "installer", "cli", "main.js");
  log(`airlock: node ${path.relative(REPO, cli)} (a snapshot of dist/ taken now)`);
  return cli;
}

/**
 * Writes a benchmark's results to `file` (JSON: environment, options, IMAGES as `images`, targets and
 * information from `summary`, then `measured`) and prints where they went, where the work files were kept
 * (`keepWork`: their directory, or undefined), and `more`.
 */
export async function writeResults(file, summary, measured, { keepWork, more = "" } = {}) {
  const { environment, options, targets, information } = summary;
  const results = { environment, options, images: IMAGES, targets, information, ...measured };
  await fs.writeFile(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(
    `results: ${path.relative(REPO, file)}${keepWork === undefined ? "" : `; work files kept in ${path.relative(REPO, keepWork)}`}${more}`,
  );
}

/** A field of /proc/<pid>/status in KiB (VmRSS, VmHWM), or undefined when the process is gone. */
export async function procStatusKiB(pid, field) {
  const text = await fs.readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
  const value = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1];
  return value === undefined ? undefined : Number(value);
}

/**
 * Resets the peak RSS (VmHWM) of a running process to its current RSS (Linux: clear_refs "5"), so a
 * later VmHWM is the peak of what happened in between. False when the kernel or permissions refuse.
 */
export async function resetPeakRss(pid) {
  return fs
    .writeFile(`/proc/${pid}/clear_refs`, "5")
    .then(() => true)
    .catch(() => false);
}

/** CPU seconds a running process has used so far, { user, system } (/proc/<pid>/stat), or undefined. */
export async function cpuSeconds(pid) {
  const text = await fs.readFile(`/proc/${pid}/stat`, "utf8").catch(() => undefined);
  if (text === undefined) return undefined;
  // Fields after the command name (which may hold spaces) start at field 3; utime and stime are 14, 15.
  const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { user: Number(fields[11]) / CLOCK_TICKS, system: Number(fields[12]) / CLOCK_TICKS };
}

// USER_HZ: 100 on every Linux port Node runs on.
const CLOCK_TICKS = 100;

/** A whole-number command-line value of at least `min`, or an error naming the flag. */
export function integerOption(value, flag, min = 1) {
  const number = Number(value);
  if (!Number.isSafeInteger(number) || number < min) {
    throw new Error(`${flag} must be an integer of at least ${min}, got ${value}`);
  }
  return number;
}

// ---------------------------------------------------------------------------------------------------
// Content: the generated image set, bundle.yaml of it, checks of what a pull wrote.

/**
 * The generated image set of `size` bytes from `seed` under BENCH_DIR/fixtures (scripts/fixtures.mjs,
 * reused when seed and size match), logged with the time it took.
 */
export async function prepareFixtures({ seed, size }) {
  const out = path.join(BENCH_DIR, "fixtures", `seed${seed}-${sizeLabel(size)}`);
  const started = Date.now();
  const fixtures = await generateFixtures({ out, seed, size });
  log(
    `fixtures (${formatMs(Date.now() - started)}): ${out} (${formatBytes(fixtures.totalBlobBytes)} of blobs)`,
  );
  return fixtures;
}

/** bundle.yaml `name` of `images` (IMAGES unless given) taken from the OCI layout `layout`. */
export function layoutSpec(name, layout, images = IMAGES) {
  return [
    `name: ${name}`,
    "version: 4.5.0",
    'created: "2026-11-01T00:00:00Z"',
    "images:",
    ...images.flatMap((ref) => [`  - ref: ${ref}`, `    source: oci:${layout}:${ref}`]),
    "",
  ].join("\n");
}

/**
 * IMAGES from the OCI layout `layout` built into WORK/<name>.airlock.tar (spec WORK/<name>.yaml) and
 * imported into WORK/data, each step logged with its time; `airlock(...args)` is the CLI's argv, and
 * `afterBuild(bytes)` runs between the two. Returns the paths and the bundle's size in bytes.
 */
export async function buildAndImport(work, name, layout, { airlock, afterBuild }) {
  const spec = path.join(work, `${name}.yaml`);
  const bundle = path.join(work, `${name}.airlock.tar`);
  const dataDir = path.join(work, "data");
  await fs.writeFile(spec, layoutSpec(name, layout));
  let started = Date.now();
  await $({ quiet: true })`${airlock("bundle", "build", "-f", spec, "-o", bundle)}`;
  const bundleBytes = (await fs.stat(bundle)).size;
  log(`bundle built (${formatMs(Date.now() - started)}): ${formatBytes(bundleBytes)}`);
  afterBuild?.(bundleBytes);
  started = Date.now();
  await $({ quiet: true })`${airlock("--data-dir", dataDir, "bundle", "import", bundle)}`;
  log(`bundle imported into ${path.relative(REPO, dataDir)} (${formatMs(Date.now() - started)})`);
  return { spec, bundle, dataDir, bundleBytes };
}

/** That the OCI layout `dir` (skopeo's oci:DIR:REF) names each of `images` (IMAGES) at its digest in `tags`. */
export async function checkPulled(dir, tags, images = IMAGES) {
  const index = JSON.parse(await fs.readFile(path.join(dir, "index.json"), "utf8"));
  for (const ref of images) {
    const entry = index.manifests.find((m) => m.annotations?.["org.opencontainers.image.ref.name"] === ref);
    if (entry?.digest !== tags[ref])
      throw new Error(`pull into ${dir}: ${ref} is ${entry?.digest ?? "missing"}, want ${tags[ref]}`);
  }
}

// ---------------------------------------------------------------------------------------------------
// Reports.

// Three decimals by default: a ratio a hair under its target must not print as the target itself
// ("1.00×" and FAIL).
export const ratio = (value, digits = 3) => (Number.isFinite(value) ? `${value.toFixed(digits)}×` : "-");
export const mibPerSecond = (bytes, ms) => (bytes / MiB / (ms / 1000)).toFixed(0);
/** A field of what measureGroup's `after` returned, per timed run; its largest and its median. */
export const extraOf = (measured, field) => measured.extra.map((e) => e[field]);
export const maxOf = (measured, field) => Math.max(...extraOf(measured, field));
export const medianOf = (measured, field) => median(extraOf(measured, field));

/**
 * Rows of the results table for one step: a row per key of `group` (measureGroup's result), the step named
 * on the first only, then the command's label, median and every run, then the cells `more(measured)`.
 */
export function stepRows(step, group, keys, more) {
  return keys.map((key, i) => {
    const m = group[key];
    return [
      i === 0 ? step : "",
      m.label,
      formatMs(m.medianMs),
      m.ms.map((ms) => formatMs(ms)).join(" / "),
      ...more(m),
    ];
  });
}

/** A target of the ratio table: the ratio `value` at least `min`. */
export const atLeast = (name, value, min) => ({
  name,
  value,
  shown: ratio(value),
  target: `≥ ${min.toFixed(2)}`,
  pass: value >= min,
});

/** A target of the ratio table: `value` under `max`; `shown` and `limit` are how value and max print. */
export const under = (name, value, max, { shown, limit }) => ({
  name,
  value,
  shown,
  target: `< ${limit}`,
  pass: value < max,
});

/**
 * The ratio table: every target ({ name, shown, target, pass }) with PASS or FAIL, then every piece of
 * information ({ name, shown } or { name, value }, a ratio).
 */
export function ratioTable(targets, info) {
  return renderTable(
    ["ratio", "value", "target", "result"],
    [
      ...targets.map((t) => [t.name, t.shown, t.target, t.pass ? "PASS" : "FAIL"]),
      ...info.map((t) => [t.name, t.shown ?? ratio(t.value), "information", ""]),
    ],
    ["l", "r", "l", "l"],
  );
}

/** "2/3 targets met — FAIL: <name>" (`what` names the targets), the summary of the ratio table's targets. */
export function targetSummary(targets, what = "targets") {
  const failed = targets.filter((t) => !t.pass);
  const passed = targets.length - failed.length;
  return `${passed}/${targets.length} ${what} met${
    failed.length === 0 ? "" : ` — FAIL: ${failed.map((t) => t.name).join("; ")}`
  }`;
}

// ---------------------------------------------------------------------------------------------------
// Servers a benchmark starts: tracked by PID, stopped by PID (also on failure or Ctrl-C: stopAllServers).

// Node's global fetch (undici inside): the benchmarks only poll and read manifests with it.
const { fetch } = globalThis;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every server started by spawnServer and not seen to exit yet: { name, child, pid, logFile }. */
const servers = [];

export const exited = (child) => child.exitCode !== null || child.signalCode !== null;

export function waitForExit(child, ms) {
  if (exited(child)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** The last 10 lines of a server's log. */
export async function logTail(file) {
  const text = await fs.readFile(file, "utf8").catch(() => "");
  return text.trim().split("\n").slice(-10).join("\n");
}

/** A free TCP port on 127.0.0.1 (for a server that cannot be told to pick one itself). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

/** Starts a server process, its stderr (and stdout unless "pipe") appended to `logFile`; tracked until stopped. */
export function spawnServer(name, command, args, logFile, { stdout = "log", cwd } = {}) {
  const fd = openSync(logFile, "a");
  try {
    const child = spawn(command, args, { stdio: ["ignore", stdout === "pipe" ? "pipe" : fd, fd], cwd });
    if (child.pid === undefined) throw new Error(`cannot start ${name}: ${command} did not spawn`);
    const server = { name, child, pid: child.pid, logFile };
    servers.push(server);
    child.on("error", () => {});
    return server;
  } finally {
    closeSync(fd);
  }
}

/**
 * SIGTERM to the server's PID (it drains and exits), SIGKILL to the same PID if it is still there after
 * 15 s; a server seen to exit leaves the list.
 */
export async function stopServer(server) {
  if (!exited(server.child)) {
    process.kill(server.pid, "SIGTERM");
    if (!(await waitForExit(server.child, 15_000))) {
      log(`  ${server.name} (pid ${server.pid}) ignored SIGTERM for 15 s: SIGKILL`);
      process.kill(server.pid, "SIGKILL");
      if (!(await waitForExit(server.child, 5_000))) return;
    }
  }
  const at = servers.indexOf(server);
  if (at >= 0) servers.splice(at, 1);
}

/** Stops every server still tracked, each by its PID. */
export async function stopAllServers() {
  await Promise.all([...servers].map((server) => stopServer(server).catch(() => {})));
}

/**
 * A server started afresh for runs that each want an empty one: `restart()` stops the previous server,
 * removes `storage` and starts a new one by `start(storage)`; `current` is the running one; `cleanup(keep)`
 * stops it and removes `storage` unless `keep`.
 */
export function freshServer(storage, start) {
  let server;
  const stop = async () => {
    if (server !== undefined) await stopServer(server);
    server = undefined;
  };
  const empty = () => fs.rm(storage, { recursive: true, force: true });
  return {
    get current() {
      return server;
    },
    stop,
    async restart() {
      await stop();
      await empty();
      server = await start(storage);
      return server;
    },
    async cleanup(keep) {
      await stop();
      if (!keep) await empty();
    },
  };
}

/**
 * A server's CPU (user + system) and, with `rss`, its peak RSS around one run: `start()` before it
 * (untimed; resets the peak, VmHWM, by clear_refs), `finish()` after it, failing if the server died.
 * `getServer` returns the server at that moment (one started per run changes between runs).
 */
export function serverProbe(getServer, { rss = true } = {}) {
  let cpuBefore;
  let reset = false;
  return {
    async start() {
      const { pid } = getServer();
      if (rss) reset = await resetPeakRss(pid);
      cpuBefore = await cpuSeconds(pid);
    },
    async finish() {
      const server = getServer();
      if (exited(server.child))
        throw new Error(`${server.name} died during the run:\n${await logTail(server.logFile)}`);
      const cpu = await cpuSeconds(server.pid);
      const user = cpu.user - cpuBefore.user;
      const system = cpu.system - cpuBefore.system;
      const serverCpuS = Number((user + system).toFixed(2));
      if (!rss) return { serverCpuS };
      return {
        serverPeakRssKiB: await procStatusKiB(server.pid, "VmHWM"),
        serverRssKiB: await procStatusKiB(server.pid, "VmRSS"),
        serverCpuS,
        serverUserS: Number(user.toFixed(2)),
        serverSystemS: Number(system.toFixed(2)),
        peakScope: reset ? "run" : "lifetime",
      };
    },
  };
}

/**
 * Runs a benchmark that starts servers: GNU time and `tools` checked, `work` made afresh with a tmp/ in it
 * (TMPDIR of skopeo), `main(options())`, then (also on failure) every server stopped and `work` removed
 * unless the options say `keep`; a failure prints "<name>: <message>" and exits 1. On SIGINT or SIGTERM:
 * the servers stopped, `work` removed unless `keep`, exit 130 (the failure of the command that was
 * running, its servers gone, is not printed).
 */
export async function runBenchmark({ name, work, tools, options, main }) {
  let interrupted = false;
  let opts = { keep: false };
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      interrupted = true;
      log(`${name}: ${signal}: stopping the servers`);
      stopAllServers()
        .then(() => (opts.keep ? undefined : fs.rm(work, { recursive: true, force: true })))
        .finally(() => process.exit(130));
    });
  }
  try {
    opts = options();
    await requireGnuTime();
    await requireTools(tools);
    await fs.rm(work, { recursive: true, force: true });
    await fs.mkdir(path.join(work, "tmp"), { recursive: true });
    await main(opts);
  } catch (error) {
    if (!interrupted) console.error(`${name}: ${error.message}`);
    process.exitCode = 1;
  } finally {
    if (!interrupted) {
      await stopAllServers();
      if (!opts.keep) await fs.rm(work, { recursive: true, force: true }).then(syncAll, () => {});
    }
  }
}

/** Polls GET /v2/ over plain HTTP (with `headers`, e.g. credentials) until it answers 200. */
export async function waitForRegistry(server, base, { headers = {}, ms = 20_000, ca } = {}) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (exited(server.child)) {
      throw new Error(
        `${server.name} exited (${server.child.exitCode ?? server.child.signalCode}):\n${await logTail(server.logFile)}`,
      );
    }
    const status = await (ca === undefined
      ? fetch(`${base}/v2/`, { headers }).then(
          (r) => r.arrayBuffer().then(() => r.status),
          () => 0,
        )
      : httpsStatus(`${base}/v2/`, { headers, ca }));
    if (status === 200) return;
    if (Date.now() > deadline)
      throw new Error(`${server.name} did not answer ${base}/v2/ within ${ms / 1000} s`);
    await sleep(100);
  }
}

/** The status of a GET over TLS trusting `ca` (PEM), 0 when it cannot connect. */
function httpsStatus(url, { headers, ca }) {
  return new Promise((resolve) => {
    https
      .get(url, { headers, ca }, (response) => {
        response.resume();
        response.on("end", () => resolve(response.statusCode));
      })
      .on("error", () => resolve(0));
  });
}

/**
 * Debian's docker-registry (CNCF distribution): `serve DIR/<name>.yml` on 127.0.0.1:<port> (a free one
 * unless given), storage under `root`, log in DIR/<name>.log; with `htpasswd`, basic auth from that file
 * (every request then needs credentials: `headers` are what the readiness poll sends); with `tls`
 * ({ cert, key } PEM files, the certificate self-signed), HTTPS.
 */
export async function startDockerRegistry(
  root,
  { dir, name = "docker-registry", port, htpasswd, headers = {}, tls },
) {
  const listenPort = port ?? (await freePort());
  const config = path.join(dir, `${name}.yml`);
  // Debian's shipped config minus the health check (and minus auth unless asked), access log off.
  await fs.writeFile(
    config,
    dockerRegistryConfig({
      storage: root,
      port: listenPort,
      htpasswd,
      cache: true,
      tls: tls === undefined ? undefined : { certFile: tls.cert, keyFile: tls.key },
    }),
  );
  const server = spawnServer(name, "docker-registry", ["serve", config], path.join(dir, `${name}.log`), {
    cwd: dir,
  });
  server.url = `${tls === undefined ? "http" : "https"}://127.0.0.1:${listenPort}`;
  server.host = `127.0.0.1:${listenPort}`;
  const ca = tls === undefined ? undefined : await fs.readFile(tls.cert, "utf8");
  await waitForRegistry(server, server.url, { headers, ca });
  return server;
}

export const MANIFEST_ACCEPT = [
  "application/vnd.oci.image.index.v1+json",
  "application/vnd.oci.image.manifest.v1+json",
  "application/vnd.docker.distribution.manifest.list.v2+json",
  "application/vnd.docker.distribution.manifest.v2+json",
].join(", ");

/**
 * The content of `images` (refs "repository:tag", each walked as `<prefix>/repository` unless the prefix is
 * empty) from their top manifests down: `getManifest(repo, reference)` gives { digest, body } (bytes), and
 * each walk starts at `reference(ref, tag)` (the tag unless given). Returns each tag's digest, every blob
 * (config and layer) once ({ repo, digest, size }, repo the first that references it, sorted by digest),
 * every (repository, blob) pair the manifests reference, and the manifests' count and bytes.
 */
export async function walkImages(images, getManifest, { prefix = "", reference = (_ref, tag) => tag } = {}) {
  const tags = {};
  const blobs = new Map();
  const pairs = new Map();
  let manifestBytes = 0;
  const seen = new Set();
  const walk = async (repo, ref) => {
    const { digest, body } = await getManifest(repo, ref);
    if (!seen.has(digest)) manifestBytes += body.length;
    seen.add(digest);
    const manifest = JSON.parse(body.toString("utf8"));
    if (Array.isArray(manifest.manifests)) {
      for (const child of manifest.manifests) await walk(repo, child.digest);
    } else {
      for (const blob of [manifest.config, ...manifest.layers]) {
        if (!blobs.has(blob.digest)) blobs.set(blob.digest, { repo, digest: blob.digest, size: blob.size });
        pairs.set(`${repo}@${blob.digest}`, { repo, digest: blob.digest, size: blob.size });
      }
    }
    return digest;
  };
  for (const ref of images) {
    const colon = ref.lastIndexOf(":");
    const repo = prefix === "" ? ref.slice(0, colon) : `${prefix}/${ref.slice(0, colon)}`;
    tags[ref] = await walk(repo, await reference(ref, ref.slice(colon + 1)));
  }
  const list = [...blobs.values()].sort((a, b) => a.digest.localeCompare(b.digest));
  return {
    tags,
    blobs: list,
    pairs: [...pairs.values()],
    blobBytes: list.reduce((sum, b) => sum + b.size, 0),
    manifestBytes,
    manifestCount: seen.size,
  };
}

/** What a registry serves for `images` (walkImages), over plain HTTP with `headers` (e.g. credentials). */
export function walkRegistry(base, images, { prefix = "", headers = {} } = {}) {
  return walkImages(
    images,
    async (repo, reference) => {
      const response = await fetch(`${base}/v2/${repo}/manifests/${reference}`, {
        headers: { ...headers, accept: MANIFEST_ACCEPT },
      });
      const body = Buffer.from(await response.arrayBuffer());
      if (response.status !== 200)
        throw new Error(`GET ${base}/v2/${repo}/manifests/${reference}: ${response.status}`);
      return { digest: response.headers.get("docker-content-digest"), body };
    },
    { prefix },
  );
}

/** One line per blob, "digest size", in digest order: equal for two walks that found the same blobs. */
export const blobKey = (walked) => walked.blobs.map((b) => `${b.digest} ${b.size}`).join("\n");
