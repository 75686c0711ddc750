import { describe, expect, it } from "vitest";
import { parseAt, parseFreeze, parseWindow } from "../../../installer/upgrade/index.js";
import { AirlockError } from "../../../registry/oci/index.js";

function refusal(parse: () => unknown): AirlockError {
  try {
    parse();
  } catch (error) {
    if (error instanceof AirlockError) return error;
    throw error;
  }
  throw new Error("expected the spec to be refused");
}

/** The token the caret line underlines, read back from the message. */
function pointedAt(error: AirlockError): string {
  const [, spec, caret] = error.message.split("\n");
  const start = (caret ?? "").indexOf("^");
  return (spec ?? "").slice(start, (caret ?? "").length).trim();
}

describe("parseWindow", () => {
  it("reads days, times and the zone", () => {
    expect(parseWindow("Sat 02:00-04:00 Europe/Berlin")).toEqual({
      spec: "Sat 02:00-04:00 Europe/Berlin",
      days: [6],
      startMinute: 120,
      endMinute: 240,
      crossesMidnight: false,
      zone: "Europe/Berlin",
    });
    expect(parseWindow("Mon-Fri 22:00-02:00 UTC")).toMatchObject({
      days: [1, 2, 3, 4, 5],
      startMinute: 1320,
      endMinute: 120,
      crossesMidnight: true,
    });
    expect(parseWindow("Sat,Sun 01:00-03:00 America/New_York").days).toEqual([0, 6]);
    expect(parseWindow("Fri-Mon 01:00-03:00 UTC").days).toEqual([0, 1, 5, 6]);
    expect(parseWindow("Sun-Sun 01:00-03:00 UTC").days).toEqual([0]);
    expect(parseWindow("daily 00:00-24:00 UTC")).toMatchObject({
      days: [0, 1, 2, 3, 4, 5, 6],
      endMinute: 1440,
    });
    expect(parseWindow("* 01:00-02:00 UTC").days).toHaveLength(7);
    expect(parseWindow("  saturday,mon-TUE   01:00-02:00   europe/berlin ")).toMatchObject({
      days: [1, 2, 6],
      zone: "Europe/Berlin",
    });
  });

  it.each([
    ["Sat 02:00-25:00 Europe/Berlin", "25:00", "`25:00` is not a time", 11],
    ["Sat 24:00-02:00 Europe/Berlin", "24:00", "`24:00` is not a time", 5],
    ["Sat 02:60-03:00 Europe/Berlin", "02:60", "`02:60` is not a time", 5],
    ["Sat 2:00-03:00 Europe/Berlin", "2:00", "`2:00` is not a time", 5],
    ["Sat 02:00 Europe/Berlin", "02:00", "is not a time range", 5],
    ["Sat 02:00-03:00-04:00 UTC", "02:00-03:00-04:00", "is not a time range", 5],
    ["Sat 02:00-02:00 UTC", "02:00", "the window would be empty", 11],
    ["Sta 02:00-04:00 Europe/Berlin", "Sta", "`Sta` is not a day", 1],
    ["Mon-Fro 02:00-04:00 UTC", "Fro", "`Fro` is not a day", 5],
    ["Sat,Sun,Hol 02:00-04:00 UTC", "Hol", "`Hol` is not a day", 9],
    ["Mon-Wed-Fri 02:00-04:00 UTC", "Mon-Wed-Fri", "not a day or a range", 1],
    ["Mon- 02:00-04:00 UTC", "Mon-", "not a day or a range", 1],
    ["Sat,,Sun 02:00-04:00 UTC", "Sat,,Sun", "an empty item", 1],
    ["Sat,daily 02:00-04:00 UTC", "daily", "stands alone", 5],
    ["Sat 02:00-04:00 Europe/Berlln", "Europe/Berlln", "not a time zone", 17],
    ["Sat 02:00-04:00 +01:00", "+01:00", "not a time zone", 17],
    ["Sat 02:00-04:00 Europe/Berlin now", "now", "one token too many", 31],
  ])("refuses %j, pointing at %j", (spec, token, problem, column) => {
    const error = refusal(() => parseWindow(spec));
    expect(error.code).toBe("WINDOW_INVALID");
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(problem);
    expect(pointedAt(error)).toBe(token);
    expect(error.where).toBe(`window ${JSON.stringify(spec)}, column ${column}`);
    expect(error.hint).toBeTruthy();
  });

  it("shows the caret under the bad token", () => {
    expect(refusal(() => parseWindow("Sat 02:00-25:00 Europe/Berlin")).message).toBe(
      "`25:00` is not a time\n  Sat 02:00-25:00 Europe/Berlin\n            ^^^^^",
    );
  });

  it("says what is missing from a short spec", () => {
    expect(refusal(() => parseWindow("Sat 02:00-04:00")).message).toContain("missing a time zone");
    expect(refusal(() => parseWindow("Sat")).message).toContain(
      "missing a time range HH:MM-HH:MM and a zone",
    );
    expect(refusal(() => parseWindow("   ")).message).toContain("the window is empty");
  });
});

