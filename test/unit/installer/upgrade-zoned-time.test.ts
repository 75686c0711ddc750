import { describe, expect, it } from "vitest";
import {
  addDays,
  canonicalZone,
  formatLocal,
  instantOfLocal,
  localDateAt,
  offsetAt,
  weekdayOf,
} from "../../../installer/upgrade/zoned-time.js";

const HOUR = 3_600_000;
const iso = (ms: number): string => new Date(ms).toISOString();
const minute = (hh: number, mm: number): number => hh * 60 + mm;

describe("local time ↔ instant", () => {
  it("maps an ordinary wall-clock time both ways, in and out of DST", () => {
    expect(iso(instantOfLocal("Europe/Berlin", { year: 2026, month: 1, day: 15 }, minute(2, 30)))).toBe(
      "2026-01-15T01:30:00.000Z",
    );
    expect(iso(instantOfLocal("Europe/Berlin", { year: 2026, month: 7, day: 15 }, minute(2, 30)))).toBe(
      "2026-07-15T00:30:00.000Z",
    );
    expect(iso(instantOfLocal("America/New_York", { year: 2026, month: 1, day: 15 }, minute(2, 30)))).toBe(
      "2026-01-15T07:30:00.000Z",
    );
    expect(iso(instantOfLocal("America/New_York", { year: 2026, month: 7, day: 15 }, minute(2, 30)))).toBe(
      "2026-07-15T06:30:00.000Z",
    );
    expect(iso(instantOfLocal("UTC", { year: 2026, month: 2, day: 28 }, 1440))).toBe(
      "2026-03-01T00:00:00.000Z",
    );
  });

  it("reads offsets either side of each 2026 transition", () => {
    expect(offsetAt("Europe/Berlin", Date.parse("2026-03-29T00:59:59Z"))).toBe(HOUR);
    expect(offsetAt("Europe/Berlin", Date.parse("2026-03-29T01:00:00Z"))).toBe(2 * HOUR);
    expect(offsetAt("Europe/Berlin", Date.parse("2026-10-25T00:59:59Z"))).toBe(2 * HOUR);
    expect(offsetAt("Europe/Berlin", Date.parse("2026-10-25T01:00:00Z"))).toBe(HOUR);
    expect(offsetAt("America/New_York", Date.parse("2026-03-08T06:59:59Z"))).toBe(-5 * HOUR);
    expect(offsetAt("America/New_York", Date.parse("2026-03-08T07:00:00Z"))).toBe(-4 * HOUR);
    expect(offsetAt("America/New_York", Date.parse("2026-11-01T05:59:59Z"))).toBe(-4 * HOUR);
    expect(offsetAt("America/New_York", Date.parse("2026-11-01T06:00:00Z"))).toBe(-5 * HOUR);
  });

  it("puts a time the spring-forward night skips at the first instant after the gap", () => {
    // Berlin jumps 02:00 → 03:00 on 2026-03-29; New York on 2026-03-08.
    const berlin = instantOfLocal("Europe/Berlin", { year: 2026, month: 3, day: 29 }, minute(2, 30));
    expect(iso(berlin)).toBe("2026-03-29T01:00:00.000Z");
    expect(formatLocal("Europe/Berlin", berlin)).toBe("Sun 2026-03-29 03:00 +02:00 Europe/Berlin");
    const york = instantOfLocal("America/New_York", { year: 2026, month: 3, day: 8 }, minute(2, 30));
    expect(iso(york)).toBe("2026-03-08T07:00:00.000Z");
    expect(formatLocal("America/New_York", york)).toBe("Sun 2026-03-08 03:00 -04:00 America/New_York");
    // Lord Howe Island skips half an hour, 02:00 → 02:30, on 2026-10-04.
    const howe = instantOfLocal("Australia/Lord_Howe", { year: 2026, month: 10, day: 4 }, minute(2, 15));
    expect(formatLocal("Australia/Lord_Howe", howe)).toBe("Sun 2026-10-04 02:30 +11:00 Australia/Lord_Howe");
    // The gap's edges: 02:00 itself is skipped, 03:00 and 01:59 exist.
    expect(iso(instantOfLocal("Europe/Berlin", { year: 2026, month: 3, day: 29 }, minute(2, 0)))).toBe(
      "2026-03-29T01:00:00.000Z",
    );
    expect(iso(instantOfLocal("Europe/Berlin", { year: 2026, month: 3, day: 29 }, minute(1, 59)))).toBe(
      "2026-03-29T00:59:00.000Z",
    );
    expect(iso(instantOfLocal("Europe/Berlin", { year: 2026, month: 3, day: 29 }, minute(3, 0)))).toBe(
      "2026-03-29T01:00:00.000Z",
    );
  });

  it("puts a time the fall-back night shows twice at its first occurrence", () => {
    // Berlin shows 02:00–02:59 twice on 2026-10-25 (CEST, then CET); New York 01:00–01:59 on 2026-11-01.
    const berlin = instantOfLocal("Europe/Berlin", { year: 2026, month: 10, day: 25 }, minute(2, 30));
    expect(iso(berlin)).toBe("2026-10-25T00:30:00.000Z");
    expect(formatLocal("Europe/Berlin", berlin)).toBe("Sun 2026-10-25 02:30 +02:00 Europe/Berlin");
    expect(formatLocal("Europe/Berlin", berlin + HOUR)).toBe("Sun 2026-10-25 02:30 +01:00 Europe/Berlin");
    const york = instantOfLocal("America/New_York", { year: 2026, month: 11, day: 1 }, minute(1, 30));
    expect(iso(york)).toBe("2026-11-01T05:30:00.000Z");
    expect(formatLocal("America/New_York", york + HOUR)).toBe("Sun 2026-11-01 01:30 -05:00 America/New_York");
    // 02:30 in New York that night happens once, after the repeated hour.
    expect(iso(instantOfLocal("America/New_York", { year: 2026, month: 11, day: 1 }, minute(2, 30)))).toBe(
      "2026-11-01T07:30:00.000Z",
    );
  });

  it.each([
    // Each zone's repeated stretch holds one of these instants: 01:30 UTC falls in Berlin's, 06:00 in
    // New York's, 16:30 in Sydney's, 15:00 in Lord Howe Island's (which moves by half an hour).
    ["Europe/Berlin", 1],
    ["America/New_York", 1],
    ["Australia/Sydney", 1],
    ["Australia/Lord_Howe", 1],
  ])(
    "round-trips every 90 minutes of 2026 in %s, the repeated ones to their first occurrence",
    (zone, repeated) => {
      const start = Date.parse("2026-01-01T00:00:00Z");
      let firstOccurrences = 0;
      for (let at = start; at < start + 365 * 24 * HOUR; at += 90 * 60_000) {
        const local = new Date(at + offsetAt(zone, at));
        const back = instantOfLocal(
          zone,
          localDateAt(zone, at),
          local.getUTCHours() * 60 + local.getUTCMinutes(),
        );
        if (back !== at) {
          // The wall clock read the same earlier, before it was set back by the difference.
          expect(back).toBeLessThan(at);
          expect(offsetAt(zone, back) - offsetAt(zone, at)).toBe(at - back);
          firstOccurrences += 1;
        }
      }
      expect(firstOccurrences).toBe(repeated);
    },
  );

  it("walks calendar dates and weekdays, and knows which zones exist", () => {
    expect(addDays({ year: 2026, month: 12, day: 31 }, 1)).toEqual({ year: 2027, month: 1, day: 1 });
    expect(addDays({ year: 2028, month: 3, day: 1 }, -1)).toEqual({ year: 2028, month: 2, day: 29 });
    expect(weekdayOf({ year: 2026, month: 3, day: 29 })).toBe(0);
    expect(weekdayOf({ year: 2026, month: 12, day: 5 })).toBe(6);
    expect(canonicalZone("europe/berlin")).toBe("Europe/Berlin");
    expect(canonicalZone("Mars/Olympus_Mons")).toBeUndefined();
  });
});
