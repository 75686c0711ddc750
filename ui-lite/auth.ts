import type { NextFunction, Request, Response, Router } from "express";
import express from "express";
import type { EventLog } from "../installer/state/index.js";
import { AirlockError } from "../registry/oci/index.js";
import { clearCookie, LOGIN_COOKIE, readCookie, SESSION_COOKIE, setCookie } from "./cookies.js";
import { html } from "./html.js";
import { barePage } from "./layout.js";
import { loginPage, passwordPage } from "./pages/login.js";
import { randomToken, tokensMatch, type ConsoleSession, type SessionRecords } from "./sessions.js";
import type { LoginThrottle } from "./throttle.js";
import type { UserRecords } from "./users.js";

export interface AuthParts {
  users: UserRecords;
  sessions: SessionRecords;
  throttle: LoginThrottle;
  events: EventLog;
  clock: () => Date;
}

/** Requests a viewer may make that change something: only their own password and signing out. */
const SELF_SERVICE = new Set(["/password", "/logout"]);
const SAFE_METHODS = new Set(["GET", "HEAD"]);

export function sessionOf(response: Response): ConsoleSession {
  return response.locals.session as ConsoleSession;
}

function field(request: Request, name: string): string {
  const body = request.body as Record<string, unknown> | undefined;
  const value = body?.[name];
  return typeof value === "string" ? value : "";
}

/**
 * The login form with its double-submit token: the one the browser holds already when it has one, so
 * a second tab or a stray request for /login leaves the form on screen valid.
 */
function loginForm(
  request: Request,
  response: Response,
  status: number,
  options: { error?: string; name?: string } = {},
): void {
  const held = readCookie(request, LOGIN_COOKIE);
  const token = held !== undefined && /^[A-Za-z0-9_-]{43}$/.test(held) ? held : randomToken();
  setCookie(response, LOGIN_COOKIE, token, "/login", 3600);
  response
    .status(status)
    .type("html")
    .send(loginPage({ token, ...options }));
}

function retryText(retryAt: Date, now: Date): string {
  const seconds = Math.max(1, Math.ceil((retryAt.getTime() - now.getTime()) / 1000));
  return seconds >= 120 ? `${Math.ceil(seconds / 60)} minutes` : `${seconds} seconds`;
}

function loginHandler(parts: AuthParts): (request: Request, response: Response) => Promise<void> {
  // One attempt per account and per address at a time: parallel guesses cannot outrun the count.
  const inFlight = new Set<string>();
  return async (request, response) => {
    const formToken = readCookie(request, LOGIN_COOKIE);
    if (formToken === undefined || !tokensMatch(field(request, "_csrf"), formToken)) {
      loginForm(request, response, 403, {
        error: "The sign-in form expired or did not come from this console. Try again.",
      });
      return;
    }
    const name = field(request, "name").trim().slice(0, 64);
    const address = request.socket.remoteAddress ?? "unknown";
    const keys = [`user:${name}`, `address:${address}`];
    const object = `ui/user/${name}`;
    const verdict = parts.throttle.check(name, address);
    if (!verdict.allowed || keys.some((key) => inFlight.has(key))) {
      const retryAt = verdict.allowed ? new Date(parts.clock().getTime() + 1000) : verdict.retryAt;
      const locked = !verdict.allowed && verdict.locked;
      parts.events.append({
        actor: name,
        action: "ui.login",
        object,
        outcome: "refused",
        detail: { address, locked },
      });
      response.set("Retry-After", String(Math.ceil((retryAt.getTime() - parts.clock().getTime()) / 1000)));
      const wait = retryText(retryAt, parts.clock());
      loginForm(request, response, 429, {
        name,
        error: locked
          ? `Too many failed sign-ins: locked for ${wait}.`
          : `Too many failed sign-ins: wait ${wait} and try again.`,
      });
      return;
    }
    for (const key of keys) inFlight.add(key);
    let user;
    try {
      user = await parts.users.authenticate(name, field(request, "password"));
    } finally {
      for (const key of keys) inFlight.delete(key);
    }
    if (user === undefined) {
      const locked = parts.throttle.fail(name, address);
      parts.events.append({
        actor: name,
        action: "ui.login",
        object,
        outcome: "failed",
        detail: { address, locked },
      });
      const lockText = locked ? " Too many failed sign-ins: locked for 15 minutes." : "";
      loginForm(request, response, 401, { name, error: `Wrong user name or password.${lockText}` });
      return;
    }
    parts.throttle.succeed(name);
    const { token } = parts.sessions.open(user);
    setCookie(response, SESSION_COOKIE, token);
    clearCookie(response, LOGIN_COOKIE, "/login");
    parts.events.append({ actor: name, action: "ui.login", object, outcome: "ok", detail: { address } });
    response.redirect(303, user.mustChangePassword ? "/password" : "/");
  };
}

