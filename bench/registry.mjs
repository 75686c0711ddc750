#!/usr/bin/env node
// Benchmark of `airlock registry serve` against Debian's docker-registry (CNCF distribution), side by side, in one run.
//
//   node bench/registry.mjs [--size 1.25GiB] [--seed 42] [--runs 3] [--pull-runs 9] [--clients 32] [--keep] [--cpu-prof]
//   npm run bench:registry -- --runs 5
//
// A generated image set (scripts/fixtures.mjs, reused when seed and size match) is built into a bundle
// of the 3 images of 4.5.0 (at least 1 GiB with the default --size), imported into a fresh data dir
// and served by Airlock; the same bundle is pushed into docker-registry by skopeo (oci-archive:,
// --preserve-digests), and both registries are checked to serve the same tags, digests and blobs.
// Every server binds 127.0.0.1 only. It measures:
//   pull      skopeo copy --all --preserve-digests docker://HOST/<ref> oci:DIR:<ref> of the 3 images,
//             from Airlock over plain HTTP, docker-registry over plain HTTP, and (information) both
//             over TLS with one self-signed openssl certificate that skopeo trusts by --src-cert-dir.
//             skopeo, not the server, sets its pace (its CPU time is about its wall time; each server
//             spends a fifth of that), so single runs scatter by ±15 %: the step runs --pull-runs rounds,
//             each server once per round back to back, and its ratio is the median of the rounds' ratios
//   32 pulls  --clients curl processes at once, each downloading every blob of the set over one
//             keep-alive connection (bodies discarded, status and byte count of each checked), from each
//             registry over plain HTTP: aggregate throughput, and each server's peak RSS
//   push      skopeo copy --all --preserve-digests oci-archive:BUNDLE:<ref> docker://HOST/<ref> of the 3 images
//             with --dest-creds, into an EMPTY registry every run: a fresh Airlock data dir (registry serve
//             --insecure-http --auth htpasswd:FILE --push-user bench, nothing imported) and a fresh
//             docker-registry storage root (auth: htpasswd with the same bcrypt file), both plain HTTP.
//             Each server is started before its run and stopped after it (both untimed); after every
//             push the pushed tags' digests and blobs are checked against the fixtures. The untimed
//             warm-up push runs skopeo --debug to count the requests, and each server is then timed on
//             authenticated and unauthenticated GET /v2/ to give the bcrypt cost per request.
//             skopeo unpacks the whole bundle into TMPDIR for every oci-archive: copy; both sides pay it.
// Server peak RSS is the kernel's VmHWM of the server process, reset (clear_refs 5) before every run,
// so it is the peak of that run; server CPU is its user+system time during the run.
// Page cache: both servers' storage is read once before timing, then every command runs once untimed
// (the 32-pull step warms up with 4 clients), then --runs timed rounds in alternating order; `sync`
// before every run (untimed; for push, after the previous store was removed and the server started).
// Medians are reported. It is a measurement, not a test: it exits 0 when a target is missed, 1 only
// when a command fails. Every server it starts is stopped by its PID at the end, also on failure or
// Ctrl-C. Results go to .bench/registry-results.json.
import fs from "node:fs/promises";
import path from "node:path";
import { clearTimeout, setTimeout } from "node:timers";
import { $ } from "zx";
import {
  BENCH_DIR,
  GiB,
  IMAGES,
  REPO,
  atLeast,
  benchPaths,
  blobKey,
  buildAndImport,
  checkPulled,
  cpuSeconds,
  firstLine,
  formatBytes,
  formatMs,
  formatPressure,
  formatRss,
  freePort,
  freshServer,
  hostEnvironment,
  hostLine,
  integerOption,
  log,
  logTail,
  maxOf,
  measureGroup,
  median,
  medianOf,
  mibPerSecond,
  parseOptions,
  parseSize,
  prepareFixtures,
  pressure,
  ratioTable,
  renderTable,
  runBenchmark,
  serverProbe,
  sizeLabel,
  snapshotDist,
  spawnServer,
  startDockerRegistry,
  stepRows,
  stopAllServers,
  targetSummary,
  under,
  waitForRegistry,
  walkRegistry,
  writeResults,
} from "./lib.mjs";

const { work: WORK, results: RESULTS } = benchPaths("registry");
const PROFILE_DIR = path.join(BENCH_DIR, "registry-prof");
const WARM_CLIENTS = 4;

const TARGETS = {
  pull: 1.0, // docker-registry time / airlock time ≥ 1.0
  concurrent: 1.0, // airlock throughput / docker-registry throughput ≥ 1.0
  rssMiB: 200, // airlock peak RSS during the concurrent pulls < 200 MiB
  push: 1.0, // docker-registry time / airlock time ≥ 1.0
};

