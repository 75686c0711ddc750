/**
 * The msgbroker's rendered config and the site PKI's certificates proven with real brokers (issue 6,
 * point 6): two Debian nats-server processes on 127.0.0.1, each started from renderBrokerConfig with the
 * test-only routeOverrides and its ordinal's brokerEnvironment, cluster over mutual TLS with the issued
 * peer certificate, refuse a peer whose certificate comes from another CA, carry a TLS client's message
 * from one replica to the other, and keep serving when one of them is killed.
 */
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { get as httpGet } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connect as tlsConnect } from "node:tls";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  brokerCertificates,
  issueClientCertificate,
  openPki,
  type BrokerCertificates,
  type EnsuredCertificate,
} from "../../installer/pki/index.js";
import {
  brokerEnvironment,
  renderBrokerConfig,
  type BrokerPaths,
  type ValuesInput,
} from "../../manifests/index.js";
import { freePorts, startDaemon, type Daemon } from "../helpers/daemons.js";
import { waitFor } from "../helpers/fixtures.js";
import { NatsClient, certificateFingerprint, type NatsServerAddress } from "../helpers/nats-client.js";

const NATS_SERVER = "/usr/sbin/nats-server";
const HOST = "127.0.0.1";
/** Bound on every wait for the brokers: generous for a loaded 2-core machine, never a fixed sleep. */
const WAIT_MS = 20_000;

interface Ports {
  client: number;
  cluster: number;
  monitor: number;
}

interface Broker {
  name: string;
  ports: Ports;
  daemon: Daemon;
  /** From its /varz: the server_name the config took from POD_NAME, and the id its peers' routez name. */
  serverName: string;
  id: string;
}

interface Route {
  remote_id: string;
  did_solicit: boolean;
  is_configured: boolean;
  ip: string;
  port: number;
  subscriptions_list?: string[];
}

interface Routez {
  server_id: string;
  num_routes: number;
  routes: Route[] | null;
}

let root: string;
let site: { certs: BrokerCertificates; client: EnsuredCertificate; paths: BrokerPaths; ca: string };
let foreign: { paths: BrokerPaths; peer: EnsuredCertificate; client: EnsuredCertificate };
let brokers: Broker[] = [];
/** Every broker started, stopped by PID in afterAll (those a test already stopped are skipped). */
const started: Daemon[] = [];
const clients: NatsClient[] = [];

function pathsOf(certs: BrokerCertificates, dir: string, caFile = certs.peer.caFile): BrokerPaths {
  return {
    caFile,
    peerCertFile: certs.peer.certFile,
    peerKeyFile: certs.peer.keyFile,
    serverCertFile: certs.server.certFile,
    serverKeyFile: certs.server.keyFile,
    storeDir: join(dir, "jetstream"),
  };
}

/** `GET http://127.0.0.1:PORT/PATH` on a broker's monitoring endpoint, parsed; undefined while it does not answer. */
function monitor<T>(port: number, path: string): Promise<T | undefined> {
  return new Promise((resolve) => {
    const request = httpGet({ host: HOST, port, path: `/${path}`, agent: false }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (chunk: string) => (body += chunk));
      res.on("end", () => {
        try {
          resolve(res.statusCode === 200 ? (JSON.parse(body) as T) : undefined);
        } catch {
          resolve(undefined);
        }
      });
      res.on("error", () => resolve(undefined));
    });
    request.on("error", () => resolve(undefined));
  });
}

async function routez(broker: Broker, subs = false): Promise<Routez> {
  const result = await monitor<Routez>(broker.ports.monitor, subs ? "routez?subs=1" : "routez");
  if (result === undefined)
    throw new Error(`${broker.name} does not answer /routez:\n${broker.daemon.output()}`);
  return result;
}

