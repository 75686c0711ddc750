#!/usr/bin/env node
// Benchmark of `airlock registry mirror` and of `bundle build` pulling from a registry, side by side with
// skopeo, in one run (issue 5, point 7).
//
//   node bench/mirror.mjs [--size 1.25GiB] [--seed 42] [--runs 3] [--keep]
//   npm run bench:mirror -- --runs 5
//
// A generated image set (scripts/fixtures.mjs, reused when seed and size match) is built into a bundle of
// the 3 images of 4.5.0 (at least 1 GiB with the default --size) and imported into a data dir (untimed).
// Every registry is Debian's docker-registry (CNCF distribution), plain HTTP on 127.0.0.1. It measures:
//   full mirror  into a FRESH docker-registry every run (new storage dir, server started before the run
//                and stopped after it, both untimed):
//                  airlock registry mirror --bundle BUNDLE --to HOST/bench --insecure-http
//                  vs. skopeo copy --all --preserve-digests oci-archive:BUNDLE:REF docker://HOST/bench/REF
//                  --dest-tls-verify=false, for each image in turn (as an operator would script it);
//                information: airlock registry mirror --from-store (the bundle imported into a data dir), and
//                skopeo copy from the OCI layout the bundle was built from (oci:LAYOUT:REF: no archive to
//                unpack); `skopeo sync` is tried once with the OCI layout as source and what it says reported.
//   no-op re-run the same commands again against a registry that already holds the set (filled once by
//                airlock, untimed): airlock --bundle (target), --from-store and skopeo (information).
//   build pull   airlock bundle build of a bundle.yaml whose images are docker://HOST/bench/REF sources
//                (registries: HOST: insecureHttp: true) vs. skopeo copy --all --preserve-digests
//                docker://HOST/bench/REF oci:DIR:REF of each image; information: the same bundle build
//                from the OCI layout (what the build costs without the pull). Skipped, with the reason,
//                when the build cannot pull from a registry.
// After every run the target is checked: each tag at the fixtures' digest, the same blob set as the
// layout, every (repository, blob) pair answering HEAD with its size; airlock's --json result says every
// image copied (present for the no-op), the build's output lists the fixtures' digests, skopeo's OCI
// directory names them. skopeo unpacks the bundle into TMPDIR for every oci-archive: copy (inside its timed
// run, as an operator pays it). Page cache: warm; every command runs once untimed, then --runs timed rounds
// in alternating order, `sync` before every run (untimed). Medians are reported, with peak RSS (GNU time)
// and CPU (user + system, with the children it waited for) of each command and the registry server's CPU
// in the run. It is a measurement, not a test: it exits 0 when a target is missed, 1 only when a command
// fails. Every server it starts is stopped by its PID at the end, also on failure or Ctrl-C. Results go to
// .bench/mirror-results.json.
import fs from "node:fs/promises";
import path from "node:path";
import { $ } from "zx";
import {
  GiB,
  IMAGES,
  atLeast,
  benchPaths,
  blobKey,
  buildAndImport,
  checkPulled,
  firstLine,
  formatBytes,
  formatMs,
  formatPressure,
  formatRss,
  freePort,
  freshServer,
  hostEnvironment,
  hostLine,
  log,
  measureGroup,
  median,
  medianOf,
  mibPerSecond,
  parseOptions,
  parseSize,
  prepareFixtures,
  pressure,
  ratio,
  ratioTable,
  renderTable,
  runBenchmark,
  serverProbe,
  sizeLabel,
  snapshotDist,
  startDockerRegistry,
  stepRows,
  stopAllServers,
  targetSummary,
  timeCommand,
  under,
  walkImages,
  walkRegistry,
  writeResults,
} from "./lib.mjs";

const { work: WORK, results: RESULTS } = benchPaths("mirror");
// The repository prefix at the target: `--to HOST/bench`, skopeo's docker://HOST/bench/REF.
const PREFIX = "bench";

