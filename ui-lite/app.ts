import express, { type NextFunction, type Request, type Response } from "express";
import { listCertificates, rotate, type Pki } from "../installer/pki/index.js";
import type { State } from "../installer/state/index.js";
import { AirlockError } from "../registry/oci/index.js";
import type { Store } from "../registry/store/index.js";
import { STYLESHEET } from "./assets.js";
import { authRoutes, formBody, sessionOf, type AuthParts } from "./auth.js";
import { CertificateList } from "./certificate-list.js";
import type { ConsoleContext } from "./context.js";
import { httpStatusOf } from "./error-status.js";
import { siteTimeZone } from "./format.js";
import { html, type SafeHtml } from "./html.js";
import { barePage, page } from "./layout.js";
import { renderBundles } from "./pages/bundles.js";
import { renderCertificates } from "./pages/certificates.js";
import { renderEvents } from "./pages/events.js";
import { renderImages } from "./pages/images.js";
import { renderOverview } from "./pages/overview.js";
import { DEFAULT_SESSION_LIMITS, SessionRecords, type SessionLimits } from "./sessions.js";
import { LoginThrottle } from "./throttle.js";
import { DEFAULT_LIVE_LIMITS, type LiveLimits } from "./run-live.js";
import { TIMELINE_SCRIPT } from "./timeline-script.js";
import { upgradeRoutes } from "./upgrade-routes.js";
import { UPLOAD_SCRIPT } from "./upload-script.js";
import { uploadRoutes, UploadService } from "./uploads.js";
import { UserRecords } from "./users.js";
import type { ConsoleUpgradeHooks } from "./upgrade-hooks.js";

/** pino's shape, as the rest of Airlock logs. */
export interface ConsoleLogger {
  error(fields: Record<string, unknown>, message: string): void;
}

export interface ConsoleOptions {
  dataDir: string;
  store: Store;
  state: State;
  pki: Pki;
  /** Injected for tests (session expiry, lockouts); the wall clock otherwise. */
  clock?: () => Date;
  logger?: ConsoleLogger;
  /** The site's zone, shown beside UTC; the process's zone otherwise. */
  timeZone?: string;
  sessionLimits?: SessionLimits;
  /** How the console runs and rolls back upgrades: given by `airlock serve`. */
  upgrades?: ConsoleUpgradeHooks;
  /** The live run timeline's poll interval and bounds; tests shorten them. */
  liveLimits?: Partial<LiveLimits>;
}

const SECURITY_HEADERS = {
  "Content-Security-Policy":
    "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  "X-Content-Type-Options": "nosniff",
  // Not no-referrer: that makes a form post's Origin `null`, and the console's own posts keep theirs.
  "Referrer-Policy": "same-origin",
  "Cache-Control": "no-store",
  "Strict-Transport-Security": "max-age=31536000",
};

type PageRender = (
  context: ConsoleContext,
  request: Request,
  response: Response,
) => SafeHtml | Promise<SafeHtml>;

function pageRoute(context: ConsoleContext, path: string, title: string, render: PageRender) {
  return async (request: Request, response: Response): Promise<void> => {
    const body = await render(context, request, response);
    response.type("html").send(page({ title, path, session: sessionOf(response), body }));
  };
}

function errorHandler(logger: ConsoleLogger | undefined) {
  return (error: unknown, request: Request, response: Response, _next: NextFunction): void => {
    const known = error instanceof AirlockError;
    const status = known ? httpStatusOf(error) : 500;
    if (status >= 500) logger?.error({ err: error, path: request.path }, "console request failed");
    const message = known
      ? `${error.code}: ${error.message}`
      : "The console failed on this request; the log has the detail.";
    const body = html`<p class="error" role="alert">${message}</p>
      ${known && error.hint !== undefined ? html`<p>${error.hint}</p>` : ""}`;
    const session = response.locals.session as ReturnType<typeof sessionOf> | undefined;
    response
      .status(status)
      .type("html")
      .send(
        session === undefined
          ? barePage("Error", body)
          : page({ title: "Error", path: request.path, session, body }),
      );
  };
}

