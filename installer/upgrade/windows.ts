import { AirlockError } from "../../registry/oci/index.js";
import type { Freeze } from "./instant-spec.js";
import type { MaintenanceWindow } from "./window-spec.js";
import {
  addDays,
  formatLocal,
  instantOfLocal,
  localDateAt,
  weekdayOf,
  type LocalDate,
} from "./zoned-time.js";

/** One opening of a window, as instants and as its zone's wall clock shows them. */
export interface WindowOccurrence {
  window: MaintenanceWindow;
  start: Date;
  end: Date;
  /** `Sat 2026-03-28 02:00 +01:00 Europe/Berlin`. */
  localStart: string;
  localEnd: string;
}

export type StartDecision =
  { kind: "now"; occurrence: WindowOccurrence } | { kind: "later"; at: Date; occurrence: WindowOccurrence };

export interface FitOptions {
  /** How far ahead to look for a fit. Default 366 days. */
  horizonMs?: number | undefined;
}

const DAY_MS = 86_400_000;
const DEFAULT_HORIZON_MS = 366 * DAY_MS;

function occurrenceOn(window: MaintenanceWindow, date: LocalDate): WindowOccurrence | undefined {
  const startMs = instantOfLocal(window.zone, date, window.startMinute);
  const endDate = window.crossesMidnight ? addDays(date, 1) : date;
  const endMs = instantOfLocal(window.zone, endDate, window.endMinute);
  // A window lying wholly inside a spring-forward gap does not open that night.
  if (endMs <= startMs) return undefined;
  return {
    window,
    start: new Date(startMs),
    end: new Date(endMs),
    localStart: formatLocal(window.zone, startMs),
    localEnd: formatLocal(window.zone, endMs),
  };
}

/**
 * A window's openings that have not closed by `fromMs`, in order, for ever. The one open at `fromMs`
 * comes first: it may have opened the day before, if it crosses midnight.
 */
function* occurrencesOf(window: MaintenanceWindow, fromMs: number): Generator<WindowOccurrence> {
  if (window.days.length === 0) return;
  for (let date = addDays(localDateAt(window.zone, fromMs), -1); ; date = addDays(date, 1)) {
    if (!window.days.includes(weekdayOf(date))) continue;
    const occurrence = occurrenceOn(window, date);
    if (occurrence !== undefined && occurrence.end.getTime() > fromMs) yield occurrence;
  }
}

/** Every window's openings not closed by `fromMs`, merged in order of their start. */
function* mergedOccurrences(windows: MaintenanceWindow[], fromMs: number): Generator<WindowOccurrence> {
  const sources = windows.map((window) => occurrencesOf(window, fromMs));
  const heads = sources.map((source) => source.next().value as WindowOccurrence | undefined);
  for (;;) {
    let earliest: number | undefined;
    heads.forEach((head, index) => {
      const best = earliest === undefined ? undefined : heads[earliest];
      if (head !== undefined && (best === undefined || head.start < best.start)) earliest = index;
    });
    if (earliest === undefined) return;
    yield heads[earliest] as WindowOccurrence;
    heads[earliest] = sources[earliest]?.next().value as WindowOccurrence | undefined;
  }
}

/** The next `count` openings of any of the windows, the one open at `from` (if any) first. */
export function nextOccurrences(windows: MaintenanceWindow[], from: Date, count: number): WindowOccurrence[] {
  const found: WindowOccurrence[] = [];
  if (count <= 0) return found;
  for (const occurrence of mergedOccurrences(windows, from.getTime())) {
    found.push(occurrence);
    if (found.length === count) break;
  }
  return found;
}

/** The earliest instant ≥ `startMs` at which `[t, t + needMs)` overlaps no freeze. */
export function pastFreezes(freezes: Freeze[], startMs: number, needMs: number): number {
  let at = startMs;
  for (let moved = true; moved;) {
    moved = false;
    for (const freeze of freezes) {
      if (at < freeze.to.getTime() && at + needMs > freeze.from.getTime()) {
        at = freeze.to.getTime();
        moved = true;
      }
    }
  }
  return at;
}

interface OpenSpan {
  startMs: number;
  endMs: number;
  /** The openings it joins, in order. */
  occurrences: WindowOccurrence[];
}

/**
 * The windows' openings up to `horizonMs`, those that overlap or touch joined into one span: a run
 * may go on from one window into the next (Sat 20:00-24:00 and Sun 00:00-04:00 are 8 hours).
 */
function* openSpans(windows: MaintenanceWindow[], fromMs: number, horizonMs: number): Generator<OpenSpan> {
  let span: OpenSpan | undefined;
  for (const occurrence of mergedOccurrences(windows, fromMs)) {
    const startMs = occurrence.start.getTime();
    if (startMs > horizonMs) break;
    if (span !== undefined && startMs <= span.endMs) {
      span.endMs = Math.max(span.endMs, occurrence.end.getTime());
      span.occurrences.push(occurrence);
      continue;
    }
    if (span !== undefined) yield span;
    span = { startMs, endMs: occurrence.end.getTime(), occurrences: [occurrence] };
  }
  if (span !== undefined) yield span;
}

/**
 * When a run may start: now, if a window is open and the estimate plus the margin fits before it
 * closes; else the first later instant in a window where it fits. A freeze blocks any start whose
 * run would overlap it. A run never starts in a window it cannot finish in: it waits for the next.
 * The occurrence returned is the window opening the run starts in.
 */
export function canStartAt(
  windows: MaintenanceWindow[],
  freezes: Freeze[],
  now: Date,
  estimatedMs: number,
  marginMs: number,
  options: FitOptions = {},
): StartDecision {
  const needMs = estimatedMs + marginMs;
  const horizonMs = now.getTime() + (options.horizonMs ?? DEFAULT_HORIZON_MS);
  for (const span of openSpans(windows, now.getTime(), horizonMs)) {
    const at = pastFreezes(freezes, Math.max(span.startMs, now.getTime()), needMs);
    if (at + needMs > span.endMs) continue;
    const occurrence = span.occurrences.filter((candidate) => candidate.start.getTime() <= at).at(-1);
    if (occurrence === undefined) continue;
    return at === now.getTime()
      ? { kind: "now", occurrence }
      : { kind: "later", at: new Date(at), occurrence };
  }
  throw new AirlockError(
    "UPGRADE_NO_WINDOW_FITS",
    `no window in the next ${Math.round((horizonMs - now.getTime()) / DAY_MS)} days fits the run (${Math.ceil(needMs / 60_000)} min with the margin) outside the freezes`,
    {
      where: windows.map((window) => window.spec).join("; ") || "no windows",
      hint: "give a longer window (--window), shorten or drop a freeze (--freeze), or run it now (--now)",
    },
  );
}
