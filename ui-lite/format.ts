import { DATA_NOT_ROLLED_BACK } from "../installer/upgrade/index.js";
import { html, type SafeHtml } from "./html.js";

/** One formatter per zone: building an Intl.DateTimeFormat costs ~0.5 ms, a page shows up to 50 times. */
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatterFor(timeZone: string): Intl.DateTimeFormat {
  let formatter = formatters.get(timeZone);
  if (formatter === undefined) {
    formatter = new Intl.DateTimeFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
    formatters.set(timeZone, formatter);
  }
  return formatter;
}

function inZone(date: Date, timeZone: string): string {
  const parts = formatterFor(timeZone).formatToParts(date);
  const part = (type: string): string => parts.find((p) => p.type === type)?.value ?? "";
  return `${part("year")}-${part("month")}-${part("day")} ${part("hour")}:${part("minute")}`;
}

/** A time in UTC and, when the site's zone is another, in that zone too, as a `<time>` element. */
export function formatTime(iso: string, timeZone: string): SafeHtml {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return html`${iso}`;
  const utc = `${inZone(date, "UTC")} UTC`;
  const local = timeZone === "UTC" ? "" : ` · ${inZone(date, timeZone)} ${timeZone}`;
  return html`<time datetime="${date.toISOString()}">${utc}${local}</time>`;
}

/** The zone the site's clocks show: `TZ` when it names one Intl knows, else the system's. */
export function siteTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone ?? "UTC";
}

export function shortDigest(digest: string): string {
  const [algorithm, hex] = digest.split(":");
  return hex === undefined ? digest : `${algorithm}:${hex.slice(0, 12)}`;
}

/** What every rolled-back upgrade says, as a sentence: a rollback returns objects, not data. */
export const DATA_NOT_ROLLED_BACK_SENTENCE =
  DATA_NOT_ROLLED_BACK.charAt(0).toUpperCase() + DATA_NOT_ROLLED_BACK.slice(1);