/** Rotates one leaf by name, refusing any name that is not a leaf the PKI lists (no paths reach the disk). */
async function rotateRoute(context: ConsoleContext, request: Request, response: Response): Promise<void> {
  const name = String(request.params.name);
  const leaf = (await listCertificates(context.pki)).find((c) => c.name === name && c.kind !== "ca");
  if (leaf === undefined) {
    throw new AirlockError("UI_NOT_FOUND", `there is no leaf certificate ${JSON.stringify(name)}`, {
      hint: "the Certificates page lists them",
    });
  }
  const actor = sessionOf(response).user.name;
  await rotate(context.pki, { names: [name] });
  context.state.events.append({ actor, action: "pki.rotate", object: `certificate/${name}`, outcome: "ok" });
  response.redirect(303, "/certificates");
}

/**
 * The web console as an express 5 app: the login form and the stylesheet are open, every other route
 * needs a session. The pages read the same library objects the CLI uses.
 */
export function createConsoleApp(options: ConsoleOptions): express.Express {
  const clock = options.clock ?? (() => new Date());
  const context: ConsoleContext = {
    dataDir: options.dataDir,
    store: options.store,
    state: options.state,
    pki: options.pki,
    certificates: new CertificateList(options.pki, clock),
    clock,
    timeZone: options.timeZone ?? siteTimeZone(),
    upgrades: options.upgrades,
  };
  const users = new UserRecords(options.state, clock);
  const parts: AuthParts = {
    users,
    sessions: new SessionRecords(
      options.state.db,
      users,
      clock,
      options.sessionLimits ?? DEFAULT_SESSION_LIMITS,
    ),
    throttle: new LoginThrottle(options.state.db, clock),
    events: options.state.events,
    clock,
  };
  const app = express();
  app.disable("x-powered-by");
  app.set("query parser", "simple");
  app.use((_request, response, next) => {
    response.set(SECURITY_HEADERS);
    next();
  });
  app.get("/assets/style.css", (_request, response) => {
    response.type("css").set("Cache-Control", "max-age=3600").send(STYLESHEET);
  });
  app.get("/assets/upload.js", (_request, response) => {
    response.type("js").set("Cache-Control", "max-age=3600").send(UPLOAD_SCRIPT);
  });
  app.get("/assets/timeline.js", (_request, response) => {
    response.type("js").set("Cache-Control", "max-age=3600").send(TIMELINE_SCRIPT);
  });
  // Browsers ask for an icon unprompted; without this the request would be sent to the login form.
  app.get("/favicon.ico", (_request, response) => {
    response.status(204).end();
  });
  // A chunk's body is the bundle's bytes, streamed to disk: no body parser may read it first.
  app.use((request, response, next) =>
    request.method === "PATCH" ? next() : formBody(request, response, next),
  );
  const router = express.Router();
  authRoutes(router, parts);
  router.get(
    "/",
    pageRoute(context, "/", "Overview", (c) => renderOverview(c)),
  );
  router.get(
    "/bundles",
    pageRoute(context, "/bundles", "Bundles", (c, _rq, rs) => renderBundles(c, sessionOf(rs))),
  );
  uploadRoutes(router, new UploadService(context, options.logger));
  router.get(
    "/images",
    pageRoute(context, "/images", "Images", (c, request) => renderImages(c, request.query)),
  );
  router.get(
    "/certificates",
    pageRoute(context, "/certificates", "Certificates", (c, _rq, rs) => renderCertificates(c, sessionOf(rs))),
  );
  router.post("/certificates/:name/rotate", (request, response) => rotateRoute(context, request, response));
  router.get(
    "/events",
    pageRoute(context, "/events", "Events", (c, request) => renderEvents(c, request.query)),
  );
  upgradeRoutes(router, context, { ...DEFAULT_LIVE_LIMITS, ...options.liveLimits }, options.logger);
  router.use(() => {
    throw new AirlockError("UI_NOT_FOUND", "there is no such page in the console", {
      hint: "the navigation lists the pages",
    });
  });
  app.use(router);
  app.use(errorHandler(options.logger));
  return app;
}
