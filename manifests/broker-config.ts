import { BROKER, BROKER_HEADLESS, NAMESPACE } from "./names.js";
import { parseValues, type Values, type ValuesInput } from "./values.js";

/** Where the broker finds its certificates and stores its data. */
export interface BrokerPaths {
  /** The site CA: what both the client and the route listener trust. */
  caFile: string;
  /** Route (peer) certificate: presented on routes it accepts and dials. */
  peerCertFile: string;
  peerKeyFile: string;
  /** The client listener's certificate. */
  serverCertFile: string;
  serverKeyFile: string;
  /** JetStream's store, when jetstream is enabled. */
  storeDir: string;
  /**
   * Where the broker writes its PID, so a preStop hook can signal it (`--signal ldm=FILE`). Absent
   * for brokers run by tests as local processes, which share a directory.
   */
  pidFile?: string | undefined;
}

export const BROKER_CONFIG_DIR = "/etc/nats";
/** The ConfigMap key, so the file lands at /etc/nats/nats.conf: the image's default `--config`. */
export const BROKER_CONFIG_KEY = "nats.conf";
export const BROKER_TLS_DIR = "/etc/nats-tls";
/** The image's working directory: an emptyDir, or the persistent volume. */
export const BROKER_DATA_DIR = "/data";
/** An emptyDir of its own: the root filesystem is read-only, and a PID has no place on the data volume. */
export const BROKER_RUN_DIR = "/var/run/nats";
export const BROKER_PID_FILE = `${BROKER_RUN_DIR}/nats.pid`;

/**
 * Lame-duck mode on a rolling restart: the broker stops taking clients and leaves the cluster's
 * advertisements at once, waits the grace period, then closes its clients spread over the duration
 * (nats-server refuses less than 30 s), and exits. SIGTERM is ignored meanwhile, so the pod's grace
 * period must outlast both.
 */
export const LAME_DUCK_GRACE_PERIOD_SECONDS = 10;
export const LAME_DUCK_DURATION_SECONDS = 30;

/** The files as a broker pod sees them: one projected volume of both certificate Secrets. */
export const POD_BROKER_PATHS: BrokerPaths = {
  caFile: `${BROKER_TLS_DIR}/ca.crt`,
  peerCertFile: `${BROKER_TLS_DIR}/peer.crt`,
  peerKeyFile: `${BROKER_TLS_DIR}/peer.key`,
  serverCertFile: `${BROKER_TLS_DIR}/server.crt`,
  serverKeyFile: `${BROKER_TLS_DIR}/server.key`,
  storeDir: `${BROKER_DATA_DIR}/jetstream`,
  pidFile: BROKER_PID_FILE,
};

/**
 * The environment variables the config reads (nats-server substitutes `$NAME` from the
 * environment), so one ConfigMap serves every ordinal.
 */
export const POD_NAME_ENV = "POD_NAME";
export const CLUSTER_ADVERTISE_ENV = "CLUSTER_ADVERTISE";
export const CLIENT_ADVERTISE_ENV = "CLIENT_ADVERTISE";

/** What each broker process needs in its environment for the rendered config. */
export interface BrokerEnvironment {
  /** The pod name, `msgbroker-N`: the broker's server_name. */
  POD_NAME: string;
  /** `host:port` the broker tells its peers to route to: a name its peer certificate carries. */
  CLUSTER_ADVERTISE: string;
  /** `host:port` the broker tells clients to reconnect to (INFO `connect_urls`): a name its server certificate carries. */
  CLIENT_ADVERTISE: string;
}

/** A broker pod's stable DNS name under the headless Service; `podName` may be `$(POD_NAME)`. */
export function brokerPodHost(values: Values, podName: string): string {
  return `${podName}.${BROKER_HEADLESS}.${NAMESPACE}.svc.${values.clusterDomain}`;
}

/** `host:port` of every ordinal's route listener, in ordinal order. */
function routeAddresses(values: Values): string[] {
  const { replicas, routeOverrides, ports } = values.msgbroker;
  return (
    routeOverrides ??
    Array.from(
      { length: replicas },
      (_, ordinal) => `${brokerPodHost(values, `${BROKER}-${ordinal}`)}:${ports.cluster}`,
    )
  );
}

