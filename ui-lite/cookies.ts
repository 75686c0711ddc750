import type { Request, Response } from "express";

export const SESSION_COOKIE = "airlock_session";
/** The login form's double-submit token: a login is a state-changing request too. */
export const LOGIN_COOKIE = "airlock_login";

export function readCookie(request: Request, name: string): string | undefined {
  const header = request.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Every cookie the console sets: Secure, HttpOnly, SameSite=Strict, never readable by a script. */
export function setCookie(
  response: Response,
  name: string,
  value: string,
  path = "/",
  maxAgeSeconds?: number,
): void {
  const attributes = [`${name}=${value}`, `Path=${path}`, "Secure", "HttpOnly", "SameSite=Strict"];
  if (maxAgeSeconds !== undefined) attributes.push(`Max-Age=${maxAgeSeconds}`);
  response.append("Set-Cookie", attributes.join("; "));
}

export function clearCookie(response: Response, name: string, path = "/"): void {
  setCookie(response, name, "", path, 0);
}
