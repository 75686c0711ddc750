import { silentLogger, type Logger } from "../../registry/oci/index.js";
import { Store } from "../../registry/store/index.js";
import { openPki } from "../pki/index.js";
import { openState, type State, type WriterLock } from "../state/index.js";
import type { GateConfig } from "../upgrade/index.js";
import type { ConsoleUpgradeHooks } from "../../ui-lite/index.js";
import { startSiteConsole, type ConsoleConfig, type SiteConsole } from "./console.js";
import {
  isHealthy,
  probeListener,
  startHealthServer,
  type DaemonHealth,
  type HealthServer,
} from "./health.js";
import { startSiteRegistry, type RegistryConfig, type SiteRegistry } from "./registry.js";
import { Scheduler } from "./scheduler.js";
import { libraryUpgrades, type DaemonUpgrades, type UpgradeContext } from "./upgrades.js";

export interface SiteDaemonOptions {
  dataDir: string;
  registry: RegistryConfig;
  console: ConsoleConfig;
  /** `host:port` of `/healthz` (plain HTTP; loopback by default). */
  healthListen: string;
  /** The gate timings of every run the daemon carries out; the upgrade library's defaults otherwise. */
  gates?: Partial<GateConfig>;
  /** The scheduler's and the console's upgrades over the daemon's state; the upgrade library's by default. */
  upgrades?: (context: UpgradeContext) => DaemonUpgrades;
  logger?: Logger;
  clock?: () => Date;
  /** How long requests in flight may take to finish once SIGTERM came. Default 10 s. */
  drainMs?: number;
  /** The scheduler's longest wait between looks. Default 60 s. */
  schedulerMaxWaitMs?: number;
}

export interface SiteDaemon {
  registryUrl: string;
  registryCaFile: string | undefined;
  consoleUrl: string;
  healthUrl: string;
  /** SIGHUP: accounts, certificates and schedules read again; no connection is dropped. */
  reload(): Promise<void>;
  /** SIGTERM: stop accepting, drain, leave a run at a safe point, release the locks. */
  stop(): Promise<void>;
}

const DEFAULT_DRAIN_MS = 10_000;
const DAEMON_COMMAND = "airlock serve";

/** What was started so far, closed in reverse on a failed start or a stop. */
interface Parts {
  state: State;
  daemonLock: WriterLock;
  store?: Store;
  registry?: SiteRegistry;
  console?: SiteConsole;
  health?: HealthServer;
  scheduler?: Scheduler;
}

async function closeParts(parts: Parts, drainMs: number): Promise<void> {
  await Promise.all([parts.registry?.close(drainMs), parts.console?.close(drainMs), parts.scheduler?.stop()]);
  await parts.health?.close();
  parts.store?.close();
  parts.daemonLock.release();
  parts.state.close();
}

/** What the console asks of the daemon: wake the scheduler, start a rollback beside it. */
function consoleHooks(parts: Parts, upgrades: DaemonUpgrades): ConsoleUpgradeHooks {
  return {
    wake: () => parts.scheduler?.wake(),
    async rollback(actor) {
      const runId = await parts.scheduler!.runAside(`rollback asked by ${actor}`, (signal) =>
        upgrades.startRollback(signal),
      );
      parts.state.events.append({
        actor,
        action: "upgrade.rollback.start",
        object: `run/${runId}`,
        outcome: "ok",
      });
      return { runId };
    },
  };
}

/**
 * `airlock serve`, the site daemon: Airlock's registry, the web console on its own port, the upgrade
 * scheduler, and `/healthz`, in one process. One per data dir: a second start fails at once with
 * `DAEMON_RUNNING` naming the running one's PID, before it binds any port.
 */
export async function startSiteDaemon(options: SiteDaemonOptions): Promise<SiteDaemon> {
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? (() => new Date());
  const drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
  const state = openState(options.dataDir, { actor: "daemon", clock });
  let daemonLock: WriterLock;
  try {
    daemonLock = state.daemonLock(DAEMON_COMMAND);
  } catch (error) {
    state.close();
    throw error;
  }
  const parts: Parts = { state, daemonLock };
  let stopping = false;
  try {
    const store = await Store.open(options.dataDir);
    parts.store = store;
    const pki = openPki(options.dataDir, { logger });
    parts.registry = await startSiteRegistry(parts.store, options.dataDir, options.registry, logger);
    const upgrades = (options.upgrades ?? libraryUpgrades)({
      state,
      logger,
      blobPath: (digest) => store.blobs.path(digest),
      gates: options.gates,
    });
    parts.console = await startSiteConsole({
      dataDir: options.dataDir,
      store: parts.store,
      state,
      pki,
      config: options.console,
      logger,
      clock,
      upgrades: consoleHooks(parts, upgrades),
    });
    parts.scheduler = new Scheduler({
      actions: upgrades.actions,
      lock: () => state.lock(DAEMON_COMMAND),
      clock,
      logger,
      maxWaitMs: options.schedulerMaxWaitMs,
    });
    const health = async (): Promise<DaemonHealth> => {
      const [registry, console] = await Promise.all([
        probeListener(parts.registry!.url),
        probeListener(parts.console!.url),
      ]);
      const snapshot = {
        pid: process.pid,
        daemon: stopping ? ("stopping" as const) : ("serving" as const),
        registry,
        console,
        scheduler: parts.scheduler!.status(),
      };
      return { ok: isHealthy(snapshot), ...snapshot };
    };
    parts.health = await startHealthServer(options.healthListen, health);
    parts.scheduler?.start();
    const { registry, console } = parts;
    return {
      registryUrl: registry.url,
      registryCaFile: registry.caFile,
      consoleUrl: console.url,
      healthUrl: `${parts.health.url}/healthz`,
      async reload() {
        await Promise.all([registry.reload(), console.reload()]);
        parts.scheduler?.wake();
      },
      async stop() {
        if (stopping) return;
        stopping = true;
        logger.info({}, "serve: stopping: no new connections; requests in flight may finish");
        await closeParts(parts, drainMs);
        logger.info({}, "serve: stopped");
      },
    };
  } catch (error) {
    await closeParts(parts, 0);
    throw error;
  }
}
