#!/usr/bin/env node
// The main job on the built-in sample, as an operator would run it: the vendor builds a signed
// bundle; the site verifies, inspects and imports it, serves it from Airlock's registry over TLS
// with the site CA, mirrors it into the site's own registry; a delta carries the next version;
// then the operator installs it onto a real node (the containerd node of the test double
// MemoryCluster: real pulls, real brokers), and upgrades it: a scheduled upgrade the site daemon
// carries out, then a broken one rolled back (scripts/demo-node.mjs).
import { $, chalk } from "zx";
import { spawn } from "node:child_process";
import { copyFile, mkdir, mkdtemp, rm, stat, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { dirname, join, resolve } from "node:path";
import { dockerRegistryConfig } from "./docker-registry.mjs";
import { generateFixtures } from "./fixtures.mjs";
import { demoInstallOnNode, demoUpgrades } from "./demo-node.mjs";
import { useStandinK3s } from "./node-site.mjs";

const root = resolve(import.meta.dirname, "..");
const cli = join(root, "dist/installer/cli/main.js");
const work = await mkdtemp(join(tmpdir(), "airlock-demo-"));
const keep = process.argv.includes("--keep");
$.verbose = false;

function step(title) {
  console.log(`\n${chalk.bold.cyan("==>")} ${chalk.bold(title)}`);
}

async function airlock(...args) {
  return runAirlock(process.env, args);
}

/**
 * Runs the built CLI and prints what it printed on stdout (and stderr, where its step lines go, with
 * `stderr`); fails unless it exits with `exitCode`.
 */
async function runAirlock(env, args, { exitCode = 0, stderr = false } = {}) {
  console.log(chalk.dim(`$ airlock ${args.join(" ")}`));
  const result = await $({ nothrow: true, quiet: true, env })`node ${cli} --no-progress ${args}`;
  if (stderr && result.stderr.trim() !== "") console.log(result.stderr.trimEnd().replace(/^/gm, "  "));
  if (result.stdout.trim() !== "") console.log(result.stdout.trimEnd().replace(/^/gm, "  "));
  if (result.exitCode !== exitCode) {
    if (!stderr) process.stderr.write(result.stderr);
    throw new Error(`airlock ${args.join(" ")} exited ${result.exitCode}, not ${exitCode}`);
  }
  return result.stdout;
}

const { fetch } = globalThis;

/** Processes this demo started; each is stopped by its PID at the end. */
const children = [];
/** What else it started (the cluster, the stand-in's services): closed at the end. */
const closers = [];

/** Starts a server in the background and resolves with the first line it prints on stdout. */
function background(name, command, args) {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let err = "";
  child.stderr.setEncoding("utf8").on("data", (chunk) => (err += chunk));
  return new Promise((resolve, reject) => {
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (chunk) => {
      out += chunk;
      try {
        JSON.parse(out);
        resolve({ child, firstLine: out });
      } catch {
        // not the whole document yet
      }
    });
    child.once("exit", (code) => reject(new Error(`${name} exited (${code}): ${err}`)));
  });
}

/** Debian's docker-registry on a free loopback port, plain HTTP; resolves with host:port once it answers. */
async function startDockerRegistry(dir) {
  await mkdir(dir, { recursive: true });
  const port = await new Promise((resolve) => {
    const probe = createServer().listen(0, "127.0.0.1", () => {
      const { port: free } = probe.address();
      probe.close(() => resolve(free));
    });
  });
  const config = join(dir, "config.yml");
  await writeFile(config, dockerRegistryConfig({ storage: join(dir, "storage"), port }));
  const child = spawn("docker-registry", ["serve", config], { stdio: "ignore" });
  children.push(child);
  for (let attempt = 0; attempt < 200; attempt++) {
    const answer = await fetch(`http://127.0.0.1:${port}/v2/`).catch(() => undefined);
    if (answer?.status === 200) return `127.0.0.1:${port}`;
    await sleep(50);
  }
  throw new Error("docker-registry did not start");
}

