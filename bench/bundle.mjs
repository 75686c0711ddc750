#!/usr/bin/env node
// Benchmark of `airlock bundle build | verify | import` against their peers, side by side, in one run.
//
//   node bench/bundle.mjs [--size 2GiB] [--small 20MiB] [--seed 42] [--runs 3] [--keep] [--clean-fixtures]
//   npm run bench:bundle -- --size 4GiB
//
// On a generated image set of --size and one of --small (scripts/fixtures.mjs, reused when seed and
// size match), it measures:
//   build   airlock bundle build (3 images of 4.5.0 from the OCI layout, unsigned)
//           vs. skopeo copy --all oci:… oci:DIR:… of the same images, then tar -cf of DIR
//   verify  airlock bundle verify X vs. openssl dgst -sha256 X (sha256sum X for information)
//   import  airlock bundle import X into a fresh data dir vs. openssl dgst -sha256 X, measured in the
//           same group (cp X and cp + sync for information)
//   RSS     peak RSS (GNU time %M) of build, verify and import on the big set vs. the small set
// Page cache: each command runs once untimed first, then --runs timed rounds in alternating order;
// before every run the previous output is removed and `sync` flushes dirty pages (untimed). Medians
// are reported. It is a measurement, not a test: it exits 0 when a target is missed, 1 only when a
// command fails. Results go to .bench/bundle-results.json.
import fs from "node:fs/promises";
import path from "node:path";
import { $ } from "zx";
import { generateFixtures } from "../scripts/fixtures.mjs";
import {
  BENCH_DIR,
  IMAGES,
  REPO,
  benchPaths,
  diskBytes,
  formatBytes,
  formatMs,
  formatPressure,
  formatRss,
  hostEnvironment,
  hostLine,
  layoutSpec,
  log,
  measureGroup,
  mibPerSecond,
  parseOptions,
  parseSize,
  pressure,
  ratio,
  renderTable,
  requireGnuTime,
  requireTools,
  sizeLabel,
  snapshotDist,
  syncAll,
  writeResults,
} from "./lib.mjs";

const { work: WORK, results: RESULTS } = benchPaths("bundle");

const TARGETS = {
  build: 1.0, // peer time / airlock time ≥ 1.0
  verify: 1.25, // airlock time / openssl time ≤ 1.25
  import: 1.25, // airlock time / openssl dgst -sha256 time of the same bundle ≤ 1.25 (issue 11)
  rss: 1.2, // RSS(big) / RSS(small) ≤ 1.2
};

const USAGE = `usage: node bench/bundle.mjs [--size 2GiB] [--small 20MiB] [--seed 42] [--runs 3] [--keep] [--clean-fixtures]
  --size            the big generated image set (at least 2 GiB for the issue's figures)
  --small           the small generated image set
  --seed            fixture seed
  --runs            timed runs per command (median reported); each after one untimed warm-up run
  --keep            keep the work files (bundles, copies, data dirs) under .bench/bundle-work
  --clean-fixtures  also remove the generated fixtures (kept by default for reuse across runs)`;

function options() {
  const values = parseOptions(USAGE, {
    size: "2GiB",
    more: {
      small: { type: "string", default: "20MiB" },
      "clean-fixtures": { type: "boolean", default: false },
    },
  });
  return {
    big: parseSize(values.size),
    small: parseSize(values.small),
    seed: values.seed,
    runs: values.runs,
    keep: values.keep,
    cleanFixtures: values["clean-fixtures"],
  };
}

/** Bytes of `file` resident in the page cache (fincore), or undefined when fincore is missing. */
async function residentBytes(file) {
  const result = await $({ quiet: true, nothrow: true })`fincore --bytes --noheadings --output RES ${file}`;
  return result.exitCode === 0 ? Number(result.stdout.trim()) : undefined;
}

/** How much of the given files sits in the page cache, as a sentence. */
async function cacheNote(files, label) {
  let resident = 0;
  let size = 0;
  for (const file of files) {
    const bytes = await residentBytes(file);
    if (bytes === undefined) return "page cache state unknown (fincore missing)";
    resident += bytes;
    // fincore counts whole pages: compare with the page-rounded size.
    size += Math.ceil((await fs.stat(file)).size / 4096) * 4096;
  }
  return `${((100 * resident) / Math.max(size, 1)).toFixed(0)}% of ${label} in page cache`;
}

