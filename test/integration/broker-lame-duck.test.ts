/**
 * The rendered broker's stop on a rolling restart, with a real nats-server (issue 14, point 4): the
 * config writes the PID file; the StatefulSet's preStop command, run as the kubelet runs it, puts
 * the broker in lame duck; the SIGTERM the kubelet sends right after is ignored, so the broker keeps
 * its grace period before it closes its clients and exits on its own, well within the pod's
 * terminationGracePeriodSeconds.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { issueClientCertificate, openPki } from "../../installer/pki/index.js";
import {
  brokerEnvironment,
  render,
  renderBrokerConfig,
  type StatefulSet,
  type ValuesInput,
} from "../../manifests/index.js";
import { freePorts, startDaemon, type Daemon } from "../helpers/daemons.js";
import { runTool, waitFor } from "../helpers/fixtures.js";
import { NatsClient } from "../helpers/nats-client.js";
import {
  BUNDLE_IMAGES,
  RELEASE,
  VERSION,
  issueBroker,
  type IssuedBroker,
} from "../unit/manifests/plane-fixtures.js";

const HOST = "127.0.0.1";
const GRACE_PERIOD_MS = 10_000;

let dir: string;
let broker: IssuedBroker;
let daemon: Daemon | undefined;
let client: NatsClient | undefined;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-lame-duck-"));
  broker = await issueBroker(dir, { replicas: 1, extraSans: [HOST] });
});

afterAll(async () => {
  client?.close();
  await daemon?.stop(1_000);
  await rm(dir, { recursive: true, force: true });
});

describe("the broker's lame-duck stop", () => {
  it("enters lame duck from the preStop command, outlives the SIGTERM by its grace period, then exits by itself", async () => {
    const statefulSet = render({}, BUNDLE_IMAGES, {
      release: RELEASE,
      version: VERSION,
      certificates: broker.pems,
    }).find((object): object is StatefulSet => object.kind === "StatefulSet")!;
    const pod = statefulSet.spec.template.spec;
    const [binary, flag, target] = pod.containers[0]!.lifecycle.preStop.exec.command;
    expect(target).toBe("ldm=/var/run/nats/nats.pid");

    const [clientPort, clusterPort, monitorPort] = await freePorts(3);
    const values: ValuesInput = {
      msgbroker: {
        replicas: 1,
        routeOverrides: [`${HOST}:${clusterPort}`],
        ports: { client: clientPort!, cluster: clusterPort!, monitor: monitorPort! },
      },
    };
    const file = join(dir, "nats.conf");
    await writeFile(file, renderBrokerConfig(values, broker.paths));
    const env = Object.entries(brokerEnvironment(values, 0)).map(([key, value]) => `${key}=${value}`);
    daemon = startDaemon("env", [...env, binary!, "-c", file]);
    await waitFor(
      async () =>
        (await fetch(`http://${HOST}:${monitorPort}/healthz`).catch(() => undefined))?.status === 200,
      20_000,
      "the broker to answer /healthz",
    );
    const pid = Number((await readFile(broker.paths.pidFile!, "utf8")).trim());
    expect(pid).toBe(daemon.child.pid);

    const pki = openPki(dir);
    const issued = await issueClientCertificate(pki, "lame-duck-test");
    client = await NatsClient.connect({
      servers: [{ host: HOST, port: clientPort!, servername: "msgbroker.hubble-system.svc" }],
      tls: {
        ca: await readFile(pki.caFile, "utf8"),
        cert: await readFile(issued.certFile, "utf8"),
        key: await readFile(issued.keyFile, "utf8"),
      },
      reconnectTimeMs: 0,
    });

    // As the kubelet does: the preStop hook (this broker's PID file in place of the pod's), then SIGTERM.
    const signalled = Date.now();
    const preStop = await runTool(binary!, [flag!, `ldm=${broker.paths.pidFile}`]);
    expect(preStop.code, preStop.stderr).toBe(0);
    await waitFor(
      () => Promise.resolve(daemon!.output().includes("lame duck mode")),
      5_000,
      "lame duck in the log",
    );
    daemon.child.kill("SIGTERM");
    await waitFor(() => Promise.resolve(daemon!.exited() !== undefined), 60_000, "the broker to exit");
    const stoppedAfterMs = Date.now() - signalled;

    expect(daemon.exited()).toMatchObject({ signal: null });
    // SIGTERM did not cut lame duck short: the broker kept its grace period, then closed its client.
    expect(stoppedAfterMs).toBeGreaterThanOrEqual(GRACE_PERIOD_MS - 500);
    expect(stoppedAfterMs).toBeLessThan(pod.terminationGracePeriodSeconds * 1000);
    expect(client.connected).toBe(false);
  }, 90_000);
});
