// What the containerd-node benchmarks (bench/node.mjs, bench/upgrade.mjs) set up before they time
// anything: a snapshot of dist/, msgbroker images built by scripts/msgbroker-image.mjs and pushed by
// skopeo into Airlock's registry (TLS, a self-signed certificate, a store of its own), the site PKI's
// broker certificates, and a containerd of the run's own (root, state and socket in `work`). `close`
// stops what it started, by PID, unmounts what was left under `work` and removes it.
import fs from "node:fs/promises";
import path from "node:path";
import { setTimeout } from "node:timers";
import { $ } from "zx";
import { BENCH_DIR, snapshotDist } from "./lib.mjs";
import { buildMsgbrokerImage } from "../scripts/msgbroker-image.mjs";

/** The site registry name the rendered plane's images carry; registries.yaml points it at Airlock's. */
export const SITE_REGISTRY = "registry.airlock.local:5443";

/**
 * `images`: each `{ tag, created? }` (a different `created` makes a different image config, so a
 * different digest over the same layer). Returns `load(module)` (from the dist/ snapshot), the
 * containerd socket, registriesYaml for a node, the broker certificates as render() takes them, the
 * site PKI's directory, BundleMetadata image entries by tag, and `close`.
 */
export async function startNodeBench(work, images) {
  const closers = [];
  const close = async () => {
    for (const closer of closers.reverse()) await closer();
    const mounts = (await fs.readFile("/proc/self/mountinfo", "utf8"))
      .split("\n")
      .map((line) => line.split(" ")[4])
      .filter((point) => point?.startsWith(`${work}/`));
    for (const point of mounts.sort((a, b) => b.length - a.length))
      await $({ nothrow: true, quiet: true })`umount -l ${point}`;
    await fs.rm(work, { recursive: true, force: true });
  };
  try {
    // The dist/ snapshot sits under the repository, so that its imports resolve to node_modules.
    await fs.mkdir(BENCH_DIR, { recursive: true });
    const snapshot = await fs.mkdtemp(path.join(BENCH_DIR, "node-dist-"));
    closers.push(() => fs.rm(snapshot, { recursive: true, force: true }));
    const cli = await snapshotDist(snapshot);
    const dist = path.resolve(path.dirname(cli), "..", "..");
    const load = (module) => import(path.join(dist, module));
    const { startRegistryServer } = await load("registry/server/index.js");
    const { Store } = await load("registry/store/index.js");
    const { brokerCertificates, openPki } = await load("installer/pki/index.js");

    const layout = path.join(work, "layout");
    const built = [];
    for (const { tag, created } of images) {
      const ref = `hubble/msgbroker:${tag}`;
      built.push({ tag, ...(await buildMsgbrokerImage({ out: layout, ref, created })) });
    }
    const store = await Store.open(path.join(work, "store"));
    closers.push(() => store.close());
    const certDir = path.join(work, "certs");
    await fs.mkdir(path.join(certDir, "trust"), { recursive: true });
    const [certFile, keyFile] = [path.join(certDir, "server.crt"), path.join(certDir, "server.key")];
    await $({
      quiet: true,
    })`openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 -keyout ${keyFile} -out ${certFile}`;
    await fs.copyFile(certFile, path.join(certDir, "trust", "ca.crt"));
    const registry = await startRegistryServer(store, {
      listen: "127.0.0.1:0",
      tls: { certFile, keyFile },
      allowPush: true,
    });
    closers.push(() => registry.close());
    const host = registry.url.replace("https://", "");
    for (const image of built) {
      await $({
        quiet: true,
      })`skopeo --insecure-policy copy --quiet --preserve-digests --dest-cert-dir ${path.join(certDir, "trust")} ${`oci:${layout}:${image.ref}`} ${`docker://${host}/${image.ref}`}`;
    }

    const socket = await startContainerd(path.join(work, "containerd"), closers);
    const site = path.join(work, "site");
    const { peer, server } = await brokerCertificates(openPki(site), { replicas: 2 });
    const read = (file) => fs.readFile(file, "utf8");
    const certificates = {
      ca: await read(peer.caFile),
      peerCert: await read(peer.certFile),
      peerKey: await read(peer.keyFile),
      serverCert: await read(server.certFile),
      serverKey: await read(server.keyFile),
    };
    const bundleImages = built.map((image) => ({
      ref: image.ref,
      digest: image.digest,
      mediaType: image.mediaType,
      size: 1,
      totalBytes: 1,
      blobs: 2,
      platforms: [image.platform],
      kind: "image",
      sourceDigest: image.digest,
    }));
    const registriesYaml = `mirrors:\n  "${SITE_REGISTRY}":\n    endpoint: ["https://${host}"]\nconfigs:\n  "${host}":\n    tls:\n      ca_file: "${certFile}"\n`;
    return { load, socket, registriesYaml, certificates, site, images: bundleImages, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** containerd with its root, state and socket under `dir`, stopped by `closers`; its socket path. */
export async function startContainerd(dir, closers) {
  const socket = path.join(dir, "containerd.sock");
  await fs.mkdir(dir, { recursive: true });
  const config = path.join(dir, "config.toml");
  await fs.writeFile(
    config,
    `version = 2\nroot = "${path.join(dir, "root")}"\nstate = "${path.join(dir, "state")}"\ndisabled_plugins = ["io.containerd.grpc.v1.cri"]\n[grpc]\n  address = "${socket}"\n`,
  );
  const containerd = $({ quiet: true, nothrow: true })`containerd --config ${config}`;
  closers.push(async () => {
    containerd.kill("SIGTERM");
    await containerd;
  });
  for (
    let waited = 0;
    !(await fs.stat(socket).then(
      () => true,
      () => false,
    ));
    waited += 100
  ) {
    if (waited > 20_000) throw new Error("containerd did not create its socket within 20 s");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return socket;
}