const TARGETS = {
  mirror: 1.5, // skopeo time / airlock time ≥ 1.5 on the full mirror
  noopMs: 2000, // airlock's no-op re-run < 2 s (median)
  buildPull: 1.0, // skopeo time / airlock bundle build time ≥ 1.0 pulling from the registry (issue 11 point 7)
};

const USAGE = `usage: node bench/mirror.mjs [--size 1.25GiB] [--seed 42] [--runs 3] [--keep]
  --size   the generated image set; the 3 images of 4.5.0 take about 0.9 of it (1.25GiB → a 1.1 GiB bundle)
  --seed   fixture seed
  --runs   timed runs per command (median reported); each after one untimed warm-up run
  --keep   keep the work files (bundle, data dir, last registry storage of each command, build outputs)
           under .bench/mirror-work`;

function options() {
  const { size, seed, runs, keep } = parseOptions(USAGE, { size: "1.25GiB" });
  return { size: parseSize(size), seed, runs, keep };
}

const { fetch } = globalThis;

// ---------------------------------------------------------------------------------------------------
// Content: what the set is, and checks that a registry or a pull holds exactly it.

/** bundle.yaml of IMAGES pulled from `host` (plain HTTP) under PREFIX; `images` narrows the list. */
function registrySpec(host, images = IMAGES) {
  return [
    "name: bench-mirror-pull",
    "version: 4.5.0",
    'created: "2026-11-01T00:00:00Z"',
    "registries:",
    `  "${host}":`,
    "    insecureHttp: true",
    "images:",
    ...images.flatMap((ref) => [`  - ref: ${ref}`, `    source: docker://${host}/${PREFIX}/${ref}`]),
    "",
  ].join("\n");
}

/** IMAGES as the OCI layout holds them, in walkRegistry's shape (repositories under PREFIX). */
async function layoutContent(layout) {
  const index = JSON.parse(await fs.readFile(path.join(layout, "index.json"), "utf8"));
  return walkImages(
    IMAGES,
    async (_repo, digest) => ({
      digest,
      body: await fs.readFile(path.join(layout, "blobs", ...digest.split(":"))),
    }),
    {
      prefix: PREFIX,
      reference: (ref) => {
        const entry = index.manifests.find(
          (m) => m.annotations?.["org.opencontainers.image.ref.name"] === ref,
        );
        if (entry === undefined) throw new Error(`the layout ${layout} has no ${ref}`);
        return entry.digest;
      },
    },
  );
}

/**
 * That `server` serves the set under PREFIX: every tag at the fixtures' digest, the layout's blob set, and
 * every (repository, blob) pair the manifests reference answering HEAD 200 with the blob's size.
 */
async function checkServed(server, expected) {
  const walked = await walkRegistry(server.url, IMAGES, { prefix: PREFIX });
  for (const ref of IMAGES) {
    if (walked.tags[ref] !== expected.tags[ref])
      throw new Error(
        `${server.name}: ${PREFIX}/${ref} is ${walked.tags[ref]}, the fixtures have ${expected.tags[ref]}`,
      );
  }
  if (blobKey(walked) !== blobKey(expected))
    throw new Error(`${server.name}: the blobs served under ${PREFIX}/ differ from the layout's`);
  for (const pair of walked.pairs) {
    const response = await fetch(`${server.url}/v2/${pair.repo}/blobs/${pair.digest}`, { method: "HEAD" });
    const length = Number(response.headers.get("content-length"));
    if (response.status !== 200 || length !== pair.size)
      throw new Error(
        `${server.name}: HEAD ${pair.repo}@${pair.digest} answered ${response.status} with ${length} bytes, want 200 with ${pair.size}`,
      );
  }
  return walked;
}