function passwordHandler(parts: AuthParts): (request: Request, response: Response) => Promise<void> {
  return async (request, response) => {
    const session = sessionOf(response);
    const next = field(request, "next");
    if (next !== field(request, "again")) {
      response.status(400).type("html").send(passwordPage(session, "The two new passwords differ."));
      return;
    }
    try {
      await parts.users.changePassword(session.user.name, field(request, "current"), next);
    } catch (error) {
      if (!(error instanceof AirlockError)) throw error;
      response.status(400).type("html").send(passwordPage(session, error.message));
      return;
    }
    // The change ended every session of the user, this one too: it continues in a fresh one.
    const { token } = parts.sessions.open(parts.users.byId(session.user.id)!);
    setCookie(response, SESSION_COOKIE, token);
    response.redirect(303, "/");
  };
}

function refuse(response: Response, status: number, message: string): void {
  response
    .status(status)
    .type("html")
    .send(
      barePage(
        status === 401 ? "Signed out" : "Refused",
        html`<p class="error" role="alert">${message}</p>
          <p><a href="/">Back to the console</a></p>`,
      ),
    );
}

/**
 * Every route after this needs a live session. A state-changing request must carry the session's
 * CSRF token (form field `_csrf` or header `X-CSRF-Token`) and, but for the user's own password and
 * signing out, come from an admin: the server decides, whatever the page showed.
 */
export function requireSession(parts: AuthParts) {
  return (request: Request, response: Response, next: NextFunction): void => {
    const token = readCookie(request, SESSION_COOKIE);
    const session = token === undefined ? undefined : parts.sessions.resume(token);
    const safe = SAFE_METHODS.has(request.method);
    if (session === undefined) {
      if (token !== undefined) clearCookie(response, SESSION_COOKIE);
      if (safe) response.redirect(303, "/login");
      else refuse(response, 401, "Your session has ended: sign in again.");
      return;
    }
    response.locals.session = session;
    if (!safe) {
      const given = request.get("x-csrf-token") ?? field(request, "_csrf");
      if (!tokensMatch(given, session.csrfToken))
        return refuse(
          response,
          403,
          "The request's CSRF token is missing or wrong: nothing was changed. Reload the page and try again.",
        );
      if (!SELF_SERVICE.has(request.path) && session.user.role !== "admin") {
        return refuse(response, 403, `${session.user.name} is a viewer: only an admin may change this.`);
      }
    }
    if (session.user.mustChangePassword && !SELF_SERVICE.has(request.path)) {
      if (safe) response.redirect(303, "/password");
      else refuse(response, 403, "Change your one-time password first.");
      return;
    }
    next();
  };
}

/** The login form (the only page without a session), then the session gate, then password and logout. */
export function authRoutes(router: Router, parts: AuthParts): void {
  router.get("/login", (request, response) => loginForm(request, response, 200));
  router.post("/login", loginHandler(parts));
  router.use(requireSession(parts));
  router.get("/password", (_request, response) => {
    response.type("html").send(passwordPage(sessionOf(response)));
  });
  router.post("/password", passwordHandler(parts));
  router.post("/logout", (request, response) => {
    const token = readCookie(request, SESSION_COOKIE);
    if (token !== undefined) parts.sessions.close(token);
    clearCookie(response, SESSION_COOKIE);
    response.redirect(303, "/login");
  });
}

export const formBody = express.urlencoded({ extended: false, limit: "16kb", parameterLimit: 20 });