/** Polls until `condition` holds, failing at once with the broker's output if one of `brokers` exits. */
async function waitForBrokers(
  watched: Broker[],
  condition: () => Promise<boolean>,
  what: string,
  timeoutMs = WAIT_MS,
): Promise<void> {
  try {
    await waitFor(
      async () => {
        for (const broker of watched) {
          const exit = broker.daemon.exited();
          if (exit !== undefined) {
            throw new Error(
              `${broker.name} exited (${exit.error?.message ?? `code ${exit.code}, signal ${exit.signal}`})`,
            );
          }
        }
        return condition();
      },
      timeoutMs,
      what,
    );
  } catch (error) {
    // The brokers' logs as they are now, at the failure.
    const logs = watched.map((broker) => `--- ${broker.name}:\n${broker.daemon.output()}`).join("\n");
    throw new Error(`${(error as Error).message}\n${logs}`, { cause: error });
  }
}

/** Lines of a broker's log that match `pattern`. */
function logLines(broker: Broker, pattern: RegExp): string[] {
  return broker.daemon
    .output()
    .split("\n")
    .filter((line) => pattern.test(line));
}

/**
 * A TLS handshake with a broker's route listener, trusting the site CA and presenting `cert`: resolves
 * with the server certificate and the first line it sends over TLS (its route INFO), rejects when the
 * broker refuses the connection.
 */
async function routeHandshake(
  broker: Broker,
  cert: { certFile: string; keyFile: string },
): Promise<{ authorized: boolean; fingerprint: string; firstLine: string }> {
  const socket = tlsConnect({
    host: HOST,
    port: broker.ports.cluster,
    ca: site.ca,
    cert: await readFile(cert.certFile, "utf8"),
    key: await readFile(cert.keyFile, "utf8"),
  });
  try {
    const firstLine = await new Promise<string>((resolve, reject) => {
      let text = "";
      socket.setEncoding("utf8");
      socket.on("data", (chunk: string) => {
        text += chunk;
        if (text.includes("\r\n")) resolve(text.slice(0, text.indexOf("\r\n")));
      });
      socket.on("error", reject);
      socket.on("close", () => reject(new Error(`${broker.name} closed the route connection: ${text}`)));
      setTimeout(
        () => reject(new Error(`no route INFO from ${broker.name} within ${WAIT_MS} ms`)),
        WAIT_MS,
      ).unref();
    });
    return {
      authorized: socket.authorized,
      fingerprint: certificateFingerprint(socket.getPeerCertificate().raw),
      firstLine,
    };
  } finally {
    socket.destroy();
  }
}

/**
 * nats-server with renderBrokerConfig(values, paths) and brokerEnvironment(values, ordinal), as the
 * StatefulSet's pod would run it. `env` execs the broker, so the daemon's PID is nats-server's own.
 */
async function startBroker(
  name: string,
  routeOverrides: string[],
  ordinal: number,
  ports: Ports,
  paths: BrokerPaths,
): Promise<Broker> {
  // The test-only override: one 127.0.0.1 route per ordinal, and this ordinal's own ports.
  const values: ValuesInput = { msgbroker: { replicas: routeOverrides.length, routeOverrides, ports } };
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  const file = join(dir, "nats.conf");
  await writeFile(file, renderBrokerConfig(values, paths));
  const env = Object.entries(brokerEnvironment(values, ordinal)).map(([key, value]) => `${key}=${value}`);
  const daemon = startDaemon("env", [...env, NATS_SERVER, "-c", file], join(dir, "nats-server.log"));
  started.push(daemon);
  const broker: Broker = { name, ports, daemon, serverName: "", id: "" };
  await waitForBrokers(
    [broker],
    async () => (await monitor<{ status: string }>(ports.monitor, "healthz"))?.status === "ok",
    `${name} to answer /healthz`,
  );
  const varz = await monitor<{ server_id: string; server_name: string }>(ports.monitor, "varz");
  broker.id = varz!.server_id;
  broker.serverName = varz!.server_name;
  // SIGKILL by this PID must hit the broker itself, not a wrapper.
  expect((await readFile(`/proc/${daemon.child.pid}/comm`, "utf8")).trim()).toBe("nats-server");
  return broker;
}

/** What a client of the site trusts (the site CA) and presents (`client`'s certificate and key). */
async function clientTls(client: EnsuredCertificate): Promise<{ ca: string; cert: string; key: string }> {
  const [cert, key] = await Promise.all([
    readFile(client.certFile, "utf8"),
    readFile(client.keyFile, "utf8"),
  ]);
  return { ca: site.ca, cert, key };
}