/** airlock registry mirror --json's result: every image `want` ("copied" or "present"), none failed. */
function checkMirrorResult(stdout, want, expected) {
  const result = JSON.parse(stdout);
  const wrong = result.images.filter((image) => image.status !== want);
  if (result.failed !== 0 || wrong.length > 0 || result.images.length !== IMAGES.length) {
    throw new Error(
      `airlock mirror: want ${IMAGES.length} images ${want}, got ${result.images.map((i) => `${i.source} ${i.status}${i.error === undefined ? "" : ` (${i.error.code}: ${i.error.message})`}`).join(", ")}`,
    );
  }
  const blobs = { present: 0, mounted: 0, uploaded: 0 };
  for (const image of result.images)
    for (const outcome of Object.keys(blobs)) blobs[outcome] += image.blobs[outcome];
  if (want === "present" && result.bytes !== 0)
    throw new Error(`airlock mirror: a no-op re-run sent ${result.bytes} bytes`);
  return {
    durationMs: result.durationMs,
    bytesSent: result.bytes,
    sentWholeSetOnce: result.bytes === expected.blobBytes,
    blobs,
  };
}

/** airlock bundle build --json's result: each image at the fixtures' digest. */
function checkBuildResult(stdout, expected) {
  const result = JSON.parse(stdout);
  for (const ref of IMAGES) {
    const image = result.images.find((i) => i.ref === ref);
    if (image?.digest !== expected.tags[ref])
      throw new Error(`bundle build: ${ref} is ${image?.digest ?? "missing"}, want ${expected.tags[ref]}`);
  }
  return { bundleBytes: result.bytes };
}

// ---------------------------------------------------------------------------------------------------
// Commands.

// skopeo copy of every ref in turn, "$src$ref" → "$dest$ref", stopping at the first failure; its stderr
// goes to a file, shown when a copy fails.
const SKOPEO_SCRIPT = `set -e
src=$1 dest=$2 tls=$3 errors=$4
shift 4
for ref in "$@"; do
  skopeo --insecure-policy copy --quiet --all --preserve-digests "$tls" "$src$ref" "$dest$ref" 2>>"$errors" ||
    { tail -n 20 "$errors" >&2; exit 1; }
done`;

function skopeoArgv({ src, dest, tls, errors }) {
  return [
    "env",
    `TMPDIR=${path.join(WORK, "tmp")}`,
    "sh",
    "-c",
    SKOPEO_SCRIPT,
    "sh",
    src,
    dest,
    tls,
    errors,
    ...IMAGES,
  ];
}

/** Runs the thunks one after the other (each picks a free port), in order. */
async function sequentially(thunks) {
  const out = [];
  for (const thunk of thunks) out.push(await thunk());
  return out;
}

/**
 * A command that copies into a FRESH registry every run: before it (untimed) the previous server is
 * stopped, its storage removed and a new one started on the same port (so the command stays the same);
 * after it (untimed) the registry is checked against `expected`, `check(stdout)` reads the command's own
 * output, and the server is stopped and its storage removed (kept with --keep).
 */
async function freshRegistryCommand({ key, label, argv, check, expected, keep }) {
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const fresh = freshServer(path.join(WORK, `registry-${key}`), (storage) =>
    startDockerRegistry(storage, { dir: WORK, name: `docker-registry-${key}`, port }),
  );
  const probe = serverProbe(() => fresh.current, { rss: false });
  return {
    key,
    label,
    argv: argv(host),
    prepare: async () => {
      await fresh.restart();
      await probe.start();
    },
    after: async (result) => {
      const extra = { ...(await probe.finish()), ...(check === undefined ? {} : check(result.stdout)) };
      await checkServed(fresh.current, expected);
      await fresh.cleanup(keep);
      return extra;
    },
    cleanup: () => fresh.cleanup(keep),
  };
}

/** A command run against a running server; `after` checks with `check(stdout)` and gets the server's CPU. */
function serverCommand({ key, label, argv, server, prepare, check, cleanup }) {
  const probe = serverProbe(() => server, { rss: false });
  return {
    key,
    label,
    argv,
    prepare: async () => {
      await prepare?.();
      await probe.start();
    },
    after: async (result) => ({ ...(await probe.finish()), ...((await check?.(result.stdout)) ?? {}) }),
    cleanup,
  };
}