/** The layout blobs a bundle carries, from its first entry, airlock.json. */
async function bundleBlobs(bundle, layout) {
  const handle = await fs.open(bundle, "r");
  try {
    const header = Buffer.alloc(512);
    await handle.read(header, 0, 512, 0);
    const size = parseInt(header.toString("latin1", 124, 136).replace(/\0.*$/s, "").trim(), 8);
    const body = Buffer.alloc(size);
    await handle.read(body, 0, size, 512);
    const metadata = JSON.parse(body.toString("utf8"));
    return metadata.files
      .filter((file) => file.path.startsWith("blobs/sha256/"))
      .map((file) => path.join(layout, file.path));
  } finally {
    await handle.close();
  }
}

const PEER_BUILD_SCRIPT = `set -e
layout=$1 dir=$2 out=$3
shift 3
for ref in "$@"; do skopeo --insecure-policy copy --quiet --all "oci:$layout:$ref" "oci:$dir:$ref"; done
tar -cf "$out" -C "$dir" .`;

/** Every measurement of one image set. */
async function benchSet(which, bytes, opts, cli) {
  const fixturesDir = path.join(BENCH_DIR, "fixtures", `seed${opts.seed}-${sizeLabel(bytes)}`);
  log(`\n== ${which} set: ${formatBytes(bytes)} (seed ${opts.seed}) ==`);
  const started = Date.now();
  const hadFixtures = await fs
    .readFile(path.join(fixturesDir, "fixtures.json"), "utf8")
    .then((text) => JSON.parse(text))
    .then((summary) => summary.seed === opts.seed && summary.size === bytes)
    .catch(() => false);
  const fixtures = await generateFixtures({ out: fixturesDir, seed: opts.seed, size: bytes });
  log(
    `fixtures ${hadFixtures ? "reused" : `generated in ${formatMs(Date.now() - started)}`}: ${fixturesDir} (${formatBytes(fixtures.totalBlobBytes)} of blobs)`,
  );

  const work = path.join(WORK, which);
  await fs.rm(work, { recursive: true, force: true });
  await fs.mkdir(work, { recursive: true });
  const spec = path.join(work, "bench-bundle.yaml");
  await fs.writeFile(spec, layoutSpec(`bench-${which}`, fixtures.layout));
  const key = path.join(work, "key.pem");
  const pub = path.join(work, "pub.pem");
  const airlock = (...args) => ["node", cli, "--no-progress", ...args];
  await $({ quiet: true })`${airlock("keys", "generate", "--private-key", key, "--public-key", pub)}`;

  const bundle = path.join(work, "airlock.tar");
  const signed = path.join(work, "airlock-signed.tar");
  const peerDir = path.join(work, "skopeo-oci");
  const peerTar = path.join(work, "skopeo.tar");
  const copy = path.join(work, "copy.tar");
  const dataDir = path.join(work, "data");
  const rm =
    (...targets) =>
    () =>
      Promise.all(targets.map((t) => fs.rm(t, { recursive: true, force: true })));
  const result = {
    fixtures: { dir: fixturesDir, totalBlobBytes: fixtures.totalBlobBytes, reused: hadFixtures },
  };

  log(`build (${IMAGES.length} images from oci:${fixtures.layout})`);
  result.build = await measureGroup(
    [
      {
        key: "airlock",
        label: "airlock bundle build",
        argv: airlock("bundle", "build", "-f", spec, "-o", bundle),
        prepare: rm(bundle, `${bundle}.partial`),
      },
      {
        key: "peer",
        label: "skopeo copy --all ×3 + tar -cf",
        argv: [
          "env",
          `TMPDIR=${work}`,
          "sh",
          "-c",
          PEER_BUILD_SCRIPT,
          "sh",
          fixtures.layout,
          peerDir,
          peerTar,
          ...IMAGES,
        ],
        prepare: rm(peerDir, peerTar),
      },
      {
        key: "airlockSigned",
        label: "airlock bundle build --sign-key",
        argv: airlock("bundle", "build", "-f", spec, "-o", signed, "--sign-key", key),
        prepare: rm(signed, `${signed}.partial`),
      },
    ],
    {
      runs: opts.runs,
      log,
      afterWarm: async () =>
        cacheNote(await bundleBlobs(bundle, fixtures.layout), "the bundled layout blobs"),
    },
  );
  result.bundleBytes = (await fs.stat(bundle)).size;
  result.peerTarBytes = (await fs.stat(peerTar)).size;
  await rm(peerDir, peerTar)();
  log(
    `bundle ${formatBytes(result.bundleBytes)} (${result.bundleBytes} bytes); skopeo+tar made ${formatBytes(result.peerTarBytes)}`,
  );

  log("verify");
  result.verify = await measureGroup(
    [
      { key: "airlock", label: "airlock bundle verify", argv: airlock("bundle", "verify", bundle) },
      { key: "peer", label: "openssl dgst -sha256", argv: ["openssl", "dgst", "-sha256", bundle] },
      { key: "sha256sum", label: "sha256sum (information)", argv: ["sha256sum", bundle] },
      {
        key: "airlockSigned",
        label: "airlock bundle verify --key",
        argv: airlock("bundle", "verify", "--key", pub, signed),
      },
    ],
    { runs: opts.runs, log, afterWarm: () => cacheNote([bundle], "airlock.tar") },
  );
  await rm(signed)();

  log("import");
  result.import = await measureGroup(
    [
      {
        key: "airlock",
        label: "airlock bundle import (fresh dir)",
        argv: airlock("--data-dir", dataDir, "bundle", "import", bundle),
        prepare: rm(dataDir),
      },
      { key: "peer", label: "openssl dgst -sha256", argv: ["openssl", "dgst", "-sha256", bundle] },
      { key: "cp", label: "cp (information)", argv: ["cp", bundle, copy], prepare: rm(copy) },
      {
        key: "cpSync",
        label: "cp + sync (information)",
        argv: ["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", bundle, copy],
        prepare: rm(copy),
      },
    ],
    { runs: opts.runs, log, afterWarm: () => cacheNote([bundle], "airlock.tar") },
  );
  result.storeBytes = await diskBytes(path.join(dataDir, "store"));
  if (!opts.keep) {
    await rm(work)();
    await syncAll();
  }
  if (opts.cleanFixtures) await rm(fixturesDir)();
  return result;
}

