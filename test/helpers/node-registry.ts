/**
 * What the containerd node's integration tests pull from: Airlock's own registry over TLS (a
 * self-signed certificate, a store of its own) holding the msgbroker image built by
 * scripts/msgbroker-image.mjs, pushed there by skopeo.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buildMsgbrokerImage, type MsgbrokerImage } from "../../scripts/msgbroker-image.mjs";
import {
  Authenticator,
  loadHtpasswd,
  startRegistryServer,
  type RunningRegistry,
} from "../../registry/server/index.js";
import { Store } from "../../registry/store/index.js";
import { runTool, selfSignedCertificate } from "./fixtures.js";

export const BROKER_REPOSITORY = "hubble/msgbroker";
export const BROKER_TAG = "4.5.0";

export interface NodeRegistry {
  registry: RunningRegistry;
  /** host:port of the registry on 127.0.0.1. */
  host: string;
  /** The CA the registry's certificate verifies with (it is self-signed). */
  caFile: string;
  image: MsgbrokerImage;
  close(): Promise<void>;
}

export interface RegistryAccount {
  user: string;
  password: string;
}

/** With `account`, the registry lets only that account pull (and push), by the bearer-token flow. */
export async function startNodeRegistry(dir: string, account?: RegistryAccount): Promise<NodeRegistry> {
  const image = await buildMsgbrokerImage({
    out: join(dir, "layout"),
    ref: `${BROKER_REPOSITORY}:${BROKER_TAG}`,
  });
  const store = await Store.open(join(dir, "store"));
  const certificate = await selfSignedCertificate(dir);
  const auth = account === undefined ? undefined : await authFor(dir, account);
  const registry = await startRegistryServer(store, {
    listen: "127.0.0.1:0",
    tls: { certFile: certificate.certFile, keyFile: certificate.keyFile },
    allowPush: true,
    auth,
  });
  const host = registry.url.replace("https://", "");
  const pushed = await runTool("skopeo", [
    "--insecure-policy",
    "copy",
    "--quiet",
    "--preserve-digests",
    "--dest-cert-dir",
    certificate.trustDir,
    ...(account === undefined ? [] : ["--dest-creds", `${account.user}:${account.password}`]),
    `oci:${image.layout}:${BROKER_REPOSITORY}:${BROKER_TAG}`,
    `docker://${host}/${BROKER_REPOSITORY}:${BROKER_TAG}`,
  ]);
  if (pushed.code !== 0) {
    await registry.close();
    store.close();
    throw new Error(`skopeo push to Airlock's registry failed: ${pushed.stderr}`);
  }
  return {
    registry,
    host,
    caFile: certificate.certFile,
    image,
    async close() {
      await registry.close();
      store.close();
    },
  };
}

async function authFor(dir: string, account: RegistryAccount): Promise<Authenticator> {
  const made = await runTool("htpasswd", ["-Bbn", account.user, account.password]);
  if (made.code !== 0) throw new Error(`htpasswd failed: ${made.stderr}`);
  const file = join(dir, "htpasswd");
  await writeFile(file, made.stdout);
  return new Authenticator({
    mode: "token",
    users: await loadHtpasswd(file),
    pushUsers: new Set([account.user]),
    anonymousPull: false,
  });
}