// ---------------------------------------------------------------------------------------------------
// Report.

function report(opts, results, environment) {
  const { content, mirror, noop, pull, sync } = results;
  const setBytes = content.blobBytes + content.manifestBytes;
  const rows = [];
  const addRows = (step, group, keys, bytes) =>
    rows.push(
      ...stepRows(step, group, keys, (m) => [
        bytes === undefined ? "-" : mibPerSecond(bytes, m.medianMs),
        formatRss(m.maxRssKiB),
        `${m.medianCpuS.toFixed(1)} s`,
        Number.isFinite(medianOf(m, "serverCpuS")) ? `${medianOf(m, "serverCpuS").toFixed(1)} s` : "-",
      ]),
    );
  addRows(
    "full mirror (fresh registry)",
    mirror,
    ["airlock", "skopeo", "airlockStore", "skopeoLayout"],
    setBytes,
  );
  addRows("no-op re-run (filled registry)", noop, ["airlock", "airlockStore", "skopeo"]);
  if (pull.measured)
    addRows("build pull (from registry)", pull.group, ["airlock", "skopeo", "airlockLayout"], setBytes);
  const table = renderTable(
    ["step", "command", "median", "runs", "MiB/s", "peak RSS", "CPU (user+sys)", "registry CPU"],
    rows,
    ["l", "l", "r", "r", "r", "r", "r", "r"],
  );

  const mirrorRatio = mirror.skopeo.medianMs / mirror.airlock.medianMs;
  const noopMs = noop.airlock.medianMs;
  const targets = [
    atLeast(
      "full mirror: skopeo copy ×3 (oci-archive:) time ÷ airlock mirror --bundle time",
      mirrorRatio,
      TARGETS.mirror,
    ),
    under(`no-op re-run: airlock mirror --bundle, median (slowest of ${opts.runs})`, noopMs, TARGETS.noopMs, {
      shown: `${formatMs(noopMs)} (${formatMs(Math.max(...noop.airlock.ms))})`,
      limit: formatMs(TARGETS.noopMs),
    }),
  ];
  const info = [
    {
      name: "full mirror: skopeo copy ×3 from the OCI layout (no unpacking) ÷ airlock --bundle",
      shown: ratio(mirror.skopeoLayout.medianMs / mirror.airlock.medianMs),
    },
    {
      name: "full mirror: airlock --from-store time ÷ airlock --bundle time",
      shown: ratio(mirror.airlockStore.medianMs / mirror.airlock.medianMs),
    },
    {
      name: "full mirror: airlock's own durationMs (median) / wall time (process start, bundle open)",
      shown: `${formatMs(medianOf(mirror.airlock, "durationMs"))} / ${formatMs(mirror.airlock.medianMs)}`,
    },
    {
      name: "full mirror: airlock blobs uploaded / mounted; bytes sent = the set's blob bytes once",
      shown: `${mirror.airlock.extra[0].blobs.uploaded} / ${mirror.airlock.extra[0].blobs.mounted}; ${mirror.airlock.extra.every((e) => e.sentWholeSetOnce) ? "yes" : "NO"}`,
    },
    {
      name: "no-op re-run: airlock's own durationMs (median) / wall time",
      shown: `${formatMs(medianOf(noop.airlock, "durationMs"))} / ${formatMs(noop.airlock.medianMs)}`,
    },
    {
      name: "no-op re-run: airlock node startup (--version, median of 5) / --from-store no-op",
      shown: `${formatMs(results.startupMs)} / ${formatMs(noop.airlockStore.medianMs)}`,
    },
    {
      name: "no-op re-run: skopeo copy ×3 (oci-archive:) again, median",
      shown: formatMs(noop.skopeo.medianMs),
    },
  ];
  if (pull.measured) {
    targets.push(
      atLeast(
        "build pull: skopeo copy ×3 (docker:// → oci:) time ÷ airlock bundle build (docker://) time",
        pull.group.skopeo.medianMs / pull.group.airlock.medianMs,
        TARGETS.buildPull,
      ),
    );
    info.push({
      name: "build pull: airlock build from the registry ÷ from the OCI layout",
      shown: ratio(pull.group.airlock.medianMs / pull.group.airlockLayout.medianMs),
    });
  }
  const lines = [
    "",
    `Airlock mirror benchmark — ${environment.date}`,
    hostLine(environment),
    `peers: ${environment.versions.dockerRegistry}; ${environment.versions.skopeo}`,
    `load before: /proc/loadavg ${environment.loadavgBefore}; ${formatPressure(environment.pressureBefore)}`,
    `load after:  /proc/loadavg ${environment.loadavgAfter}; ${formatPressure(environment.pressureAfter)}`,
    ...environment.warnings.map((w) => `WARNING: ${w}`),
    `content: ${IMAGES.join(", ")} from a ${sizeLabel(opts.size)} fixture set (seed ${opts.seed}) → ${formatBytes(content.bundleBytes)} bundle;`,
    `  ${content.blobs} blobs (${formatBytes(content.blobBytes)}) + ${content.manifestCount} manifests; MiB/s count the ${formatBytes(setBytes)} set once.`,
    `  Registries: docker-registry, filesystem storage, inmemory blob descriptor cache, access log off, plain HTTP`,
    `  on 127.0.0.1. Full mirror: a fresh registry (new storage dir) per run, started and stopped outside the`,
    `  timed part. airlock: registry mirror --to HOST/${PREFIX} --insecure-http (--concurrency default); skopeo: one`,
    `  copy --all --preserve-digests per image, in turn, TMPDIR on the same file system (oci-archive: unpacks the`,
    `  whole bundle there for each image, in the timed run). No-op: the same commands against a registry holding`,
    `  the set. Build pull: from a registry holding the set under ${PREFIX}/ (docker:// sources, insecureHttp).`,
    `  Every run checked: tags at the fixtures' digests, same blob set, every (repository, blob) HEAD 200 with its size.`,
    `cache state: WARM. Every command ran once untimed before its ${opts.runs} timed runs; runs alternate order,`,
    `  \`sync\` before each (untimed). Medians; peak RSS: GNU time, largest of the runs (the largest process for`,
    `  skopeo's shell); CPU: user + system of the command and what it waited for (median); registry CPU: the`,
    `  docker-registry process during the run (median).`,
    "",
    table,
    "",
    ratioTable(targets, info),
    `skopeo sync (information), OCI layout as source: ${sync.note}`,
    ...(pull.measured ? [] : [`build pull: not measured: ${pull.reason}`]),
    "",
    `summary: ${targetSummary(targets)}${pull.measured ? "" : `; build pull not measured: ${pull.reason}`}`,
  ];
  return { text: lines.join("\n"), targets, info };
}

