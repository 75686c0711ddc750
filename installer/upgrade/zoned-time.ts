/**
 * Wall-clock time in an IANA zone ↔ instants, with nothing but Intl (Node's full ICU). A wall-clock
 * time that a spring-forward night skips maps to the first instant after the gap (a 02:30 that does
 * not exist starts at 03:00), as cron implementations run a job whose hour was skipped; one that a
 * fall-back night shows twice maps to its first occurrence.
 */

/** A calendar date, as the wall clock of some zone shows it. */
export interface LocalDate {
  year: number;
  /** 1–12. */
  month: number;
  day: number;
}

const MINUTE_MS = 60_000;
const DAY_MS = 86_400_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterOf(zone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(zone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat("en-US", {
      timeZone: zone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    });
    formatters.set(zone, formatter);
  }
  return formatter;
}

/** The zone's canonical name, or undefined when ICU does not know it. */
export function canonicalZone(zone: string): string | undefined {
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

interface WallClock extends LocalDate {
  hour: number;
  minute: number;
  second: number;
}

function wallClockAt(zone: string, instantMs: number): WallClock {
  const fields: Record<string, number> = {};
  for (const part of formatterOf(zone).formatToParts(new Date(instantMs))) {
    if (part.type !== "literal") fields[part.type] = Number(part.value);
  }
  return {
    year: fields.year ?? 0,
    month: fields.month ?? 0,
    day: fields.day ?? 0,
    hour: fields.hour ?? 0,
    minute: fields.minute ?? 0,
    second: fields.second ?? 0,
  };
}

/** The zone's offset from UTC at an instant, in ms (Berlin in summer: +7 200 000). */
export function offsetAt(zone: string, instantMs: number): number {
  const wall = wallClockAt(zone, instantMs);
  const asUtc = Date.UTC(wall.year, wall.month - 1, wall.day, wall.hour, wall.minute, wall.second);
  return asUtc - Math.floor(instantMs / 1000) * 1000;
}

/** The date the zone's wall clock shows at an instant. */
export function localDateAt(zone: string, instantMs: number): LocalDate {
  const { year, month, day } = wallClockAt(zone, instantMs);
  return { year, month, day };
}

export function addDays(date: LocalDate, days: number): LocalDate {
  const moved = new Date(Date.UTC(date.year, date.month - 1, date.day + days));
  return { year: moved.getUTCFullYear(), month: moved.getUTCMonth() + 1, day: moved.getUTCDate() };
}

/** 0 = Sunday … 6 = Saturday. */
export function weekdayOf(date: LocalDate): number {
  return new Date(Date.UTC(date.year, date.month - 1, date.day)).getUTCDay();
}

/** The first instant at or after `lowMs` whose offset differs from the one at `lowMs`, given one by `highMs`. */
function transitionBetween(zone: string, lowMs: number, highMs: number): number {
  const before = offsetAt(zone, lowMs);
  let low = lowMs;
  let high = highMs;
  // Offsets change on whole seconds: bisect down to one.
  while (high - low > 1000) {
    const middle = low + Math.max(1000, Math.floor((high - low) / 2000) * 1000);
    if (offsetAt(zone, middle) === before) low = middle;
    else high = middle;
  }
  return high;
}

/**
 * The instant the zone's wall clock first reads `minuteOfDay` (0–1440; 1440 is the next day's
 * 00:00) on `date`; in a spring-forward gap, the first instant after it.
 */
export function instantOfLocal(zone: string, date: LocalDate, minuteOfDay: number): number {
  const asUtc = Date.UTC(date.year, date.month - 1, date.day) + minuteOfDay * MINUTE_MS;
  // The offset in force is one of those a day either side: DST moves it at most once a night.
  const offsetBefore = offsetAt(zone, asUtc - DAY_MS);
  const offsetAfter = offsetAt(zone, asUtc + DAY_MS);
  const valid = [...new Set([offsetBefore, offsetAfter])]
    .map((offset) => asUtc - offset)
    .filter((instant) => offsetAt(zone, instant) === asUtc - instant)
    .sort((a, b) => a - b);
  const first = valid[0];
  if (first !== undefined) return first;
  // Neither offset gives that wall-clock time: the clock jumped over it.
  return transitionBetween(zone, asUtc - offsetAfter, asUtc - offsetBefore);
}

function pad(value: number, width = 2): string {
  return String(value).padStart(width, "0");
}

/** `+02:00`, `-05:00`, `+00:00`. */
export function formatOffset(offsetMs: number): string {
  const minutes = Math.round(Math.abs(offsetMs) / MINUTE_MS);
  return `${offsetMs < 0 ? "-" : "+"}${pad(Math.floor(minutes / 60))}:${pad(minutes % 60)}`;
}

const WEEKDAY_NAMES = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/** The zone's wall clock at an instant to the minute: `2026-03-29 03:00`. */
export function formatWallClock(zone: string, instantMs: number): string {
  const wall = wallClockAt(zone, instantMs);
  return `${pad(wall.year, 4)}-${pad(wall.month)}-${pad(wall.day)} ${pad(wall.hour)}:${pad(wall.minute)}`;
}

/** How the zone's wall clock shows an instant: `Sun 2026-03-29 03:00 +02:00 Europe/Berlin`. */
export function formatLocal(zone: string, instantMs: number): string {
  const wall = wallClockAt(zone, instantMs);
  const weekday = WEEKDAY_NAMES[weekdayOf(wall)] ?? "";
  const offset = formatOffset(offsetAt(zone, instantMs));
  return `${weekday} ${formatWallClock(zone, instantMs)} ${offset} ${zone}`;
}
