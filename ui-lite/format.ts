import { DATA_NOT_ROLLED_BACK, formatWallClock } from "../installer/upgrade/index.js";
import { html, type SafeHtml } from "./html.js";

/** A time in UTC and, when the site's zone is another, in that zone too, as a `<time>` element. */
export function formatTime(iso: string, timeZone: string): SafeHtml {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return html`${iso}`;
  // One cached Intl formatter per zone (zoned-time): building one costs ~0.5 ms, a page shows 50 times.
  const utc = `${formatWallClock("UTC", date.getTime())} UTC`;
  const local = timeZone === "UTC" ? "" : ` · ${formatWallClock(timeZone, date.getTime())} ${timeZone}`;
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
