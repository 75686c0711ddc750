/**
 * Request/reply traffic through real brokers for as long as a run lasts (issue 14, point 6): a
 * requester on the client Service's name sends one request per tick and retries it, as a client
 * does, after a reconnection or an answer that did not come in time, until it is answered or
 * `giveUpMs` passes; a responder connected to another broker answers each, so a request crosses the
 * route while the two are on different brokers. bench/upgrade.mjs transpiles this file and
 * nats-client.ts to run the same traffic: it imports nothing else of the repository's.
 */
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { NatsClient, type NatsTls } from "./nats-client.js";

export interface TrafficOptions {
  /** The client Service's name (`msgbroker.<namespace>.svc.cluster.local`): where the requester dials. */
  service: string;
  /** A broker pod's stable name by ordinal: where the responder dials first. */
  podHost: (ordinal: number) => string;
  replicas: number;
  port: number;
  tls: NatsTls;
  /** Where a name is dialled: the cluster's resolution (the node's, for Service and pod names). */
  resolve: (host: string) => string[];
  subject?: string;
  /** One request per tick; default 25 ms. */
  intervalMs?: number;
  /** An attempt unanswered this long is sent again; default 500 ms. */
  answerTimeoutMs?: number;
  /** A request unanswered this long counts as unanswered; default 60 s. */
  giveUpMs?: number;
  /** Called on every tick, before the request (the test samples the pods' readiness there). */
  onTick?: () => void | Promise<void>;
}

export interface TrafficReport {
  sent: number;
  answered: number;
  /** Each request that went unanswered for giveUpMs, with when it was first sent. */
  unanswered: string[];
  /** Attempts after each request's first: reconnections and answers that came too late. */
  retries: number;
  /** Answers that crossed brokers: the responder was on another broker than the requester. */
  crossed: number;
  /** The longest time without an answer (from the start, then between answers), and when it ended. */
  longestGapMs: number;
  longestGapEndedAt: number;
  requesterReconnects: number;
  responderReconnects: number;
  durationMs: number;
}

export interface Traffic {
  requester: NatsClient;
  responder: NatsClient;
  /** Stops sending once the request in flight is settled; closes both clients. */
  stop(): Promise<TrafficReport>;
}

/** One line of figures, as the test and the benchmark print them. */
export function describeTraffic(report: TrafficReport): string {
  return (
    `${report.sent} requests in ${(report.durationMs / 1000).toFixed(1)} s, ${report.answered} answered ` +
    `(${report.crossed} across brokers), ${report.unanswered.length} unanswered, ${report.retries} retries; ` +
    `longest gap ${report.longestGapMs} ms; reconnects: requester ${report.requesterReconnects}, ` +
    `responder ${report.responderReconnects}`
  );
}

/**
 * Connects the requester through the Service's name and the responder to a broker the requester is
 * not on (then the Service, when that one goes), and starts the traffic.
 */
export async function startTraffic(options: TrafficOptions): Promise<Traffic> {
  const { service, port, tls, resolve } = options;
  const reconnectTimeMs = options.giveUpMs ?? 60_000;
  const requester = await NatsClient.connect({
    servers: [{ host: service, port }],
    tls,
    resolve,
    reconnectTimeMs,
  });
  const on = requester.info.server_name;
  const other = Array.from({ length: options.replicas }, (_, ordinal) => ordinal).find(
    (ordinal) => options.podHost(ordinal).split(".")[0] !== on,
  );
  const responder = await NatsClient.connect({
    servers: [
      ...(other === undefined ? [] : [{ host: options.podHost(other), port }]),
      { host: service, port },
    ],
    tls,
    resolve,
    reconnectTimeMs,
  });
  return run(requester, responder, options);
}

async function run(requester: NatsClient, responder: NatsClient, options: TrafficOptions): Promise<Traffic> {
  const subject = options.subject ?? `airlock.traffic.${randomUUID()}`;
  const intervalMs = options.intervalMs ?? 25;
  const answerTimeoutMs = options.answerTimeoutMs ?? 500;
  const giveUpMs = options.giveUpMs ?? 60_000;
  const inbox = `_INBOX.${randomUUID()}`;
  const requests = requester.subscribe(`${inbox}.*`);
  const incoming = responder.subscribe(subject);
  await requester.flush();
  await responder.flush();
  let stopped = false;

  const answering = (async () => {
    while (!stopped) {
      const message = await responder.nextMessage(incoming, 200).catch(() => undefined);
      if (message?.replyTo === undefined || !responder.connected) continue;
      responder.publish(message.replyTo, responder.info.server_name ?? "");
    }
  })();

  const started = Date.now();
  const report: TrafficReport = {
    sent: 0,
    answered: 0,
    unanswered: [],
    retries: 0,
    crossed: 0,
    longestGapMs: 0,
    longestGapEndedAt: started,
    requesterReconnects: 0,
    responderReconnects: 0,
    durationMs: 0,
  };
  let lastAnswer = started;

  /** Sends request `n` until an answer to it comes; false when giveUpMs passed without one. */
  const request = async (n: number): Promise<boolean> => {
    const first = Date.now();
    for (let attempt = 0; Date.now() - first < giveUpMs; attempt++) {
      if (attempt > 0) report.retries++;
      if (!requester.connected) {
        const left = giveUpMs - (Date.now() - first);
        await requester.waitForReconnect(requester.reconnects + 1, left).catch(() => undefined);
        continue;
      }
      requester.publish(subject, String(n), `${inbox}.${n}`);
      const deadline = Date.now() + answerTimeoutMs;
      while (Date.now() < deadline) {
        const answer = await requester
          .nextMessage(requests, Math.max(1, deadline - Date.now()))
          .catch(() => undefined);
        if (answer === undefined) break;
        // An earlier request's late answer (to an attempt already retried) is not this one's.
        if (answer.subject !== `${inbox}.${n}`) continue;
        if (requester.connected && answer.payload.toString() !== requester.info.server_name) report.crossed++;
        return true;
      }
    }
    return false;
  };

  const sending = (async () => {
    for (let n = 0; !stopped; n++) {
      const tick = Date.now();
      await options.onTick?.();
      report.sent++;
      if (await request(n)) {
        report.answered++;
        const now = Date.now();
        if (now - lastAnswer > report.longestGapMs) {
          report.longestGapMs = now - lastAnswer;
          report.longestGapEndedAt = now;
        }
        lastAnswer = now;
      } else {
        report.unanswered.push(`#${n} first sent at ${new Date(tick).toISOString()}`);
      }
      const wait = tick + intervalMs - Date.now();
      if (wait > 0) await sleep(wait);
    }
  })();

  return {
    requester,
    responder,
    async stop() {
      stopped = true;
      await sending;
      await answering;
      report.durationMs = Date.now() - started;
      report.requesterReconnects = requester.reconnects;
      report.responderReconnects = responder.reconnects;
      requester.close();
      responder.close();
      return report;
    },
  };
}
