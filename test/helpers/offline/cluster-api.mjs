// A MemoryCluster behind its kube-apiserver facade (the built library), for a test that needs the
// cluster inside a network namespace: run it there with `ip netns exec`. Prints {"url": …} once it
// serves, and serves until SIGTERM.
//
//   node cluster-api.mjs CERT_FILE KEY_FILE TOKEN
import { readFileSync } from "node:fs";
import { MemoryCluster, serveClusterApi } from "../../../dist/installer/cluster/index.js";

const [certFile, keyFile, token] = process.argv.slice(2);
const cluster = new MemoryCluster();
const api = await serveClusterApi(cluster, {
  tls: { cert: readFileSync(certFile, "utf8"), key: readFileSync(keyFile, "utf8") },
  token,
});
process.stdout.write(`${JSON.stringify({ url: api.url })}\n`);
process.once("SIGTERM", () => {
  void api.close().then(() => {
    cluster.close();
    process.exit(0);
  });
});
