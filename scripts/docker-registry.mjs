// The config of Debian's docker-registry (CNCF distribution) as the benchmarks, the tests and the demo
// run it: loopback only, filesystem storage, deletes on, access log off; TLS and htpasswd auth when asked.

/**
 * @param {{ storage: string, port: number, htpasswd?: string, tls?: { certFile: string, keyFile: string }, cache?: boolean }} options
 * @returns {string} the YAML text of config.yml
 */
export function dockerRegistryConfig({ storage, port, htpasswd, tls, cache = false }) {
  return [
    "version: 0.1",
    "log:",
    "  level: error",
    "  accesslog:",
    "    disabled: true",
    "storage:",
    ...(cache ? ["  cache:", "    blobdescriptor: inmemory"] : []),
    "  filesystem:",
    `    rootdirectory: ${JSON.stringify(storage)}`,
    "  delete:",
    "    enabled: true",
    ...(htpasswd === undefined
      ? []
      : ["auth:", "  htpasswd:", "    realm: airlock-peer", `    path: ${JSON.stringify(htpasswd)}`]),
    "http:",
    `  addr: 127.0.0.1:${port}`,
    ...(tls === undefined
      ? []
      : [
          "  tls:",
          `    certificate: ${JSON.stringify(tls.certFile)}`,
          `    key: ${JSON.stringify(tls.keyFile)}`,
        ]),
    "",
  ].join("\n");
}
