import { request } from "node:http";
import type { Container, HttpProbe } from "./pod-spec.js";

export interface ProbeResult {
  ok: boolean;
  /** Why it failed, as kubelet's event says it: `Get "http://…": connect: connection refused`. */
  message?: string;
}

/** The port a probe names: a number, or a container port's name. */
export function probePort(container: Container, port: number | string): number | undefined {
  if (typeof port === "number") return port;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((candidate) => candidate.name === port)?.containerPort;
}

/** One HTTP GET of the probe against the pod's address: 200–399 within timeoutSeconds is success. */
export function runHttpProbe(container: Container, probe: HttpProbe, ip: string): Promise<ProbeResult> {
  const get = probe.httpGet;
  if (get === undefined) return Promise.resolve({ ok: true });
  const port = probePort(container, get.port);
  const path = get.path ?? "/";
  const url = `http://${ip}:${port ?? get.port}${path}`;
  if (port === undefined)
    return Promise.resolve({ ok: false, message: `port ${get.port} is not a container port` });
  const timeoutMs = (probe.timeoutSeconds ?? 1) * 1000;
  return new Promise((resolve) => {
    const req = request({ host: ip, port, path, method: "GET", agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      resolve(
        status >= 200 && status < 400
          ? { ok: true }
          : { ok: false, message: `HTTP probe failed with statuscode: ${status}` },
      );
    });
    req.on("timeout", () => {
      req.destroy();
      resolve({
        ok: false,
        message: `Get "${url}": context deadline exceeded (Client.Timeout exceeded while awaiting headers)`,
      });
    });
    req.on("error", (error: NodeJS.ErrnoException) => {
      const reason = error.code === "ECONNREFUSED" ? "connect: connection refused" : error.message;
      resolve({ ok: false, message: `Get "${url}": ${reason}` });
    });
    req.end();
  });
}

/** A probe's running tally: success or failure only once its threshold of consecutive results is met. */
export class ProbeState {
  private successes = 0;
  private failures = 0;
  /** Startup probes start failed, readiness probes unready, until they pass. */
  passing = false;
  lastMessage: string | undefined;

  constructor(private readonly probe: HttpProbe) {}

  /** Records a result; returns true when it flipped `passing`. */
  record(result: ProbeResult): boolean {
    const before = this.passing;
    if (result.ok) {
      this.failures = 0;
      this.successes++;
      if (this.successes >= (this.probe.successThreshold ?? 1)) this.passing = true;
    } else {
      this.successes = 0;
      this.failures++;
      this.lastMessage = result.message;
      if (this.failures >= (this.probe.failureThreshold ?? 3)) this.passing = false;
    }
    return before !== this.passing;
  }

  get failedOut(): boolean {
    return this.failures >= (this.probe.failureThreshold ?? 3);
  }
}