// ---------------------------------------------------------------------------------------------------

async function versions() {
  return {
    dockerRegistry: await firstLine(["docker-registry", "--version"]),
    skopeo: await firstLine(["skopeo", "--version"]),
  };
}

const loadavg = async () => (await fs.readFile("/proc/loadavg", "utf8")).trim();

/** Other benchmarks running now (`node bench/…` processes but this one and the shell that started it). */
async function otherBenchmarks() {
  const found = await $({ quiet: true, nothrow: true })`pgrep -af ${"node bench/"}`;
  return found.stdout
    .trim()
    .split("\n")
    .filter((line) => line !== "" && ![process.pid, process.ppid].includes(Number(line.split(" ")[0])));
}

/** `skopeo sync` from the OCI layout into `server`, once: its time if it works, what it says if not. */
async function trySkopeoSync(layout, server) {
  const argv = [
    "skopeo",
    "--insecure-policy",
    "sync",
    "--all",
    "--src",
    "oci",
    "--dest",
    "docker",
    "--dest-tls-verify=false",
    layout,
    `${server.host}/sync`,
  ];
  try {
    const result = await timeCommand(argv);
    return {
      works: true,
      ms: Math.round(result.ms),
      note: `worked once in ${formatMs(result.ms)} (not checked, not repeated)`,
    };
  } catch (error) {
    const said =
      /msg="((?:[^"\\]|\\.)*)"/.exec(error.message)?.[1] ?? error.message.split("\n")[1] ?? error.message;
    return {
      works: false,
      note: `not usable: ${said.replace(/\\"/g, '"')} (sync sources: docker, dir, yaml)`,
    };
  }
}