function clientAddress(broker: Broker): NatsServerAddress {
  return { host: HOST, port: broker.ports.client };
}

async function connectClient(servers: Broker[], client = site.client): Promise<NatsClient> {
  const nats = await NatsClient.connect({
    servers: servers.map(clientAddress),
    tls: await clientTls(client),
  });
  clients.push(nats);
  return nats;
}

/** Until `broker` has the route interest of a subscription made on its peer (RS+ arrived). */
function waitForRouteInterest(broker: Broker, subject: string): Promise<void> {
  return waitForBrokers(
    [broker],
    async () =>
      ((await routez(broker, true)).routes ?? []).some((route) =>
        route.subscriptions_list?.includes(subject),
      ),
    `${broker.name} to learn of the subscription to ${subject} from its peer`,
  );
}

beforeAll(async () => {
  // A missing broker fails the suite: this test is the only proof the rendered config really runs.
  if (!existsSync(NATS_SERVER)) {
    throw new Error(`${NATS_SERVER} is missing: run \`bash scripts/setup\` (as root) to install nats-server`);
  }
  root = await mkdtemp(join(tmpdir(), "airlock-broker-cluster-"));

  const pki = openPki(join(root, "site"));
  // nats-server checks the route's host (127.0.0.1 here) against the peer certificate's SANs.
  const certs = await brokerCertificates(pki, { replicas: 2, extraSans: [HOST] });
  site = {
    certs,
    client: await issueClientCertificate(pki, "test-client"),
    paths: pathsOf(certs, join(root, "site")),
    ca: await readFile(pki.caFile, "utf8"),
  };

  // Another site's PKI: the same profiles, signed by a CA of its own.
  const otherPki = openPki(join(root, "other"));
  const otherCerts = await brokerCertificates(otherPki, { replicas: 2, extraSans: [HOST] });
  // The interloper trusts our CA as well as its own, so the refusal tested is ours, not its.
  const bothCas = join(root, "other", "both-cas.crt");
  await writeFile(bothCas, `${(await readFile(otherPki.caFile, "utf8")).trimEnd()}\n${site.ca}`);
  foreign = {
    paths: pathsOf(otherCerts, join(root, "other"), bothCas),
    peer: otherCerts.peer,
    client: await issueClientCertificate(otherPki, "intruder"),
  };

  const [c0, r0, m0, c1, r1, m1] = await freePorts(6);
  const ports: Ports[] = [
    { client: c0!, cluster: r0!, monitor: m0! },
    { client: c1!, cluster: r1!, monitor: m1! },
  ];
  const routeOverrides = ports.map((p) => `${HOST}:${p.cluster}`);
  brokers = await Promise.all(
    ports.map((p, ordinal) => startBroker(`msgbroker-${ordinal}`, routeOverrides, ordinal, p, site.paths)),
  );
});

afterAll(async () => {
  for (const client of clients) client.close();
  await Promise.all(started.map((daemon) => daemon.stop()));
  if (root !== undefined) await rm(root, { recursive: true, force: true });
});