// The push account: in one htpasswd file (bcrypt, `htpasswd -B`'s default cost) both servers read.
const PUSH_USER = "bench";
const PUSH_PASSWORD = "benchpass";
const PUSH_AUTHORIZATION = `Basic ${Buffer.from(`${PUSH_USER}:${PUSH_PASSWORD}`).toString("base64")}`;
// GET /v2/ requests per server, with and without credentials, to price one bcrypt check.
const AUTH_PROBE_REQUESTS = 200;

const USAGE = `usage: node bench/registry.mjs [--size 1.25GiB] [--seed 42] [--runs 3] [--pull-runs 9] [--clients 32] [--keep] [--cpu-prof]
  --size      the generated image set; the 3 images of 4.5.0 take about 0.9 of it (1.25GiB → a 1.1 GiB bundle)
  --seed      fixture seed
  --runs      timed runs per command (median reported); each after one untimed warm-up run
  --pull-runs timed rounds of the skopeo pull step (its ratio is the median of the rounds' ratios)
  --clients   concurrent clients of the concurrent-pull step
  --keep      keep the work files (bundle, data dirs, docker-registry storage, pulls, last pushes) under .bench/registry-work
  --cpu-prof  run the Airlock HTTP servers (pull, and every push server) under node --cpu-prof
              (profiles in .bench/registry-prof, one per server process; slows them)`;

function options() {
  const values = parseOptions(USAGE, {
    size: "1.25GiB",
    more: {
      clients: { type: "string", default: "32" },
      "pull-runs": { type: "string", default: "9" },
      "cpu-prof": { type: "boolean", default: false },
    },
  });
  const clients = integerOption(values.clients, "--clients");
  return {
    size: parseSize(values.size),
    seed: values.seed,
    runs: values.runs,
    pullRuns: integerOption(values["pull-runs"], "--pull-runs"),
    clients,
    keep: values.keep,
    cpuProf: values["cpu-prof"],
  };
}

// ---------------------------------------------------------------------------------------------------
// Servers: started here, tracked by PID (bench/lib.mjs), always stopped.

/**
 * Flags `registry serve` needs for anonymous pulls: `--anonymous-pull` once the CLI has authentication
 * (issue 4, point 4) and refuses to start without saying who may pull; nothing before that.
 */
async function anonymousPullFlags(cli) {
  const help = (await $({ quiet: true })`node ${cli} registry serve --help`).stdout;
  return help.includes("--anonymous-pull") ? ["--anonymous-pull"] : [];
}

/**
 * `airlock registry serve` on 127.0.0.1 (a free port unless `port` is given); resolves once it printed
 * its URL ({"url": …} with --json). With `htpasswd`: basic auth from that file, PUSH_USER may push, and
 * nobody pulls without credentials; without it: anonymous pulls, no pushes.
 */
async function startAirlock(name, cli, dataDir, { tls, nodeArgs = [], port = 0, htpasswd }) {
  const logFile = path.join(WORK, `${name}.log`);
  const accessFlags =
    htpasswd === undefined
      ? await anonymousPullFlags(cli)
      : ["--auth", `htpasswd:${htpasswd}`, "--push-user", PUSH_USER];
  const server = spawnServer(
    name,
    process.execPath,
    [
      ...nodeArgs,
      cli,
      "--data-dir",
      dataDir,
      "--json",
      "--no-progress",
      "registry",
      "serve",
      "--listen",
      `127.0.0.1:${port}`,
      ...accessFlags,
      ...(tls === undefined ? ["--insecure-http"] : ["--tls-cert", tls.cert, "--tls-key", tls.key]),
    ],
    logFile,
    { stdout: "pipe", cwd: WORK },
  );
  const url = await new Promise((resolve, reject) => {
    let text = "";
    const timer = setTimeout(() => done(new Error(`${name} printed no URL within 30 s`)), 30_000);
    const onExit = () => done(new Error(`${name} exited before printing its URL`));
    function done(error, value) {
      clearTimeout(timer);
      server.child.stdout.off("data", onData);
      server.child.off("exit", onExit);
      if (error === undefined) resolve(value);
      else logTail(logFile).then((tail) => reject(new Error(`${error.message}:\n${text}${tail}`)));
    }
    function onData(chunk) {
      text += chunk;
      try {
        const { url: found } = JSON.parse(text);
        if (typeof found === "string") done(undefined, found);
      } catch {
        // not a whole JSON document yet
      }
    }
    server.child.stdout.setEncoding("utf8").on("data", onData);
    server.child.once("exit", onExit);
  });
  server.child.stdout.resume();
  server.url = url;
  server.host = new URL(url).host;
  if (tls === undefined) {
    await waitForRegistry(server, url, {
      headers: htpasswd === undefined ? {} : { authorization: PUSH_AUTHORIZATION },
    });
  }
  return server;
}

// ---------------------------------------------------------------------------------------------------
// Content: build, import, fill, and check both registries serve the same thing.