describe("parseFreeze", () => {
  it("freezes whole days in a zone, the last day included", () => {
    const freeze = parseFreeze("2026-12-20..2027-01-06 Europe/Berlin");
    expect(freeze.from.toISOString()).toBe("2026-12-19T23:00:00.000Z");
    expect(freeze.to.toISOString()).toBe("2027-01-06T23:00:00.000Z");
  });

  it("takes date-times with offsets, or in the default zone", () => {
    const freeze = parseFreeze("2026-12-24T18:00Z..2026-12-27T06:00+01:00");
    expect(freeze.from.toISOString()).toBe("2026-12-24T18:00:00.000Z");
    expect(freeze.to.toISOString()).toBe("2026-12-27T05:00:00.000Z");
    expect(parseFreeze("2026-07-01T08:00..2026-07-01T17:30", "America/New_York").from.toISOString()).toBe(
      "2026-07-01T12:00:00.000Z",
    );
  });

  it.each([
    ["2026-12-20", "2026-12-20", "not a period FROM..TO"],
    ["2026-12-20..2026-13-01 UTC", "2026-13-01", "not a date on the calendar"],
    ["2026-02-29..2026-03-01 UTC", "2026-02-29", "not a date on the calendar"],
    ["2026-12-20..tomorrow UTC", "tomorrow", "not an ISO date"],
    ["2026-12-20..2026-12-21", "2026-12-20", "no offset and no zone"],
    ["2026-12-20..2026-12-21 Atlantis/Capital", "Atlantis/Capital", "not a time zone"],
    ["2026-12-21T10:00Z..2026-12-21T09:00Z", "2026-12-21T09:00Z", "not after the start"],
    ["2026-12-21T25:00Z..2026-12-22T09:00Z", "2026-12-21T25:00Z", "not a time of day"],
  ])("refuses %j, pointing at %j", (spec, token, problem) => {
    const error = refusal(() => parseFreeze(spec));
    expect(error.code).toBe("FREEZE_INVALID");
    expect(error.exitCode).toBe(2);
    expect(error.message).toContain(problem);
    expect(pointedAt(error)).toBe(token);
  });
});

describe("parseAt", () => {
  const now = new Date("2026-12-03T18:00:00Z");

  it("takes a future date-time with an offset or a zone", () => {
    expect(parseAt("2026-12-05T02:00Z", now).toISOString()).toBe("2026-12-05T02:00:00.000Z");
    expect(parseAt("2026-12-05T02:00 Europe/Berlin", now).toISOString()).toBe("2026-12-05T01:00:00.000Z");
  });

  it("refuses a time in the past, or now, as a usage error", () => {
    for (const spec of ["2026-12-03T17:59Z", "2026-12-03T18:00Z", "2026-12-03T18:30 Europe/Berlin"]) {
      const error = refusal(() => parseAt(spec, now));
      expect(error.code).toBe("AT_IN_PAST");
      expect(error.exitCode).toBe(2);
      expect(error.hint).toContain("2026-12-03T18:00:00.000Z");
    }
  });

  it("refuses a date alone and a time without a zone", () => {
    expect(pointedAt(refusal(() => parseAt("2026-12-05 UTC", now)))).toBe("2026-12-05");
    const noZone = refusal(() => parseAt("2026-12-05T02:00", now));
    expect(noZone.code).toBe("AT_INVALID");
    expect(noZone.message).toContain("no offset and no zone");
  });
});