/** The environment of ordinal N's broker, as its pod has it (or, with routeOverrides, a local process). */
export function brokerEnvironment(input: ValuesInput, ordinal: number): BrokerEnvironment {
  const values = parseValues(input);
  const address = routeAddresses(values)[ordinal];
  if (address === undefined) {
    throw new RangeError(`ordinal ${ordinal} is not one of the ${values.msgbroker.replicas} replicas`);
  }
  const { routeOverrides, ports } = values.msgbroker;
  // A local process has no stable name: it is reached on its route override's host, at its client port.
  const clientHost =
    routeOverrides === undefined
      ? brokerPodHost(values, `${BROKER}-${ordinal}`)
      : address.slice(0, address.lastIndexOf(":"));
  return {
    POD_NAME: `${BROKER}-${ordinal}`,
    CLUSTER_ADVERTISE: address,
    CLIENT_ADVERTISE: `${clientHost}:${ports.client}`,
  };
}

function block(name: string, lines: string[]): string[] {
  return [`${name} {`, ...lines.map((line) => (line === "" ? line : `  ${line}`)), "}"];
}

/** NATS config strings take JSON's double-quoted escapes. */
function quoted(value: string): string {
  return JSON.stringify(value);
}

function tlsBlock(certFile: string, keyFile: string, caFile: string, verify: boolean): string[] {
  return block("tls", [
    `cert_file: ${quoted(certFile)}`,
    `key_file: ${quoted(keyFile)}`,
    `ca_file: ${quoted(caFile)}`,
    `verify: ${verify}`,
    // nats-server's default half second is tight for a handshake on a loaded node.
    "timeout: 2",
  ]);
}

/**
 * The nats-server configuration (NATS conf syntax) for every broker of the StatefulSet: client
 * listener with TLS, HTTP monitoring for the probes, and a cluster whose routes, over mutual TLS
 * with the peer certificate, go to every ordinal's stable name (or to `routeOverrides`).
 * Each process needs BrokerEnvironment's variables (see brokerEnvironment).
 */
export function renderBrokerConfig(input: ValuesInput, paths: BrokerPaths = POD_BROKER_PATHS): string {
  const values = parseValues(input);
  const broker = values.msgbroker;
  const lines = [
    "# msgbroker (NATS) configuration, rendered by Airlock from the plane's values.",
    `# Each broker's environment names it: ${POD_NAME_ENV}, ${CLUSTER_ADVERTISE_ENV} (its route's host:port)`,
    `# and ${CLIENT_ADVERTISE_ENV} (its client listener's host:port under its stable name).`,
    `server_name: $${POD_NAME_ENV}`,
    `port: ${broker.ports.client}`,
    `client_advertise: $${CLIENT_ADVERTISE_ENV}`,
    `http_port: ${broker.ports.monitor}`,
    ...(paths.pidFile === undefined ? [] : [`pid_file: ${quoted(paths.pidFile)}`]),
    `lame_duck_grace_period: "${LAME_DUCK_GRACE_PERIOD_SECONDS}s"`,
    `lame_duck_duration: "${LAME_DUCK_DURATION_SECONDS}s"`,
    "",
    ...tlsBlock(paths.serverCertFile, paths.serverKeyFile, paths.caFile, broker.tls.verifyClients),
    "",
    ...block("cluster", [
      `name: ${quoted(BROKER)}`,
      `port: ${broker.ports.cluster}`,
      // Peers dial what a broker advertises when they learn of it; its pod IP is in no certificate.
      `advertise: $${CLUSTER_ADVERTISE_ENV}`,
      // Clients learn every broker's client_advertise (its stable name, which the server certificate
      // carries) in INFO connect_urls, so they follow the cluster as it scales without reconfiguring.
      "no_advertise: false",
      ...tlsBlock(paths.peerCertFile, paths.peerKeyFile, paths.caFile, true),
      "routes: [",
      ...routeAddresses(values).map((address) => `  ${quoted(`nats-route://${address}`)}`),
      "]",
    ]),
    ...(broker.jetstream.enabled
      ? ["", ...block("jetstream", [`store_dir: ${quoted(paths.storeDir)}`])]
      : []),
  ];
  return `${lines.join("\n")}\n`;
}

/**
 * What the site PKI needs to issue the broker's certificates for these values: installer/pki's
 * `brokerCertificates(pki, options)` takes this shape.
 */
export interface BrokerCertificateNames {
  replicas: number;
  namespace: string;
  service: string;
  headless: string;
  clusterDomain: string;
  extraSans: string[];
}

export function brokerCertificateNames(input: ValuesInput): BrokerCertificateNames {
  const values = parseValues(input);
  return {
    replicas: values.msgbroker.replicas,
    namespace: NAMESPACE,
    service: BROKER,
    headless: BROKER_HEADLESS,
    clusterDomain: values.clusterDomain,
    extraSans: [...values.msgbroker.extraSans],
  };
}