async function checkSameContent(airlock, peer, fixtures) {
  for (const ref of IMAGES) {
    const want = fixtures.images[ref].digest;
    for (const [name, seen] of [
      ["airlock", airlock],
      ["docker-registry", peer],
    ]) {
      if (seen.tags[ref] !== want)
        throw new Error(`${name} serves ${ref} as ${seen.tags[ref]}, the fixtures have ${want}`);
    }
  }
  if (blobKey(airlock) !== blobKey(peer))
    throw new Error("airlock and docker-registry serve different blob sets");
}

/** Reads every file under `dir` once, so the timed runs find it in the page cache. */
async function warmPageCache(dir) {
  await $({ quiet: true })`find ${dir} -type f -exec cat {} + > /dev/null`;
}

/** Share of the files under `dir` resident in the page cache (fincore), as a sentence. */
async function cacheNote(dir, label) {
  const files = (await $({ quiet: true })`find ${dir} -type f -size +64k`).stdout
    .trim()
    .split("\n")
    .filter(Boolean);
  if (files.length === 0) return `${label}: no files`;
  const result = await $({
    quiet: true,
    nothrow: true,
  })`fincore --bytes --noheadings --output RES,SIZE ${files}`;
  if (result.exitCode !== 0) return `${label}: page cache state unknown (fincore missing)`;
  let resident = 0;
  let size = 0;
  for (const line of result.stdout.trim().split("\n")) {
    const [res, total] = line.trim().split(/\s+/).map(Number);
    resident += res;
    size += Math.ceil(total / 4096) * 4096;
  }
  return `${((100 * resident) / Math.max(size, 1)).toFixed(0)}% of ${label} in page cache`;
}

// ---------------------------------------------------------------------------------------------------
// Measurements.

const PULL_SCRIPT = `set -e
host=$1 dir=$2 tls=$3
shift 3
for ref in "$@"; do skopeo --insecure-policy copy --quiet --all --preserve-digests "$tls" "docker://$host/$ref" "oci:$dir:$ref"; done`;

// n curl processes at once, each fetching every URL in turn over one keep-alive connection; one line per body.
const CLIENTS_SCRIPT = `n=$1
shift
i=0
while [ "$i" -lt "$n" ]; do
  curl -sS --http1.1 -w '%{http_code} %{size_download} %{url_effective}\\n' "$@" &
  i=$((i + 1))
done
wait`;

/** The fixtures' digest of each of IMAGES. */
const fixtureTags = (fixtures) => Object.fromEntries(IMAGES.map((ref) => [ref, fixtures.images[ref].digest]));

async function benchPull(targets, opts, fixtures) {
  const rm = (dir) => fs.rm(dir, { recursive: true, force: true });
  return measureGroup(
    targets.map(({ key, label, server, tlsFlag }) => {
      const dir = path.join(WORK, `pull-${key}`);
      const probe = serverProbe(() => server);
      return {
        key,
        label,
        argv: ["sh", "-c", PULL_SCRIPT, "sh", server.host, dir, tlsFlag, ...IMAGES],
        prepare: async () => {
          await rm(dir);
          await probe.start();
        },
        after: async () => {
          const extra = await probe.finish();
          await checkPulled(dir, fixtureTags(fixtures));
          return extra;
        },
        cleanup: () => rm(dir),
      };
    }),
    { runs: opts.pullRuns, log },
  );
}

/**
 * The median over rounds of `a`'s time ÷ `b`'s time in the same round: measureGroup runs every command
 * once per round, so the i-th samples of two commands ran back to back and share the machine's state.
 */
function pairedRatio(a, b) {
  return median(a.ms.map((ms, round) => ms / b.ms[round]));
}

function clientArgs(server, blobs) {
  return blobs.flatMap((b) => ["-o", "/dev/null", `${server.url}/v2/${b.repo}/blobs/${b.digest}`]);
}

/** Every client got every blob whole: `clients` lines per URL, each 200 with the blob's size. */
function checkClients(stdout, server, blobs, clients) {
  const want = new Map(blobs.map((b) => [`${server.url}/v2/${b.repo}/blobs/${b.digest}`, b.size]));
  const seen = new Map();
  let bytes = 0;
  for (const line of stdout.trim().split("\n")) {
    const [code, size, url] = line.trim().split(" ");
    if (code !== "200" || Number(size) !== want.get(url)) {
      throw new Error(
        `${server.name}: a client got ${code} with ${size} bytes for ${url} (want 200 with ${want.get(url)})`,
      );
    }
    seen.set(url, (seen.get(url) ?? 0) + 1);
    bytes += Number(size);
  }
  for (const url of want.keys()) {
    if (seen.get(url) !== clients)
      throw new Error(`${server.name}: ${seen.get(url) ?? 0} of ${clients} clients got ${url}`);
  }
  return bytes;
}