// Two decimals: every ratio here is read against a target with two.
const twoDecimals = (value) => ratio(value, 2);

function report(opts, sets, environment) {
  const { small, big } = sets;
  const smallName = `small ${sizeLabel(opts.small)}`;
  const bigName = `big ${sizeLabel(opts.big)}`;
  const rows = [];
  const addRows = (step, group, keys) => {
    for (const key of keys) {
      const s = small[group][key];
      const b = big[group][key];
      rows.push([
        step,
        b.label,
        formatMs(s.medianMs),
        formatRss(s.maxRssKiB),
        formatMs(b.medianMs),
        b.ms.map((ms) => formatMs(ms)).join(" / "),
        mibPerSecond(big.bundleBytes, b.medianMs),
        formatRss(b.maxRssKiB),
      ]);
      step = "";
    }
  };
  addRows("build", "build", ["airlock", "peer", "airlockSigned"]);
  addRows("verify", "verify", ["airlock", "peer", "sha256sum", "airlockSigned"]);
  addRows("import", "import", ["airlock", "peer", "cp", "cpSync"]);
  const table = renderTable(
    ["step", "command", `${smallName} median`, "peak RSS", `${bigName} median`, "runs", "MiB/s", "peak RSS"],
    rows,
    ["l", "l", "r", "r", "r", "r", "r", "r"],
  );

  // time of `slower` ÷ time of `faster` in one group of one set.
  const over = (set, group, numerator, denominator) =>
    set[group][numerator].medianMs / set[group][denominator].medianMs;
  const speed = (set, group, peerKey = "peer") => over(set, group, peerKey, "airlock");
  const slow = (set, group) => over(set, group, "airlock", "peer");
  const rss = (group) => big[group].airlock.maxRssKiB / small[group].airlock.maxRssKiB;
  const targets = [
    {
      name: "build: skopeo+tar time ÷ airlock time",
      small: speed(small, "build"),
      big: speed(big, "build"),
      target: `≥ ${TARGETS.build.toFixed(2)}`,
      pass: speed(big, "build") >= TARGETS.build,
    },
    {
      name: "verify: airlock time ÷ openssl time",
      small: slow(small, "verify"),
      big: slow(big, "verify"),
      target: `≤ ${TARGETS.verify.toFixed(2)}`,
      pass: slow(big, "verify") <= TARGETS.verify,
    },
    {
      name: "import: airlock time ÷ openssl time",
      small: slow(small, "import"),
      big: slow(big, "import"),
      target: `≤ ${TARGETS.import.toFixed(2)}`,
      pass: slow(big, "import") <= TARGETS.import,
    },
    ...["build", "verify", "import"].map((group) => ({
      name: `RSS ${group}: big ÷ small (${formatRss(big[group].airlock.maxRssKiB)} ÷ ${formatRss(small[group].airlock.maxRssKiB)})`,
      small: undefined,
      big: rss(group),
      target: `≤ ${TARGETS.rss.toFixed(2)}`,
      pass: rss(group) <= TARGETS.rss,
    })),
  ];
  const info = [
    {
      name: "build signed: skopeo+tar time ÷ airlock --sign-key time",
      small: over(small, "build", "peer", "airlockSigned"),
      big: over(big, "build", "peer", "airlockSigned"),
    },
    {
      name: "verify: sha256sum time ÷ airlock time",
      small: speed(small, "verify", "sha256sum"),
      big: speed(big, "verify", "sha256sum"),
    },
    {
      name: "import: cp time ÷ airlock time",
      small: speed(small, "import", "cp"),
      big: speed(big, "import", "cp"),
    },
    {
      name: "import: (cp + sync) time ÷ airlock time",
      small: speed(small, "import", "cpSync"),
      big: speed(big, "import", "cpSync"),
    },
  ];
  const ratioTable = renderTable(
    ["ratio", smallName, bigName, "target (big set)", "result"],
    [
      ...targets.map((t) => [
        t.name,
        t.small === undefined ? "" : twoDecimals(t.small),
        twoDecimals(t.big),
        t.target,
        t.pass ? "PASS" : "FAIL",
      ]),
      ...info.map((t) => [t.name, twoDecimals(t.small), twoDecimals(t.big), "information", ""]),
    ],
    ["l", "r", "r", "l", "l"],
  );

  const passed = targets.filter((t) => t.pass).length;
  const lines = [
    "",
    `Airlock bundle benchmark — ${environment.date}`,
    hostLine(environment),
    `other load: before: ${formatPressure(environment.pressureBefore)}; after: ${formatPressure(environment.pressureAfter)}`,
    `bundles: ${bigName} set → ${formatBytes(big.bundleBytes)} bundle (${IMAGES.join(", ")}); ${smallName} set → ${formatBytes(small.bundleBytes)} bundle`,
    `cache state: WARM. Every command ran once untimed before its ${opts.runs} timed runs, so inputs are read from the page cache, not`,
    `  the disk. After the warm-up runs on the big set: build ${big.build.afterWarm}; verify ${big.verify.afterWarm};`,
    `  import ${big.import.afterWarm} (${formatBytes(environment.memAvailable)} RAM available at start).`,
    `  Runs alternate order (A,B,…; …,B,A; A,B,…), the previous output is removed and \`sync\` flushes dirty pages before`,
    `  every run (untimed). Medians of ${opts.runs} runs; peak RSS is the largest of the timed runs (GNU time %M).`,
    `  Writes are not flushed after a run: airlock import fsyncs every blob and airlock build fsyncs its output,`,
    `  \`cp\` does neither (\`cp + sync\` shows cp with the same durability). skopeo's oci: writer also fsyncs blobs.`,
    "",
    table,
    "",
    ratioTable,
    "",
    `summary: ${passed}/${targets.length} targets met on the ${bigName} set${
      passed === targets.length
        ? ""
        : ` — FAIL: ${targets
            .filter((t) => !t.pass)
            .map((t) => t.name.split(":")[0])
            .join(", ")}`
    }`,
  ];
  return { text: lines.join("\n"), targets, info };
}