describe("two real nats-server brokers from the rendered config and the issued certificates", () => {
  it("form the cluster route over mutual TLS with the issued peer certificate", async () => {
    const [b0, b1] = brokers as [Broker, Broker];
    await waitForBrokers(
      brokers,
      async () => (await routez(b0)).num_routes === 1 && (await routez(b1)).num_routes === 1,
      "one route on each broker",
    );
    const [z0, z1] = [await routez(b0), await routez(b1)];
    // Each one's single route leads to the other, each named by the POD_NAME its config reads.
    expect([b0.serverName, b1.serverName]).toEqual(["msgbroker-0", "msgbroker-1"]);
    expect([z0.server_id, z1.server_id]).toEqual([b0.id, b1.id]);
    expect(z0.routes!.map((route) => route.remote_id)).toEqual([b1.id]);
    expect(z1.routes!.map((route) => route.remote_id)).toEqual([b0.id]);

    // The route listener is TLS-only and presents the issued peer certificate, valid for 127.0.0.1
    // under the site CA; it asks for a client certificate (mutual TLS) and takes the issued one.
    for (const broker of brokers) {
      const probe = await routeHandshake(broker, site.certs.peer);
      expect(probe.authorized).toBe(true);
      expect(probe.fingerprint).toBe(site.certs.peer.fingerprint);
      // After the handshake the accepting broker sends its route INFO, over TLS.
      expect(probe.firstLine).toMatch(/^INFO /);
      const info = JSON.parse(probe.firstLine.slice(5)) as { server_name: string; tls_required: boolean };
      expect([info.server_name, info.tls_required]).toEqual([broker.serverName, true]);
    }
  });

  it("refuses a peer whose route certificate comes from another CA, and admits one from the site CA", async () => {
    const [b0, b1] = brokers as [Broker, Broker];
    const refusals = (broker: Broker): string[] => logLines(broker, /TLS route handshake error/);
    const before = brokers.map((broker) => refusals(broker).length);

    // A third broker, ordinal 2 as if the StatefulSet scaled to 3, rendered the same way and routing
    // to both, but with another site's certificates.
    const [fc, fr, fm, cc, cr, cm] = await freePorts(6);
    const intruderPorts = { client: fc!, cluster: fr!, monitor: fm! };
    const intruderRoutes = [
      ...brokers.map((b) => `${HOST}:${b.ports.cluster}`),
      `${HOST}:${intruderPorts.cluster}`,
    ];
    const intruder = await startBroker("intruder", intruderRoutes, 2, intruderPorts, foreign.paths);

    // It dials both brokers and retries its configured routes: wait until each broker has refused it
    // twice. Each refusal is a completed attempt, so this is no bare timeout. The brokers ask for a
    // certificate from the site CA; the intruder's Go TLS stack has none to offer, so it sends none.
    await waitForBrokers(
      [...brokers, intruder],
      () => Promise.resolve(brokers.every((broker, n) => refusals(broker).length >= before[n]! + 2)),
      "both brokers to refuse the intruder's route twice",
    );
    for (const [n, broker] of brokers.entries()) {
      for (const line of refusals(broker).slice(before[n])) {
        expect(line).toMatch(
          /127\.0\.0\.1:\d+ - rid:\d+ - TLS route handshake error: tls: client didn't provide a certificate/,
        );
      }
    }
    // No route to it anywhere: it has none, and the brokers still have only each other.
    expect((await routez(intruder)).num_routes).toBe(0);
    for (const [broker, peer] of [
      [b0, b1],
      [b1, b0],
    ] as const) {
      const z = await routez(broker);
      expect(z.num_routes).toBe(1);
      expect(z.routes!.map((route) => route.remote_id)).toEqual([peer.id]);
    }
    await intruder.daemon.stop();

    // The intruder's certificate presented as it is (OpenSSL sends it whatever the CA list): the broker
    // checks it against the site CA and refuses it, where the site's own peer certificate got its INFO.
    for (const broker of brokers) {
      const unknown = /TLS route handshake error: .*certificate signed by unknown authority/;
      const seen = logLines(broker, unknown).length;
      await expect(routeHandshake(broker, foreign.peer)).rejects.toThrow();
      await waitForBrokers(
        [broker],
        () => Promise.resolve(logLines(broker, unknown).length > seen),
        `${broker.name} to log why it refused the foreign certificate`,
      );
    }

    // The control: the same rendered config with the site's own peer certificate joins both.
    const memberPorts = { client: cc!, cluster: cr!, monitor: cm! };
    const memberRoutes = [
      ...brokers.map((b) => `${HOST}:${b.ports.cluster}`),
      `${HOST}:${memberPorts.cluster}`,
    ];
    const member = await startBroker("msgbroker-2", memberRoutes, 2, memberPorts, site.paths);
    const all = [...brokers, member];
    await waitForBrokers(
      all,
      async () => (await Promise.all(all.map((broker) => routez(broker)))).every((z) => z.num_routes === 2),
      "the site-CA member to route with both brokers",
    );
    expect(((await routez(member)).routes ?? []).map((route) => route.remote_id).sort()).toEqual(
      [b0.id, b1.id].sort(),
    );
    await member.daemon.stop();
    await waitForBrokers(
      brokers,
      async () => (await routez(b0)).num_routes === 1 && (await routez(b1)).num_routes === 1,
      "the brokers back to their one route after the member left",
    );
  });

  it("carries a TLS client's message published on one replica to a subscriber on the other", async () => {
    const [b0, b1] = brokers as [Broker, Broker];
    const subscriber = await connectClient([b0]);
    const publisher = await connectClient([b1]);
    for (const [client, broker] of [
      [subscriber, b0],
      [publisher, b1],
    ] as const) {
      expect(client.info.server_name).toBe(broker.name);
      expect([client.info.tls_required, client.info.tls_verify]).toEqual([true, true]);
      // The client listener presents the issued server certificate, valid for 127.0.0.1.
      expect(client.socket.authorized).toBe(true);
      expect(certificateFingerprint(client.socket.getPeerCertificate().raw)).toBe(
        site.certs.server.fingerprint,
      );
    }

    const subject = `airlock.test.cross.${process.pid}`;
    const sid = subscriber.subscribe(subject);
    await subscriber.flush();
    await waitForRouteInterest(b1, subject);
    const payload = `hello from ${b1.name} at ${Date.now()}`;
    publisher.publish(subject, payload);
    await publisher.flush();
    const message = await subscriber.nextMessage(sid);
    expect([message.subject, message.payload.toString()]).toEqual([subject, payload]);

    // verifyClients: a client certificate from another CA does not get a connection.
    const unknown = /- cid:\d+ - TLS handshake error: .*certificate signed by unknown authority/;
    const seen = logLines(b0, unknown).length;
    const refused = NatsClient.connect({
      servers: [clientAddress(b0)],
      tls: await clientTls(foreign.client),
    });
    await expect(refused).rejects.toThrow(/no server took the connection/);
    await waitForBrokers(
      [b0],
      () => Promise.resolve(logLines(b0, unknown).length > seen),
      `${b0.name} to log why it refused the foreign client certificate`,
    );
  });

  it("keeps serving TLS clients on the surviving replica when the other is killed", async () => {
    const [b0, b1] = brokers as [Broker, Broker];
    // On the first of its server list, msgbroker-0, the one about to die.
    const survivor = await connectClient([b0, b1]);
    expect(survivor.info.server_name).toBe(b0.name);
    const publisher = await connectClient([b1]);
    const subject = `airlock.test.failover.${process.pid}`;
    const sid = survivor.subscribe(subject);
    await survivor.flush();
    await waitForRouteInterest(b1, subject);
    publisher.publish(subject, "before");
    expect((await survivor.nextMessage(sid)).payload.toString()).toBe("before");

    process.kill(b0.daemon.child.pid!, "SIGKILL");
    await waitFor(() => b0.daemon.exited() !== undefined, WAIT_MS, `${b0.name} to die`);
    expect(b0.daemon.exited()?.signal).toBe("SIGKILL");

    // The client's connection dropped; it reconnected to the next server of its list, msgbroker-1,
    // over TLS with the issued certificates, and re-subscribed.
    await survivor.waitForReconnect(1);
    expect(survivor.reconnects).toBe(1);
    expect(survivor.info.server_name).toBe(b1.name);
    expect(certificateFingerprint(survivor.socket.getPeerCertificate().raw)).toBe(
      site.certs.server.fingerprint,
    );
    await survivor.flush();

    // msgbroker-1 has lost its only route.
    await waitForBrokers(
      [b1],
      async () => (await routez(b1)).num_routes === 0,
      `${b1.name} to drop its route`,
    );

    // The client that stayed on msgbroker-1, and a new one connecting after its peer died, both reach it.
    publisher.publish(subject, "after");
    await publisher.flush();
    const after = await survivor.nextMessage(sid);
    expect([after.subject, after.payload.toString()]).toEqual([subject, "after"]);
    const newcomer = await connectClient([b0, b1]);
    expect(newcomer.info.server_name).toBe(b1.name);
    expect(newcomer.socket.authorized).toBe(true);
    newcomer.publish(subject, "from a new client");
    await newcomer.flush();
    expect((await survivor.nextMessage(sid)).payload.toString()).toBe("from a new client");
  });
});