async function benchConcurrent(targets, opts, content) {
  const warmClients = Math.min(WARM_CLIENTS, opts.clients);
  return measureGroup(
    targets.map(({ key, label, server }) => {
      const args = clientArgs(server, content.blobs);
      const probe = serverProbe(() => server);
      return {
        key,
        label,
        argv: ["sh", "-c", CLIENTS_SCRIPT, "sh", String(opts.clients), ...args],
        warmArgv: ["sh", "-c", CLIENTS_SCRIPT, "sh", String(warmClients), ...args],
        prepare: () => probe.start(),
        after: async (result, { timed }) => {
          const extra = await probe.finish();
          const bytes = checkClients(
            result.stdout,
            server,
            content.blobs,
            timed ? opts.clients : warmClients,
          );
          return { ...extra, bytes };
        },
      };
    }),
    { runs: opts.runs, log },
  );
}

// skopeo copy of every ref from the bundle into one registry, with the push account; skopeo's stderr (all
// of it with --debug) goes to a file, shown when a copy fails. TMPDIR is where skopeo unpacks the archive.
const PUSH_SCRIPT = `set -e
host=$1 creds=$2 archive=$3 errors=$4 debug=$5
shift 5
for ref in "$@"; do
  skopeo $debug --insecure-policy copy --quiet --all --preserve-digests --dest-tls-verify=false \\
    --dest-creds "$creds" "oci-archive:$archive:$ref" "docker://$host/$ref" 2>>"$errors" ||
    { tail -n 20 "$errors" >&2; exit 1; }
done`;

/** What a push left in `server`: the tags at the fixtures' digests, and the blob set both registries served. */
async function checkPushed(server, fixtures, content) {
  const walked = await walkRegistry(server.url, IMAGES, { headers: { authorization: PUSH_AUTHORIZATION } });
  for (const ref of IMAGES) {
    const want = fixtures.images[ref].digest;
    if (walked.tags[ref] !== want)
      throw new Error(`${server.name}: pushed ${ref} is ${walked.tags[ref]}, the fixtures have ${want}`);
  }
  if (blobKey(walked) !== blobKey(content))
    throw new Error(`${server.name}: the pushed blobs differ from the set both registries served`);
}

/**
 * Requests skopeo sent to `host`, from its --debug log (a line `msg="METHOD http://host/…"` each), and
 * how many of them were the `GET /v2/` pings it sends without credentials (one per copy).
 */
async function countRequests(file, host) {
  const text = await fs.readFile(file, "utf8");
  let requests = 0;
  let pings = 0;
  for (const match of text.matchAll(/msg="([A-Z]+) (http:\/\/[^\s"]+)/g)) {
    const url = new URL(match[2]);
    if (url.host !== host) continue;
    requests++;
    if (match[1] === "GET" && url.pathname === "/v2/") pings++;
  }
  if (requests === 0) throw new Error(`no request to ${host} in skopeo's --debug log ${file}`);
  return { requests, authenticated: requests - pings };
}

/**
 * The server CPU of `n` GET /v2/ on one keep-alive connection with the push account's credentials and
 * of `n` without (answered 401 before any password check): their difference per request is what one
 * bcrypt check costs that server.
 */
async function authCost(server, n = AUTH_PROBE_REQUESTS) {
  const urls = Array.from({ length: n }, () => ["-o", "/dev/null", `${server.url}/v2/`]).flat();
  const cpuOf = async (credentials, wantCode) => {
    const before = await cpuSeconds(server.pid);
    const result = await $({ quiet: true })`curl -sS --http1.1 -w ${"%{http_code}\n"} ${credentials} ${urls}`;
    const after = await cpuSeconds(server.pid);
    const codes = result.stdout.trim().split("\n");
    if (codes.length !== n || codes.some((code) => code !== wantCode))
      throw new Error(
        `${server.name}: GET /v2/ ×${n} answered ${[...new Set(codes)].join(", ")}, want ${wantCode}`,
      );
    return after.user + after.system - (before.user + before.system);
  };
  const authenticatedCpuS = await cpuOf(["-u", `${PUSH_USER}:${PUSH_PASSWORD}`], "200");
  const anonymousCpuS = await cpuOf([], "401");
  return {
    requests: n,
    authenticatedCpuS: Number(authenticatedCpuS.toFixed(2)),
    anonymousCpuS: Number(anonymousCpuS.toFixed(2)),
    bcryptMsPerRequest: Number(((1000 * Math.max(0, authenticatedCpuS - anonymousCpuS)) / n).toFixed(3)),
  };
}

/**
 * Push into an empty registry every run: before each run (untimed) the previous server is gone, its
 * storage removed and a new server started on the same port (so the timed command stays the same); after
 * it (untimed) the pushed content is checked and the server stopped. The warm-up push also counts
 * skopeo's requests and prices a password check on that server (`warm` of the result).
 */