async function main() {
  const opts = options();
  await requireGnuTime();
  await requireTools(["skopeo", "openssl", "sha256sum", "tar", "cp", "sync"]);
  await fs.mkdir(WORK, { recursive: true });
  const environment = { ...(await hostEnvironment()), pressureBefore: await pressure() };
  if (environment.pressureBefore.load[0] > environment.cpus / 2) {
    log(`warning: the host is busy (${formatPressure(environment.pressureBefore)}): timings will be noisy`);
  }
  // Inputs, the bundle, a signed copy, the peer's directory and tar all sit in the page cache at once.
  const footprint = opts.big * 5;
  if (environment.memAvailable < footprint) {
    log(
      `warning: ${formatBytes(environment.memAvailable)} RAM available, the ${formatBytes(opts.big)} set needs about ${formatBytes(footprint)} of page cache to stay warm; timings will include disk reads`,
    );
  }
  const cli = await snapshotDist(WORK, { hint: " (npm run bench:bundle does)" });

  const sets = {};
  sets.small = await benchSet("small", opts.small, opts, cli);
  sets.big = await benchSet("big", opts.big, opts, cli);
  environment.pressureAfter = await pressure();
  if (!opts.keep) await fs.rm(WORK, { recursive: true, force: true });

  const { text, targets, info } = report(opts, sets, environment);
  console.log(text);
  await writeResults(
    RESULTS,
    { environment, options: opts, targets, information: info },
    { sets },
    { keepWork: opts.keep ? WORK : undefined },
  );
  if (!opts.cleanFixtures) {
    console.log(
      `fixtures kept for reuse in ${path.relative(REPO, path.join(BENCH_DIR, "fixtures"))} (--clean-fixtures removes them)`,
    );
  }
}

try {
  await main();
} catch (error) {
  console.error(`bench/bundle: ${error.message}`);
  process.exitCode = 1;
}