try {
  step("Generate the sample images (seeded, no network) and the sample bundle.yaml");
  const fixtures = await generateFixtures({ out: join(work, "fixtures"), seed: 42, size: 20 * 1024 * 1024 });
  console.log(
    `  ${Object.keys(fixtures.images).length} images in ${fixtures.layout}, sample spec ${fixtures.sample}`,
  );
  console.log(
    `  ${fixtures.msgbroker.ref} is the real broker: Debian's nats-server ${fixtures.msgbroker.natsServer}`,
  );

  await useStandinK3s(dirname(fixtures.sample));
  console.log(
    "  the sample's bin/k3s is the stand-in k3s (test/helpers/standin/k3s.mjs): no real k3s runs here",
  );

  const bundle45 = join(work, "mgmt-4.5.0.airlock.tar");
  const bundle44 = join(work, "mgmt-4.4.0.airlock.tar");
  const delta = join(work, "mgmt-4.5.0-delta.airlock.tar");
  const key = join(work, "key.pem");
  const pub = join(work, "pub.pem");
  const site = join(work, "site");

  step("Vendor: make a signing key and build the signed 4.5.0 bundle, split for a FAT32 stick");
  await airlock("keys", "generate", "--private-key", key, "--public-key", pub);
  await airlock("bundle", "build", "-f", fixtures.sample, "-o", bundle45, "--sign-key", key);
  await mkdir(join(work, "split"));
  await airlock(
    "bundle",
    "build",
    "-f",
    fixtures.sample,
    "-o",
    join(work, "split", "mgmt-4.5.0.airlock.tar"),
    "--sign-key",
    key,
    "--split-size",
    "8M",
  );

  step("Site: verify the signature and every entry, then see what the bundle holds");
  await airlock("bundle", "verify", "--key", pub, bundle45);
  await airlock("bundle", "verify", "--key", pub, join(work, "split", "mgmt-4.5.0.airlock.tar.001"));
  await airlock("bundle", "inspect", bundle45);
  const check = await $({
    nothrow: true,
  })`sh -c ${`cd ${work} && tar -xf ${bundle45} airlock.json airlock.json.sig && openssl dgst -sha256 -verify ${pub} -signature airlock.json.sig airlock.json`}`;
  console.log(`  openssl agrees: ${check.stdout.trim()}`);

  step("Site: import into the store, check it, and import again (a no-op)");
  await airlock("--data-dir", site, "bundle", "import", "--key", pub, bundle45);
  await airlock("--data-dir", site, "bundle", "import", "--key", pub, bundle45);
  await airlock("--data-dir", site, "store", "fsck");
  const skopeo = await $({
    nothrow: true,
  })`skopeo inspect --format {{.Digest}} ${`oci:${site}/store:hubble/console:4.5.0`}`;
  console.log(
    `  the store is an OCI layout: skopeo reads hubble/console:4.5.0 as ${skopeo.stdout.trim() || skopeo.stderr.trim()}`,
  );

  step("Site: serve the store from Airlock's registry over TLS, with a certificate from the site CA");
  const served = await background("airlock registry serve", process.execPath, [
    cli,
    "--data-dir",
    site,
    "--json",
    "registry",
    "serve",
    "--listen",
    "127.0.0.1:0",
    "--anonymous-pull",
  ]);
  const { url, ca } = JSON.parse(served.firstLine);
  console.log(`  serving at ${url}; clients trust ${ca}`);
  const trust = join(work, "trust");
  await mkdir(trust);
  await copyFile(ca, join(trust, "ca.crt"));
  const pulled = await $({
    nothrow: true,
  })`skopeo inspect --cert-dir ${trust} --format {{.Digest}} ${`docker://${url.replace("https://", "")}/hubble/msgbroker:4.5.0`}`;
  console.log(
    `  skopeo pulls hubble/msgbroker:4.5.0 over TLS: ${pulled.stdout.trim() || pulled.stderr.trim()}`,
  );
  await airlock("--data-dir", site, "pki", "status");

  step("Site: mirror the bundle into the site's own registry (Debian's docker-registry here)");
  const siteRegistry = await startDockerRegistry(join(work, "site-registry"));
  const mirrorArgs = ["registry", "mirror", "--to", `${siteRegistry}/palette`, "--bundle", bundle45];
  await airlock(...mirrorArgs, "--insecure-http", "--key", pub, "--output-dir", join(work, "mirror"));
  console.log(chalk.dim("  and again, as after an interruption: nothing is sent twice"));
  await airlock(...mirrorArgs, "--insecure-http", "--key", pub, "--output-dir", join(work, "mirror"));
  console.log(`  wrote mirror-map.json, registries.yaml and certs.d/ under ${join(work, "mirror")}`);

  step("Next release: a site on 4.4.0 gets a delta bundle carrying only what it lacks");
  const older = join(work, "site-4.4");
  await airlock(
    "bundle",
    "build",
    "-f",
    join(fixtures.sample, "..", "bundle-4.4.0.yaml"),
    "-o",
    bundle44,
    "--sign-key",
    key,
  );
  await airlock("--data-dir", older, "bundle", "import", "--key", pub, bundle44);
  await airlock("--data-dir", older, "bundle", "inventory", "-o", join(work, "inventory.json"));
  await airlock(
    "bundle",
    "build",
    "-f",
    fixtures.sample,
    "-o",
    delta,
    "--sign-key",
    key,
    "--base-inventory",
    join(work, "inventory.json"),
  );
  await airlock("bundle", "diff", bundle44, bundle45);
  await airlock("--data-dir", older, "bundle", "import", "--key", pub, delta);
  await airlock("--data-dir", older, "bundle", "ls");

  const nodeSite = await demoInstallOnNode({
    step,
    log: (line) => console.log(line),
    airlock: runAirlock,
    load: (module) => import(join(root, "dist", module)),
    work: join(work, "node-site"),
    bundle: bundle45,
    pub,
  });
  closers.push(() => nodeSite.close());
  await demoUpgrades({
    step,
    log: (line) => console.log(line),
    airlock: runAirlock,
    site: nodeSite,
    sampleSpec: fixtures.sample,
    layout: fixtures.layout,
    key,
  });

  const [full, small] = [await stat(bundle45), await stat(delta)];
  step("Done");
  console.log(
    `  full bundle ${(full.size / 2 ** 20).toFixed(1)} MiB, delta ${(small.size / 2 ** 20).toFixed(1)} MiB; stores in ${site} and ${older}`,
  );
} finally {
  for (const close of closers.reverse()) await close();
  for (const child of children) child.kill("SIGTERM");
  await Promise.all(
    children.map(
      (child) =>
        new Promise((resolve) => (child.exitCode === null ? child.once("exit", resolve) : resolve())),
    ),
  );
  if (keep) console.log(chalk.dim(`\n(kept ${work})`));
  else await rm(work, { recursive: true, force: true });
}