async function benchPush(targets, opts, { fixtures, content, bundle }) {
  const warm = {};
  const tmp = path.join(WORK, "tmp");
  const commands = [];
  for (const { key, label, storage, start } of targets) {
    const port = await freePort();
    const host = `127.0.0.1:${port}`;
    const errors = path.join(WORK, `push-${key}.stderr`);
    const argv = (debug) => [
      "env",
      `TMPDIR=${tmp}`,
      "sh",
      "-c",
      PUSH_SCRIPT,
      "sh",
      host,
      `${PUSH_USER}:${PUSH_PASSWORD}`,
      bundle,
      errors,
      debug,
      ...IMAGES,
    ];
    const fresh = freshServer(storage, (dir) => start(dir, port));
    const probe = serverProbe(() => fresh.current);
    commands.push({
      key,
      label,
      argv: argv(""),
      warmArgv: argv("--debug"),
      prepare: async () => {
        await fs.writeFile(errors, "");
        await fresh.restart();
        await probe.start();
      },
      after: async (_result, { timed }) => {
        const extra = await probe.finish();
        if (!timed)
          warm[key] = { ...(await countRequests(errors, host)), auth: await authCost(fresh.current) };
        await checkPushed(fresh.current, fixtures, content);
        await fresh.stop();
        return extra;
      },
      cleanup: () => fresh.cleanup(opts.keep),
    });
  }
  return { ...(await measureGroup(commands, { runs: opts.runs, log })), warm };
}

// ---------------------------------------------------------------------------------------------------
// Report.

