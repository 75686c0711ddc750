import { AirlockError } from "../../registry/oci/index.js";
import { pointedError, tokensOf, type Token } from "./spec-error.js";
import { canonicalZone, formatLocal, instantOfLocal, type LocalDate } from "./zoned-time.js";

/** A period in which no upgrade may start, nor run into: `[from, to)`. */
export interface Freeze {
  /** As given. */
  spec: string;
  from: Date;
  to: Date;
}

const INSTANT_PATTERN = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2}))?(Z|[+-]\d{2}:\d{2})?)?$/;
const FREEZE_HINT =
  "write a freeze as FROM..TO [ZONE], each an ISO date or date-time: 2026-12-20..2027-01-06 Europe/Berlin, or 2026-12-24T18:00Z..2026-12-27T06:00Z";
const AT_HINT =
  "write --at as an ISO date-time with an offset or a zone: 2026-12-05T02:00Z or 2026-12-05T02:00 Europe/Berlin";

interface ParsedInstant {
  instantMs: number;
  /** Only a date was given. */
  dateOnly: boolean;
}

type Fail = (token: Token, problem: string) => AirlockError;

function zoneOf(token: Token | undefined, fail: Fail): string | undefined {
  if (token === undefined) return undefined;
  const zone = /^[A-Za-z]/.test(token.text) ? canonicalZone(token.text) : undefined;
  if (zone === undefined) throw fail(token, `\`${token.text}\` is not a time zone this system knows`);
  return zone;
}

/**
 * `YYYY-MM-DD` or `YYYY-MM-DDTHH:MM[:SS]`, with `Z` or `±HH:MM`, or else in `zone`. A date alone is
 * its midnight, or with `endOfDay` the next midnight (a freeze's last day is frozen whole).
 */
function parseInstant(token: Token, zone: string | undefined, endOfDay: boolean, fail: Fail): ParsedInstant {
  const match = INSTANT_PATTERN.exec(token.text);
  if (match === null) throw fail(token, `\`${token.text}\` is not an ISO date or date-time`);
  const [, year = "", month = "", day = "", hour = "", minute = "", second = "", offset = ""] = match;
  const date: LocalDate = { year: Number(year), month: Number(month), day: Number(day) };
  const probe = new Date(Date.UTC(date.year, date.month - 1, date.day));
  if (probe.getUTCMonth() !== date.month - 1 || probe.getUTCDate() !== date.day) {
    throw fail(token, `\`${token.text}\` is not a date on the calendar`);
  }
  const dateOnly = hour === "";
  const minutes = dateOnly ? 0 : Number(hour) * 60 + Number(minute);
  if (Number(hour) > 23 || Number(minute) > 59 || Number(second) > 59) {
    throw fail(token, `\`${token.text}\` is not a time of day`);
  }
  const seconds = Number(second) * 1000;
  if (offset !== "") {
    const sign = offset.startsWith("-") ? -1 : 1;
    const offsetMs =
      offset === "Z" ? 0 : sign * (Number(offset.slice(1, 3)) * 60 + Number(offset.slice(4))) * 60_000;
    const asUtc = Date.UTC(date.year, date.month - 1, date.day) + minutes * 60_000 + seconds;
    return { instantMs: asUtc - offsetMs, dateOnly };
  }
  if (zone === undefined) {
    throw fail(token, `\`${token.text}\` has no offset and no zone was given`);
  }
  const minuteOfDay = dateOnly && endOfDay ? 1440 : minutes;
  return { instantMs: instantOfLocal(zone, date, minuteOfDay) + seconds, dateOnly };
}

/** `FROM..TO [ZONE]`; dates and date-times without an offset are in ZONE, else in `defaultZone`. */
export function parseFreeze(spec: string, defaultZone?: string): Freeze {
  const fail: Fail = (token, problem) =>
    pointedError("FREEZE_INVALID", "freeze", spec, token, problem, FREEZE_HINT);
  const [range, zoneToken, extra] = tokensOf(spec, /\s+/);
  if (range === undefined) throw fail({ text: "", at: 0 }, "the freeze is empty");
  if (extra !== undefined) throw fail(extra, `\`${extra.text}\` is one token too many`);
  const zone = zoneOf(zoneToken, fail) ?? defaultZone;
  const separator = range.text.indexOf("..");
  if (separator === -1) throw fail(range, `\`${range.text}\` is not a period FROM..TO`);
  const fromToken = { text: range.text.slice(0, separator), at: range.at };
  const toToken = { text: range.text.slice(separator + 2), at: range.at + separator + 2 };
  const from = parseInstant(fromToken, zone, false, fail);
  const to = parseInstant(toToken, zone, true, fail);
  if (to.instantMs <= from.instantMs)
    throw fail(toToken, `\`${toToken.text}\` is not after the start of the freeze`);
  return { spec, from: new Date(from.instantMs), to: new Date(to.instantMs) };
}

/** `--at TIME [ZONE]`: a date-time still to come. In the past (or now) is AT_IN_PAST, exit 2. */
export function parseAt(spec: string, now: Date): Date {
  const fail: Fail = (token, problem) => pointedError("AT_INVALID", "--at", spec, token, problem, AT_HINT);
  const [time, zoneToken, extra] = tokensOf(spec, /\s+/);
  if (time === undefined) throw fail({ text: "", at: 0 }, "--at is empty");
  if (extra !== undefined) throw fail(extra, `\`${extra.text}\` is one token too many`);
  const zone = zoneOf(zoneToken, fail);
  const parsed = parseInstant(time, zone, false, fail);
  if (parsed.dateOnly) throw fail(time, `\`${time.text}\` is a date: --at needs a time of day too`);
  if (parsed.instantMs <= now.getTime()) {
    const shown = formatLocal(zone ?? "UTC", parsed.instantMs);
    throw new AirlockError("AT_IN_PAST", `--at ${spec} (${shown}) is not in the future`, {
      where: "--at",
      hint: `it is now ${now.toISOString()}: give a later time, or schedule with --now`,
    });
  }
  return new Date(parsed.instantMs);
}