async function main(opts) {
  const environment = {
    ...(await hostEnvironment()),
    versions: await versions(),
    loadavgBefore: await loadavg(),
    pressureBefore: await pressure(),
    benchmarksBefore: await otherBenchmarks(),
    warnings: [],
  };
  const warn = (text) => {
    environment.warnings.push(text);
    log(`warning: ${text}`);
  };
  if (environment.pressureBefore.load[0] > environment.cpus / 2)
    warn(
      `the host was busy at the start (load ${environment.loadavgBefore}, ${environment.cpus} CPUs): timings are noisy`,
    );
  if (environment.benchmarksBefore.length > 0)
    warn(`other benchmarks were running at the start: ${environment.benchmarksBefore.join("; ")}`);
  if (environment.memAvailable < opts.size * 6)
    warn(
      `${formatBytes(environment.memAvailable)} RAM available, about ${formatBytes(opts.size * 6)} of page cache keeps everything warm: timings include disk reads`,
    );

  const cli = await snapshotDist(WORK);
  const airlock = (...args) => ["node", cli, "--no-progress", "--json", ...args];

  const fixtures = await prepareFixtures(opts);
  const expected = await layoutContent(fixtures.layout);
  for (const ref of IMAGES) {
    if (expected.tags[ref] !== fixtures.images[ref].digest)
      throw new Error(
        `the layout names ${ref} ${expected.tags[ref]}, fixtures.json ${fixtures.images[ref].digest}`,
      );
  }

  const { spec, bundle, dataDir, bundleBytes } = await buildAndImport(WORK, "bench-mirror", fixtures.layout, {
    airlock,
    afterBuild: (bytes) => {
      if (bytes < GiB)
        warn(
          `the bundle is ${formatBytes(bytes)}, under 1 GiB: use --size 1.25GiB or more for the issue's figures`,
        );
    },
  });
  const content = {
    bundleBytes,
    blobs: expected.blobs.length,
    blobBytes: expected.blobBytes,
    manifestBytes: expected.manifestBytes,
    manifestCount: expected.manifestCount,
    tags: expected.tags,
  };

  // Node's own start-up and the CLI's module loading: the floor under any airlock command.
  const startups = [];
  for (let i = 0; i < 5; i++) startups.push((await timeCommand(["node", cli, "--version"])).ms);
  const startupMs = median(startups);

  // 1. Full mirror into a fresh registry per run.
  const mirrorOut = (key) => path.join(WORK, `out-${key}`);
  // airlock registry mirror of the set to HOST/PREFIX over plain HTTP, from the bundle file or (`fromStore`)
  // from the data dir it was imported into; its output files go to mirrorOut(`out`).
  const mirrorArgv = (host, out, { fromStore = false } = {}) =>
    airlock(
      ...(fromStore ? ["--data-dir", dataDir] : []),
      "registry",
      "mirror",
      ...(fromStore ? ["--from-store"] : ["--bundle", bundle]),
      "--to",
      `${host}/${PREFIX}`,
      "--insecure-http",
      "--output-dir",
      mirrorOut(out),
    );
  const skopeoErrors = (key) => path.join(WORK, `skopeo-${key}.stderr`);
  log(`full mirror: ${IMAGES.length} images into a fresh docker-registry per run`);
  const mirror = await measureGroup(
    await sequentially([
      () =>
        freshRegistryCommand({
          key: "airlock",
          label: "airlock mirror --bundle",
          argv: (host) => mirrorArgv(host, "airlock"),
          check: (stdout) => checkMirrorResult(stdout, "copied", expected),
          expected,
          keep: opts.keep,
        }),
      () =>
        freshRegistryCommand({
          key: "skopeo",
          label: "skopeo copy ×3 (oci-archive:)",
          argv: (host) =>
            skopeoArgv({
              src: `oci-archive:${bundle}:`,
              dest: `docker://${host}/${PREFIX}/`,
              tls: "--dest-tls-verify=false",
              errors: skopeoErrors("mirror"),
            }),
          expected,
          keep: opts.keep,
        }),
      () =>
        freshRegistryCommand({
          key: "airlockStore",
          label: "airlock mirror --from-store",
          argv: (host) => mirrorArgv(host, "airlockStore", { fromStore: true }),
          check: (stdout) => checkMirrorResult(stdout, "copied", expected),
          expected,
          keep: opts.keep,
        }),
      () =>
        freshRegistryCommand({
          key: "skopeoLayout",
          label: "skopeo copy ×3 (oci: layout)",
          argv: (host) =>
            skopeoArgv({
              src: `oci:${fixtures.layout}:`,
              dest: `docker://${host}/${PREFIX}/`,
              tls: "--dest-tls-verify=false",
              errors: skopeoErrors("mirror-layout"),
            }),
          expected,
          keep: opts.keep,
        }),
    ]),
    { runs: opts.runs, log },
  );

  // 2. No-op re-run: one registry, filled once by airlock (untimed).
  const filled = await startDockerRegistry(path.join(WORK, "registry-filled"), {
    dir: WORK,
    name: "docker-registry-filled",
  });
  log(`filled registry: ${filled.url} (pid ${filled.pid})`);
  const sync = await trySkopeoSync(fixtures.layout, filled);
  log(`skopeo sync: ${sync.note}`);
  const started = Date.now();
  checkMirrorResult(
    (await $({ quiet: true })`${mirrorArgv(filled.host, "fill")}`).stdout,
    "copied",
    expected,
  );
  await checkServed(filled, expected);
  log(`filled by airlock mirror --bundle (${formatMs(Date.now() - started)}), checked`);
  log(`no-op re-run: the same commands against the filled registry`);
  const noop = await measureGroup(
    [
      serverCommand({
        key: "airlock",
        label: "airlock mirror --bundle",
        argv: mirrorArgv(filled.host, "noop"),
        server: filled,
        check: (stdout) => checkMirrorResult(stdout, "present", expected),
      }),
      serverCommand({
        key: "airlockStore",
        label: "airlock mirror --from-store",
        argv: mirrorArgv(filled.host, "noop-store", { fromStore: true }),
        server: filled,
        check: (stdout) => checkMirrorResult(stdout, "present", expected),
      }),
      serverCommand({
        key: "skopeo",
        label: "skopeo copy ×3 (oci-archive:)",
        argv: skopeoArgv({
          src: `oci-archive:${bundle}:`,
          dest: `docker://${filled.host}/${PREFIX}/`,
          tls: "--dest-tls-verify=false",
          errors: skopeoErrors("noop"),
        }),
        server: filled,
        check: async () => {
          await checkServed(filled, expected);
        },
      }),
    ],
    { runs: opts.runs, log },
  );

  // 3. bundle build pulling from the filled registry vs. skopeo copy of the same.
  const pullSpec = path.join(WORK, "bench-mirror-pull.yaml");
  await fs.writeFile(pullSpec, registrySpec(filled.host));
  const pull = { measured: false };
  const probeSpec = path.join(WORK, "bench-mirror-pull-probe.yaml");
  await fs.writeFile(probeSpec, registrySpec(filled.host, [IMAGES[0]]));
  const probe = await $({
    quiet: true,
    nothrow: true,
  })`${airlock("bundle", "build", "-f", probeSpec, "-o", path.join(WORK, "probe.tar"))}`;
  await fs.rm(path.join(WORK, "probe.tar"), { force: true });
  if (probe.exitCode !== 0) {
    let said = (probe.stderr.trim() || probe.stdout.trim()).split("\n").slice(0, 3).join(" ");
    try {
      const { error } = JSON.parse(probe.stdout);
      said = error === undefined ? said : `${error.code}: ${error.message}`;
    } catch {
      // not a JSON error
    }
    pull.reason = `airlock bundle build cannot pull docker:// sources from this registry yet (exit ${probe.exitCode}: ${said})`;
    log(`build pull: ${pull.reason}`);
  } else {
    log(`build pull: ${IMAGES.length} images from ${filled.host}/${PREFIX}`);
    const builtBundle = path.join(WORK, "pulled.airlock.tar");
    const layoutBundle = path.join(WORK, "layout.airlock.tar");
    const pulledDir = path.join(WORK, "pulled-skopeo");
    const rm = (target) => fs.rm(target, { recursive: true, force: true });
    try {
      pull.group = await measureGroup(
        [
          serverCommand({
            key: "airlock",
            label: "airlock bundle build (docker://)",
            argv: airlock("bundle", "build", "-f", pullSpec, "-o", builtBundle),
            server: filled,
            prepare: () => rm(builtBundle),
            check: (stdout) => checkBuildResult(stdout, expected),
            cleanup: () => (opts.keep ? undefined : rm(builtBundle)),
          }),
          serverCommand({
            key: "skopeo",
            label: "skopeo copy ×3 (docker:// → oci:)",
            argv: skopeoArgv({
              src: `docker://${filled.host}/${PREFIX}/`,
              dest: `oci:${pulledDir}:`,
              tls: "--src-tls-verify=false",
              errors: skopeoErrors("pull"),
            }),
            server: filled,
            prepare: () => rm(pulledDir),
            check: () => checkPulled(pulledDir, expected.tags),
            cleanup: () => (opts.keep ? undefined : rm(pulledDir)),
          }),
          {
            key: "airlockLayout",
            label: "airlock bundle build (oci: layout)",
            argv: airlock("bundle", "build", "-f", spec, "-o", layoutBundle),
            prepare: () => rm(layoutBundle),
            after: (result) => checkBuildResult(result.stdout, expected),
            cleanup: () => (opts.keep ? undefined : rm(layoutBundle)),
          },
        ],
        { runs: opts.runs, log },
      );
      pull.measured = true;
    } catch (error) {
      pull.reason = `a build-pull run failed: ${error.message.split("\n").slice(0, 3).join(" ")}`;
      log(`build pull: ${pull.reason}`);
    }
  }

  await stopAllServers();
  environment.loadavgAfter = await loadavg();
  environment.pressureAfter = await pressure();
  environment.benchmarksAfter = await otherBenchmarks();
  if (environment.pressureAfter.load[0] > environment.cpus / 2)
    warn(
      `the host was busy at the end (load ${environment.loadavgAfter}; this benchmark's own load is in it)`,
    );
  if (environment.benchmarksAfter.length > 0)
    warn(`other benchmarks were running at the end: ${environment.benchmarksAfter.join("; ")}`);
  const results = { content, mirror, noop, pull, sync, startupMs };
  const { text, targets, info } = report(opts, results, environment);
  console.log(text);
  await writeResults(
    RESULTS,
    { environment, options: opts, targets, information: info },
    {
      content,
      startupMs: Math.round(startupMs),
      skopeoSync: sync,
      mirror,
      noop,
      buildPull: pull.measured ? pull.group : { measured: false, reason: pull.reason },
    },
    { keepWork: opts.keep ? WORK : undefined },
  );
}

await runBenchmark({
  name: "bench/mirror",
  work: WORK,
  tools: ["skopeo", "docker-registry", "sync", "env", "pgrep"],
  options,
  main,
});