function report(opts, results, environment) {
  const { content, pull, concurrent, push } = results;
  const setBytes = content.blobBytes + content.manifestBytes;
  const concurrentBytes = content.blobBytes * opts.clients;
  const rows = [];
  const addRows = (step, group, keys, bytes) =>
    rows.push(
      ...stepRows(step, group, keys, (m) => [
        mibPerSecond(bytes, m.medianMs),
        formatRss(maxOf(m, "serverPeakRssKiB")),
        `${medianOf(m, "serverCpuS").toFixed(1)} s (${medianOf(m, "serverUserS").toFixed(1)} + ${medianOf(m, "serverSystemS").toFixed(1)})`,
      ]),
    );
  addRows("pull: skopeo copy --all ×3", pull, ["airlock", "peer", "airlockTls", "peerTls"], setBytes);
  addRows(`${opts.clients} concurrent pulls (curl)`, concurrent, ["airlock", "peer"], concurrentBytes);
  addRows("push: skopeo copy --all ×3", push, ["airlock", "peer"], setBytes);
  const table = renderTable(
    ["step", "server", "median", "runs", "MiB/s", "server peak RSS", "server CPU (user + sys)"],
    rows,
    ["l", "l", "r", "r", "r", "r", "r"],
  );

  const pullRatio = pairedRatio(pull.peer, pull.airlock);
  const concurrentRatio = concurrent.peer.medianMs / concurrent.airlock.medianMs;
  const pushRatio = push.peer.medianMs / push.airlock.medianMs;
  const airlockRssKiB = maxOf(concurrent.airlock, "serverPeakRssKiB");
  const targets = [
    atLeast(
      `pull: docker-registry time ÷ airlock time (HTTP), median of ${opts.pullRuns} rounds`,
      pullRatio,
      TARGETS.pull,
    ),
    atLeast(
      `${opts.clients} pulls: airlock throughput ÷ docker-registry throughput`,
      concurrentRatio,
      TARGETS.concurrent,
    ),
    under(
      `${opts.clients} pulls: airlock server peak RSS (largest of ${opts.runs} runs)`,
      airlockRssKiB / 1024,
      TARGETS.rssMiB,
      { shown: formatRss(airlockRssKiB), limit: `${TARGETS.rssMiB} MiB` },
    ),
    atLeast(
      "push: docker-registry time ÷ airlock time (HTTP, into an empty registry)",
      pushRatio,
      TARGETS.push,
    ),
  ];
  const cpuPerGiB = (m, bytes) => (medianOf(m, "serverCpuS") / (bytes / GiB)).toFixed(2);
  const roundRatios = pull.airlock.ms.map((ms, round) => pull.peer.ms[round] / ms).sort((x, y) => x - y);
  const info = [
    {
      name: "pull: the rounds' ratios, lowest to highest",
      shown: roundRatios.map((r) => r.toFixed(2)).join(" "),
    },
    {
      name: "pull: docker-registry median time ÷ airlock median time",
      value: pull.peer.medianMs / pull.airlock.medianMs,
    },
    {
      name: "pull: skopeo CPU s (median) from airlock / docker-registry",
      shown: `${pull.airlock.medianCpuS.toFixed(2)} / ${pull.peer.medianCpuS.toFixed(2)}`,
    },
    {
      name: "pull over TLS: docker-registry time ÷ airlock time (both HTTPS, same certificate)",
      value: pairedRatio(pull.peerTls, pull.airlockTls),
    },
    {
      name: "pull: airlock HTTPS time ÷ airlock HTTP time",
      value: pairedRatio(pull.airlockTls, pull.airlock),
    },
    {
      name: `${opts.clients} pulls: docker-registry server peak RSS`,
      shown: formatRss(maxOf(concurrent.peer, "serverPeakRssKiB")),
    },
    {
      name: `${opts.clients} pulls: server CPU s per GiB served, airlock / docker-registry`,
      shown: `${cpuPerGiB(concurrent.airlock, concurrentBytes)} / ${cpuPerGiB(concurrent.peer, concurrentBytes)}`,
    },
    {
      name: "pull: server peak RSS, airlock HTTP / HTTPS, docker-registry HTTP / HTTPS",
      shown: ["airlock", "airlockTls", "peer", "peerTls"]
        .map((k) => formatRss(maxOf(pull[k], "serverPeakRssKiB")))
        .join(" / "),
    },
    {
      name: "push: server peak RSS, airlock / docker-registry",
      shown: ["airlock", "peer"].map((k) => formatRss(maxOf(push[k], "serverPeakRssKiB"))).join(" / "),
    },
    {
      name: "push: server CPU s per GiB pushed, airlock / docker-registry",
      shown: `${cpuPerGiB(push.airlock, setBytes)} / ${cpuPerGiB(push.peer, setBytes)}`,
    },
  ];
  // What the password checks cost each server in a push: docker-registry runs bcrypt on every authenticated request, Airlock once a minute per user and password.
  const bcrypt = Object.fromEntries(
    ["airlock", "peer"].map((key) => {
      const { authenticated, requests, auth } = push.warm[key];
      const cpuS = (authenticated * auth.bcryptMsPerRequest) / 1000;
      const serverCpuS = medianOf(push[key], "serverCpuS");
      return [
        key,
        {
          requests,
          authenticated,
          msPerRequest: auth.bcryptMsPerRequest,
          cpuS: Number(cpuS.toFixed(3)),
          shareOfServerCpu: serverCpuS > 0 ? Number((cpuS / serverCpuS).toFixed(4)) : undefined,
          shareOfWallTime: Number((cpuS / (push[key].medianMs / 1000)).toFixed(4)),
        },
      ];
    }),
  );
  const pct = (share) => (share === undefined ? "n/a" : `${(100 * share).toFixed(1)}%`);
  const bcryptLines = ["airlock", "peer"].map((key) => {
    const b = bcrypt[key];
    const dominates = (b.shareOfServerCpu ?? 0) >= 0.5 || b.shareOfWallTime >= 0.5;
    return `  ${key === "airlock" ? "airlock        " : "docker-registry"}: ${b.authenticated} authenticated requests (of ${b.requests}) × ${b.msPerRequest.toFixed(2)} ms CPU = ${b.cpuS.toFixed(2)} s: ${pct(b.shareOfServerCpu)} of the server's CPU in a push, ${pct(b.shareOfWallTime)} of its wall time${dominates ? " — bcrypt DOMINATES this server's push" : ""}`;
  });
  info.push({
    name: "push: bcrypt CPU share of server CPU, airlock / docker-registry",
    shown: `${pct(bcrypt.airlock.shareOfServerCpu)} / ${pct(bcrypt.peer.shareOfServerCpu)}`,
  });
  const measuredGroups = [pull, concurrent, push].flatMap((group) =>
    Object.values(group).filter((m) => Array.isArray(m?.extra)),
  );
  const scopes = new Set(measuredGroups.flatMap((m) => m.extra.map((e) => e.peakScope)));
  const lines = [
    "",
    `Airlock registry benchmark — ${environment.date}`,
    hostLine(environment),
    `peers: ${environment.versions.dockerRegistry}; ${environment.versions.skopeo}; ${environment.versions.curl}`,
    `other load: before: ${formatPressure(environment.pressureBefore)}; after: ${formatPressure(environment.pressureAfter)}`,
    `content: ${IMAGES.join(", ")} from a ${sizeLabel(opts.size)} fixture set (seed ${opts.seed}) → ${formatBytes(content.bundleBytes)} bundle;`,
    `  both registries serve the same ${content.blobs.length} blobs (${formatBytes(content.blobBytes)}) + ${content.manifestCount} manifests, checked before timing.`,
    `  Airlock: registry serve --insecure-http, and --tls-cert/--tls-key (openssl self-signed P-256, skopeo --src-cert-dir);`,
    `  docker-registry: filesystem storage, inmemory blob descriptor cache, access log off; plain HTTP, and http.tls with`,
    `  the same certificate. All on 127.0.0.1.`,
    `  push: into an empty registry each run (fresh Airlock data dir, nothing imported / fresh docker-registry root),`,
    `  server started before and stopped after each run (untimed); both with basic auth from one bcrypt htpasswd file`,
    `  (Airlock --auth htpasswd: --push-user ${PUSH_USER}; docker-registry auth: htpasswd:), skopeo --dest-creds; pushed tags and`,
    `  blobs checked against the fixtures after every push. skopeo unpacks the bundle into TMPDIR for each of the`,
    `  ${IMAGES.length} copies (oci-archive:), inside the timed push on both sides.`,
    `cache state: WARM (${content.cacheNote}). Every command ran once untimed before its ${opts.runs} timed runs (pull: ${opts.pullRuns})`,
    `  (the ${opts.clients}-pull step warms up with ${Math.min(WARM_CLIENTS, opts.clients)} clients); runs alternate order, \`sync\` before each (untimed). Medians;`,
    `  pull and push MiB/s count the ${formatBytes(setBytes)} set once, ${opts.clients}-pull MiB/s counts ${opts.clients} × ${formatBytes(content.blobBytes)} of blobs.`,
    `  Server peak RSS: VmHWM of the server process, ${scopes.has("lifetime") ? "NOT reset (clear_refs refused): lifetime peak" : "reset before every run: the peak of that run"}; server CPU: user + system s of the server process in the run (median).`,
    ...(opts.cpuProf
      ? [
          `  NOTE: the Airlock HTTP servers (pull, push) ran under --cpu-prof (profiles in ${path.relative(REPO, PROFILE_DIR)}): their timings are slowed.`,
        ]
      : []),
    "",
    table,
    "",
    ratioTable(targets, info),
    "",
    `push authentication (docker-registry: bcrypt on every authenticated request, Airlock: once a minute per user and password; requests counted by skopeo --debug in the warm-up push,`,
    `  one check priced by the server's CPU over ${push.warm.airlock.auth.requests} GET /v2/ with credentials minus ${push.warm.airlock.auth.requests} without):`,
    ...bcryptLines,
    "",
    `summary: ${targetSummary(targets, "measured targets")}`,
  ];
  return { text: lines.join("\n"), targets, info, bcrypt };
}

