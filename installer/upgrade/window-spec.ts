import type { AirlockError } from "../../registry/oci/index.js";
import { pointedError, tokensOf, type Token } from "./spec-error.js";
import { canonicalZone } from "./zoned-time.js";

/**
 * A maintenance window, `DAYS HH:MM-HH:MM ZONE`: it opens at the start time on each of its days, in
 * its zone's wall-clock time, and closes at the end time — the next day when the end is before the
 * start (it crosses midnight). `24:00` is allowed as an end: midnight at the end of the day.
 */
export interface MaintenanceWindow {
  /** As given. */
  spec: string;
  /** The days it opens on: 0 = Sunday … 6 = Saturday, ascending. */
  days: number[];
  /** Minutes after local midnight. */
  startMinute: number;
  /** Minutes after local midnight of the closing day (1440 = the next midnight). */
  endMinute: number;
  /** The end is on the day after the start. */
  crossesMidnight: boolean;
  /** The canonical IANA name. */
  zone: string;
}

const DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
const FULL_DAY_NAMES = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
const EVERY_DAY = new Set(["daily", "*"]);
const TIME_PATTERN = /^(\d{2}):(\d{2})$/;
const WINDOW_HINT =
  'write a window as DAYS HH:MM-HH:MM ZONE, e.g. "Sat 02:00-04:00 Europe/Berlin", "Mon-Fri 22:00-02:00 UTC" or "daily 01:00-03:00 America/New_York"';

/** WINDOW_INVALID (exit 2) pointing at a token of the spec. */
function windowError(spec: string, token: Token, problem: string, hint = WINDOW_HINT): AirlockError {
  return pointedError("WINDOW_INVALID", "window", spec, token, problem, hint);
}

function dayOf(spec: string, token: Token): number {
  const name = token.text.toLowerCase();
  const index = Math.max(DAY_NAMES.indexOf(name), FULL_DAY_NAMES.indexOf(name));
  if (index === -1) {
    throw windowError(
      spec,
      token,
      `\`${token.text}\` is not a day`,
      "days are Mon, Tue, Wed, Thu, Fri, Sat, Sun (or full names), ranges like Mon-Fri or Fri-Mon, lists like Sat,Sun, or daily / *",
    );
  }
  return index;
}

/** `Sat`, `Mon-Fri`, `Fri-Mon` (wrapping through the week's end), `Sat,Sun`, `daily`, `*`. */
function parseDays(spec: string, token: Token): number[] {
  if (EVERY_DAY.has(token.text.toLowerCase())) return [0, 1, 2, 3, 4, 5, 6];
  if (token.text.split(",").some((item) => item === "")) {
    throw windowError(spec, token, `\`${token.text}\` has an empty item in its list of days`);
  }
  const days = new Set<number>();
  for (const item of tokensOf(token.text, /,/, token.at)) {
    if (EVERY_DAY.has(item.text.toLowerCase())) {
      throw windowError(spec, item, `\`${item.text}\` stands alone: it already means every day`);
    }
    const ends = tokensOf(item.text, /-/, item.at);
    const pieces = item.text.split("-");
    if (pieces.length > 2 || pieces.some((piece) => piece === "")) {
      throw windowError(spec, item, `\`${item.text}\` is not a day or a range of days (Mon-Fri)`);
    }
    const first = dayOf(spec, ends[0] ?? item);
    const last = ends[1] === undefined ? first : dayOf(spec, ends[1]);
    for (let day = first; ; day = (day + 1) % 7) {
      days.add(day);
      if (day === last) break;
    }
  }
  return [...days].sort((a, b) => a - b);
}

function parseMinute(spec: string, token: Token, role: "start" | "end"): number {
  const match = TIME_PATTERN.exec(token.text);
  const hours = Number(match?.[1]);
  const minutes = Number(match?.[2]);
  const midnightEnd = role === "end" && hours === 24 && minutes === 0;
  if (match === null || minutes > 59 || (hours > 23 && !midnightEnd)) {
    throw windowError(
      spec,
      token,
      `\`${token.text}\` is not a time`,
      `times are HH:MM on a 24-hour clock, 00:00 to 23:59${role === "end" ? " (24:00 for the end of the day)" : ""}`,
    );
  }
  return hours * 60 + minutes;
}

function parseTimes(
  spec: string,
  token: Token,
): Pick<MaintenanceWindow, "startMinute" | "endMinute" | "crossesMidnight"> {
  const parts = tokensOf(token.text, /-/, token.at);
  const [start, end] = parts;
  if (parts.length !== 2 || start === undefined || end === undefined || token.text.split("-").length !== 2) {
    throw windowError(spec, token, `\`${token.text}\` is not a time range HH:MM-HH:MM`);
  }
  const startMinute = parseMinute(spec, start, "start");
  const endMinute = parseMinute(spec, end, "end");
  if (startMinute === endMinute) {
    throw windowError(spec, end, `\`${end.text}\` is the start time: the window would be empty`);
  }
  return { startMinute, endMinute, crossesMidnight: endMinute < startMinute };
}

function parseZone(spec: string, token: Token): string {
  // Offsets such as +01:00 are not zones: they know nothing of the site's DST.
  const zone = /^[A-Za-z]/.test(token.text) ? canonicalZone(token.text) : undefined;
  if (zone === undefined) {
    throw windowError(
      spec,
      token,
      `\`${token.text}\` is not a time zone this system knows`,
      "name an IANA time zone such as Europe/Berlin, America/New_York or UTC (see /usr/share/zoneinfo)",
    );
  }
  return zone;
}

/** Parses and checks one window spec; a bad one is WINDOW_INVALID (exit 2) with a caret under the bad token. */
export function parseWindow(spec: string): MaintenanceWindow {
  const tokens = tokensOf(spec, /\s+/);
  const [days, times, zone, extra] = tokens;
  if (days === undefined) {
    throw windowError(spec, { text: "", at: 0 }, "the window is empty");
  }
  if (times === undefined || zone === undefined) {
    const missing = times === undefined ? "a time range HH:MM-HH:MM and a zone" : "a time zone";
    throw windowError(spec, { text: "", at: spec.trimEnd().length + 1 }, `missing ${missing}`);
  }
  if (extra !== undefined) {
    throw windowError(spec, extra, `\`${extra.text}\` is one token too many`);
  }
  return { spec, days: parseDays(spec, days), ...parseTimes(spec, times), zone: parseZone(spec, zone) };
}
