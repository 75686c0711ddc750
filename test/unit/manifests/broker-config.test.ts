import { X509Certificate } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  BROKER_CONFIG,
  POD_BROKER_PATHS,
  brokerCertificateNames,
  brokerEnvironment,
  render,
  renderBrokerConfig,
  type BrokerEnvironment,
  type ConfigMap,
  type ValuesInput,
} from "../../../manifests/index.js";
import { runTool } from "../../helpers/fixtures.js";
import {
  BUNDLE_IMAGES,
  CUSTOM_VALUES,
  RELEASE,
  VERSION,
  issueBroker,
  type IssuedBroker,
} from "./plane-fixtures.js";

const NATS_SERVER = "/usr/sbin/nats-server";

let dir: string;
let broker: IssuedBroker;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-broker-config-"));
  broker = await issueBroker(dir, { replicas: 3, extraSans: ["127.0.0.1"] });
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `nats-server -t -c FILE`: parses the config, loads every certificate and key it names. */
async function natsCheck(
  config: string,
  env: Partial<BrokerEnvironment>,
): Promise<{ ok: boolean; output: string }> {
  const file = join(dir, `check-${Math.random().toString(36).slice(2)}.conf`);
  await writeFile(file, config);
  const result = await runTool(NATS_SERVER, ["-t", "-c", file], { env });
  return { ok: result.code === 0, output: result.stdout.toString() + result.stderr };
}

async function expectValidForEveryOrdinal(values: ValuesInput, replicas: number): Promise<string> {
  const config = renderBrokerConfig(values, broker.paths);
  for (let ordinal = 0; ordinal < replicas; ordinal++) {
    const check = await natsCheck(config, brokerEnvironment(values, ordinal));
    expect(check.output).toMatch(/configuration file .* is valid/);
    expect(check.ok, check.output).toBe(true);
  }
  return config;
}

/** The route URLs of a rendered config, in order. */
function routesOf(config: string): string[] {
  return [...config.matchAll(/"nats-route:\/\/([^"]+)"/g)].map((match) => match[1]!);
}