// ---------------------------------------------------------------------------------------------------

async function versions() {
  return {
    dockerRegistry: await firstLine(["docker-registry", "--version"]),
    skopeo: await firstLine(["skopeo", "--version"]),
    curl: (await firstLine(["curl", "--version"])).split(" ").slice(0, 2).join(" "),
    openssl: await firstLine(["openssl", "version"]),
  };
}

async function selfSignedCert(dir) {
  const cert = path.join(dir, "server.crt");
  const key = path.join(dir, "server.key");
  const caDir = path.join(dir, "ca");
  await $({
    quiet: true,
  })`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout ${key} -out ${cert}`;
  await fs.mkdir(caDir, { recursive: true });
  // skopeo's --src-cert-dir: *.crt files are trusted CAs (and *.cert/*.key a client pair): only ca.crt here.
  await fs.copyFile(cert, path.join(caDir, "ca.crt"));
  return { cert, key, caDir };
}

async function main(opts) {
  const environment = {
    ...(await hostEnvironment()),
    versions: await versions(),
    pressureBefore: await pressure(),
  };
  if (environment.pressureBefore.load[0] > environment.cpus / 2) {
    log(`warning: the host is busy (${formatPressure(environment.pressureBefore)}): timings will be noisy`);
  }
  // The fixtures, the bundle, both registries' storage and a pull output sit in the page cache at once.
  if (environment.memAvailable < opts.size * 5) {
    log(
      `warning: ${formatBytes(environment.memAvailable)} RAM available, about ${formatBytes(opts.size * 5)} of page cache keeps everything warm; timings will include disk reads`,
    );
  }
  const cli = await snapshotDist(WORK);
  const fixtures = await prepareFixtures(opts);
  const { bundle, dataDir, bundleBytes } = await buildAndImport(WORK, "bench-registry", fixtures.layout, {
    airlock: (...args) => ["node", cli, "--no-progress", ...args],
    afterBuild: (bytes) => {
      if (bytes < GiB)
        log(`warning: the bundle is under 1 GiB: use --size 1.25GiB or more for the issue's figures`);
    },
  });
  const peerRoot = path.join(WORK, "docker-registry");

  const tls = await selfSignedCert(WORK);
  const profileArgs = opts.cpuProf ? ["--cpu-prof", `--cpu-prof-dir=${PROFILE_DIR}`] : [];
  if (opts.cpuProf) await fs.mkdir(PROFILE_DIR, { recursive: true });
  const airlockHttp = await startAirlock("airlock-http", cli, dataDir, { nodeArgs: profileArgs });
  const airlockTls = await startAirlock("airlock-https", cli, dataDir, { tls });
  const peer = await startDockerRegistry(peerRoot, { dir: WORK });
  const peerTls = await startDockerRegistry(peerRoot, { dir: WORK, name: "docker-registry-https", tls });
  for (const server of [airlockHttp, airlockTls, peer, peerTls])
    log(`${server.name}: ${server.url} (pid ${server.pid})`);

  const started = Date.now();
  for (const ref of IMAGES) {
    await $({
      quiet: true,
      env: { ...process.env, TMPDIR: path.join(WORK, "tmp") },
    })`skopeo --insecure-policy copy --quiet --all --preserve-digests --dest-tls-verify=false ${`oci-archive:${bundle}:${ref}`} ${`docker://${peer.host}/${ref}`}`;
  }
  log(`docker-registry filled from the bundle by skopeo (${formatMs(Date.now() - started)})`);

  const airlockContent = await walkRegistry(airlockHttp.url, IMAGES);
  const peerContent = await walkRegistry(peer.url, IMAGES);
  await checkSameContent(airlockContent, peerContent, fixtures);
  const content = {
    bundleBytes,
    blobs: airlockContent.blobs,
    blobBytes: airlockContent.blobBytes,
    manifestBytes: airlockContent.manifestBytes,
    manifestCount: airlockContent.manifestCount,
    tags: airlockContent.tags,
  };
  await warmPageCache(path.join(dataDir, "store"));
  await warmPageCache(peerRoot);
  content.cacheNote = `${await cacheNote(path.join(dataDir, "store"), "Airlock's store")}, ${await cacheNote(peerRoot, "docker-registry's storage")}`;
  log(
    `same content on both: ${content.blobs.length} blobs, ${formatBytes(content.blobBytes)}; ${content.cacheNote}`,
  );

  log(`pull: skopeo copy --all --preserve-digests of ${IMAGES.length} images`);
  const pull = await benchPull(
    [
      { key: "airlock", label: "airlock (HTTP)", server: airlockHttp, tlsFlag: "--src-tls-verify=false" },
      { key: "peer", label: "docker-registry (HTTP)", server: peer, tlsFlag: "--src-tls-verify=false" },
      {
        key: "airlockTls",
        label: "airlock (HTTPS)",
        server: airlockTls,
        tlsFlag: `--src-cert-dir=${tls.caDir}`,
      },
      {
        key: "peerTls",
        label: "docker-registry (HTTPS)",
        server: peerTls,
        tlsFlag: `--src-cert-dir=${tls.caDir}`,
      },
    ],
    opts,
    fixtures,
  );

  log(`${opts.clients} concurrent pulls: ${opts.clients} curl clients × ${content.blobs.length} blobs`);
  const concurrent = await benchConcurrent(
    [
      { key: "airlock", label: "airlock (HTTP)", server: airlockHttp },
      { key: "peer", label: "docker-registry (HTTP)", server: peer },
    ],
    opts,
    content,
  );
  // The pull servers are done: only the push servers (one per run) run from here on.
  await stopAllServers();

  const htpasswd = path.join(WORK, "htpasswd");
  await $({ quiet: true })`htpasswd -Bbc ${htpasswd} ${PUSH_USER} ${PUSH_PASSWORD}`;
  log(
    `push: skopeo copy --all --preserve-digests oci-archive:… of ${IMAGES.length} images into an empty registry per run (credentials, bcrypt htpasswd)`,
  );
  const push = await benchPush(
    [
      {
        key: "airlock",
        label: "airlock (HTTP)",
        storage: path.join(WORK, "push-airlock"),
        start: (dir, port) =>
          startAirlock("airlock-push", cli, dir, { port, htpasswd, nodeArgs: profileArgs }),
      },
      {
        key: "peer",
        label: "docker-registry (HTTP)",
        storage: path.join(WORK, "push-docker-registry"),
        start: (dir, port) =>
          startDockerRegistry(dir, {
            dir: WORK,
            name: "docker-registry-push",
            port,
            htpasswd,
            headers: { authorization: PUSH_AUTHORIZATION },
          }),
      },
    ],
    opts,
    { fixtures, content, bundle },
  );

  await stopAllServers();
  environment.pressureAfter = await pressure();
  const results = { content, pull, concurrent, push };
  const { text, targets, info, bcrypt } = report(opts, results, environment);
  console.log(text);
  await writeResults(
    RESULTS,
    { environment, options: opts, targets, information: info },
    { pushAuthentication: bcrypt, content, pull, concurrent, push },
    {
      keepWork: opts.keep ? WORK : undefined,
      more: opts.cpuProf
        ? `; CPU profiles of the Airlock HTTP servers in ${path.relative(REPO, PROFILE_DIR)}`
        : "",
    },
  );
}

await runBenchmark({
  name: "bench/registry",
  work: WORK,
  tools: ["skopeo", "docker-registry", "openssl", "curl", "find", "sync", "htpasswd", "env"],
  options,
  main,
});