describe("renderBrokerConfig", () => {
  it("renders a config nats-server accepts, routing to every ordinal's stable name over TLS", async () => {
    const config = await expectValidForEveryOrdinal({}, 2);
    expect(routesOf(config)).toEqual([
      "msgbroker-0.msgbroker-headless.hubble-system.svc.cluster.local:6222",
      "msgbroker-1.msgbroker-headless.hubble-system.svc.cluster.local:6222",
    ]);
    expect(config).toContain("server_name: $POD_NAME\n");
    expect(config).toContain("port: 4222\n");
    expect(config).toContain("http_port: 8222\n");
    // Clients learn each broker by its stable name (INFO connect_urls), which the server certificate carries.
    expect(config).toContain("port: 4222\nclient_advertise: $CLIENT_ADVERTISE\n");
    expect(config).toContain("  no_advertise: false\n");
    // nats-server -t above accepted these: a rolling restart's lame duck, and the PID preStop signals.
    expect(config).toContain(`pid_file: ${JSON.stringify(broker.paths.pidFile)}\n`);
    expect(config).toContain('lame_duck_grace_period: "10s"\nlame_duck_duration: "30s"\n');
    expect(config).toMatch(
      /^cluster \{\n {2}name: "msgbroker"\n {2}port: 6222\n {2}advertise: \$CLUSTER_ADVERTISE\n/m,
    );
    // Both listeners verify their peers by default: routes always, clients unless values say otherwise.
    expect(config.match(/verify: true/g)).toHaveLength(2);
    expect(config).toContain(`cert_file: ${JSON.stringify(broker.paths.peerCertFile)}`);
    expect(config).toContain(`cert_file: ${JSON.stringify(broker.paths.serverCertFile)}`);
    expect(config).not.toContain("jetstream");
  });

  it("takes the pod's name and route address from the environment, as the StatefulSet sets them", async () => {
    expect(brokerEnvironment({}, 1)).toEqual({
      POD_NAME: "msgbroker-1",
      CLUSTER_ADVERTISE: "msgbroker-1.msgbroker-headless.hubble-system.svc.cluster.local:6222",
      CLIENT_ADVERTISE: "msgbroker-1.msgbroker-headless.hubble-system.svc.cluster.local:4222",
    });
    const withoutName = await natsCheck(renderBrokerConfig({}, broker.paths), {
      CLUSTER_ADVERTISE: "msgbroker-0.msgbroker-headless.hubble-system.svc.cluster.local:6222",
    });
    expect(withoutName.ok).toBe(false);
    expect(withoutName.output).toContain("'POD_NAME'");
    expect(() => brokerEnvironment({}, 2)).toThrow(RangeError);
    expect(() => brokerEnvironment({}, -1)).toThrow(RangeError);
  });

  it("renders the non-default values nats-server accepts: 3 replicas, own ports and domain, JetStream, optional client certificates", async () => {
    const config = await expectValidForEveryOrdinal(CUSTOM_VALUES, 3);
    expect(routesOf(config)).toEqual(
      [0, 1, 2].map(
        (ordinal) => `msgbroker-${ordinal}.msgbroker-headless.hubble-system.svc.k8s.site.example:16222`,
      ),
    );
    expect(config).toContain("port: 14222\n");
    expect(config).toContain("http_port: 18222\n");
    expect(config.match(/verify: (true|false)/g)).toEqual(["verify: false", "verify: true"]);
    expect(config).toContain(`jetstream {\n  store_dir: ${JSON.stringify(broker.paths.storeDir)}\n}`);
  });

  it("routes to 127.0.0.1 ports with routeOverrides, so tests can run real brokers on one host", async () => {
    const routeOverrides = ["127.0.0.1:16222", "127.0.0.1:26222"];
    const processes = [0, 1].map((ordinal) => ({
      msgbroker: {
        routeOverrides,
        ports: {
          client: 14222 + ordinal * 10000,
          cluster: 16222 + ordinal * 10000,
          monitor: 18222 + ordinal * 10000,
        },
      },
    }));
    for (const [ordinal, values] of processes.entries()) {
      const config = await expectValidForEveryOrdinal(values, 2);
      expect(routesOf(config)).toEqual(routeOverrides);
      expect(brokerEnvironment(values, ordinal)).toEqual({
        POD_NAME: `msgbroker-${ordinal}`,
        CLUSTER_ADVERTISE: routeOverrides[ordinal],
        CLIENT_ADVERTISE: `127.0.0.1:${14222 + ordinal * 10000}`,
      });
    }
  });

  it("is the config the ConfigMap carries, with the pod's certificate paths", async () => {
    const objects = render({}, BUNDLE_IMAGES, {
      release: RELEASE,
      version: VERSION,
      certificates: broker.pems,
    });
    const configMap = objects.find(
      (object): object is ConfigMap => object.kind === "ConfigMap" && object.metadata.name === BROKER_CONFIG,
    );
    const podConfig = configMap!.data["nats.conf"]!;
    expect(podConfig).toBe(renderBrokerConfig({}));
    // With the pod's paths swapped for where the PKI wrote the files, nats-server accepts it.
    let local = podConfig;
    for (const key of Object.keys(POD_BROKER_PATHS) as Array<keyof typeof POD_BROKER_PATHS>) {
      local = local.replaceAll(JSON.stringify(POD_BROKER_PATHS[key]), JSON.stringify(broker.paths[key]));
    }
    expect(local).toBe(renderBrokerConfig({}, broker.paths));
    expect((await natsCheck(local, brokerEnvironment({}, 0))).ok).toBe(true);
  });

  it("routes only to names the PKI's peer certificate carries, for the same values", async () => {
    for (const values of [{}, CUSTOM_VALUES] satisfies ValuesInput[]) {
      const issued = await issueBroker(
        join(dir, `sans-${values === CUSTOM_VALUES ? "custom" : "default"}`),
        brokerCertificateNames(values),
      );
      const peerSans = new X509Certificate(issued.pems.peerCert).subjectAltName!.split(", ");
      const serverSans = new X509Certificate(issued.pems.serverCert).subjectAltName!.split(", ");
      const hosts = routesOf(renderBrokerConfig(values)).map((route) =>
        route.slice(0, route.lastIndexOf(":")),
      );
      expect(hosts.length).toBeGreaterThan(1);
      for (const host of hosts) expect(peerSans).toContain(`DNS:${host}`);
      expect(serverSans).toContain("DNS:msgbroker.hubble-system.svc");
    }
    const custom = brokerCertificateNames(CUSTOM_VALUES);
    expect(custom).toEqual({
      replicas: 3,
      namespace: "hubble-system",
      service: "msgbroker",
      headless: "msgbroker-headless",
      clusterDomain: "k8s.site.example",
      extraSans: CUSTOM_VALUES.msgbroker.extraSans,
    });
  });
});
