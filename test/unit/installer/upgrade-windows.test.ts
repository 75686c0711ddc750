import { describe, expect, it } from "vitest";
import {
  canStartAt,
  nextOccurrences,
  parseFreeze,
  parseWindow,
  type StartDecision,
  type WindowOccurrence,
} from "../../../installer/upgrade/index.js";
import { AirlockError } from "../../../registry/oci/index.js";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

function spans(occurrences: WindowOccurrence[]): string[] {
  return occurrences.map((o) => `${o.start.toISOString()} ${o.end.toISOString()}`);
}

function fits(
  windows: Parameters<typeof canStartAt>[0],
  freezes: Parameters<typeof canStartAt>[1],
  now: Date,
  run: { estimatedMs: number; marginMs: number },
): StartDecision {
  return canStartAt(windows, freezes, now, run.estimatedMs, run.marginMs);
}

function startAt(decision: StartDecision, now: Date): string {
  return decision.kind === "now" ? `now ${now.toISOString()}` : `later ${decision.at.toISOString()}`;
}

describe("nextOccurrences", () => {
  it("lists a weekly window in UTC and in its zone", () => {
    const [first, second] = nextOccurrences(
      [parseWindow("Sat 02:00-04:00 Europe/Berlin")],
      new Date("2026-12-03T18:00:00Z"),
      2,
    );
    expect(first?.start.toISOString()).toBe("2026-12-05T01:00:00.000Z");
    expect(first?.end.toISOString()).toBe("2026-12-05T03:00:00.000Z");
    expect(first?.localStart).toBe("Sat 2026-12-05 02:00 +01:00 Europe/Berlin");
    expect(first?.localEnd).toBe("Sat 2026-12-05 04:00 +01:00 Europe/Berlin");
    expect(second?.localStart).toBe("Sat 2026-12-12 02:00 +01:00 Europe/Berlin");
  });

  it("includes the window open now, even one opened the day before", () => {
    const window = parseWindow("Fri 22:00-02:00 UTC");
    const [open] = nextOccurrences([window], new Date("2026-12-05T01:00:00Z"), 1);
    expect(open?.localStart).toBe("Fri 2026-12-04 22:00 +00:00 UTC");
    expect(open?.localEnd).toBe("Sat 2026-12-05 02:00 +00:00 UTC");
    const [next] = nextOccurrences([window], new Date("2026-12-05T02:00:00Z"), 1);
    expect(next?.localStart).toBe("Fri 2026-12-11 22:00 +00:00 UTC");
  });

  it("opens a wrapping day range on each of its days, and merges windows in order", () => {
    const found = nextOccurrences(
      [parseWindow("Fri-Mon 01:00-02:00 UTC"), parseWindow("Wed 12:00-13:00 America/New_York")],
      new Date("2026-12-01T00:00:00Z"),
      6,
    );
    expect(found.map((o) => o.localStart)).toEqual([
      "Wed 2026-12-02 12:00 -05:00 America/New_York",
      "Fri 2026-12-04 01:00 +00:00 UTC",
      "Sat 2026-12-05 01:00 +00:00 UTC",
      "Sun 2026-12-06 01:00 +00:00 UTC",
      "Mon 2026-12-07 01:00 +00:00 UTC",
      "Wed 2026-12-09 12:00 -05:00 America/New_York",
    ]);
    expect(nextOccurrences([], new Date(), 3)).toEqual([]);
  });

  describe("Europe/Berlin, spring forward 2026-03-29 (02:00 → 03:00)", () => {
    it("starts a 02:30 window that does not exist that night at 03:00, keeping its end", () => {
      const found = nextOccurrences(
        [parseWindow("daily 02:30-04:00 Europe/Berlin")],
        new Date("2026-03-28T00:00Z"),
        3,
      );
      expect(found.map((o) => `${o.localStart} → ${o.localEnd}`)).toEqual([
        "Sat 2026-03-28 02:30 +01:00 Europe/Berlin → Sat 2026-03-28 04:00 +01:00 Europe/Berlin",
        "Sun 2026-03-29 03:00 +02:00 Europe/Berlin → Sun 2026-03-29 04:00 +02:00 Europe/Berlin",
        "Mon 2026-03-30 02:30 +02:00 Europe/Berlin → Mon 2026-03-30 04:00 +02:00 Europe/Berlin",
      ]);
      expect(spans(found)[1]).toBe("2026-03-29T01:00:00.000Z 2026-03-29T02:00:00.000Z");
    });

    it("skips a window wholly inside the gap that night", () => {
      const found = nextOccurrences(
        [parseWindow("daily 02:10-02:50 Europe/Berlin")],
        new Date("2026-03-28T12:00Z"),
        2,
      );
      expect(found.map((o) => o.localStart)).toEqual([
        "Mon 2026-03-30 02:10 +02:00 Europe/Berlin",
        "Tue 2026-03-31 02:10 +02:00 Europe/Berlin",
      ]);
    });

    it("keeps the local end of a window crossing midnight into the change: an hour shorter", () => {
      const [window] = nextOccurrences(
        [parseWindow("Sat 23:00-04:00 Europe/Berlin")],
        new Date("2026-03-27T00:00Z"),
        1,
      );
      expect(window?.localEnd).toBe("Sun 2026-03-29 04:00 +02:00 Europe/Berlin");
      expect((window?.end.getTime() ?? 0) - (window?.start.getTime() ?? 0)).toBe(4 * HOUR);
    });
  });

  describe("Europe/Berlin, fall back 2026-10-25 (03:00 → 02:00)", () => {
    it("opens a 02:30 window once, at the first 02:30", () => {
      const found = nextOccurrences(
        [parseWindow("daily 02:30-04:00 Europe/Berlin")],
        new Date("2026-10-24T12:00Z"),
        2,
      );
      expect(found.map((o) => `${o.localStart} → ${o.localEnd}`)).toEqual([
        "Sun 2026-10-25 02:30 +02:00 Europe/Berlin → Sun 2026-10-25 04:00 +01:00 Europe/Berlin",
        "Mon 2026-10-26 02:30 +01:00 Europe/Berlin → Mon 2026-10-26 04:00 +01:00 Europe/Berlin",
      ]);
      expect(spans(found)[0]).toBe("2026-10-25T00:30:00.000Z 2026-10-25T03:00:00.000Z");
    });

    it("keeps the local end of a window crossing midnight into the change: an hour longer", () => {
      const [window] = nextOccurrences(
        [parseWindow("Sat 23:00-04:00 Europe/Berlin")],
        new Date("2026-10-23T00:00Z"),
        1,
      );
      expect(window?.localStart).toBe("Sat 2026-10-24 23:00 +02:00 Europe/Berlin");
      expect(window?.localEnd).toBe("Sun 2026-10-25 04:00 +01:00 Europe/Berlin");
      expect((window?.end.getTime() ?? 0) - (window?.start.getTime() ?? 0)).toBe(6 * HOUR);
    });
  });

  describe("America/New_York, spring forward 2026-03-08 (02:00 → 03:00)", () => {
    it("starts a 02:30 window that does not exist that night at 03:00", () => {
      const found = nextOccurrences(
        [parseWindow("Sun 02:30-05:00 America/New_York")],
        new Date("2026-03-07T00:00Z"),
        2,
      );
      expect(found[0]?.localStart).toBe("Sun 2026-03-08 03:00 -04:00 America/New_York");
      expect(found[0]?.start.toISOString()).toBe("2026-03-08T07:00:00.000Z");
      expect(found[0]?.end.toISOString()).toBe("2026-03-08T09:00:00.000Z");
      expect(found[1]?.localStart).toBe("Sun 2026-03-15 02:30 -04:00 America/New_York");
    });

    it("keeps the local end of a window crossing midnight into the change", () => {
      const [window] = nextOccurrences(
        [parseWindow("Sat 22:00-03:30 America/New_York")],
        new Date("2026-03-06T00:00Z"),
        1,
      );
      expect(window?.localEnd).toBe("Sun 2026-03-08 03:30 -04:00 America/New_York");
      expect((window?.end.getTime() ?? 0) - (window?.start.getTime() ?? 0)).toBe(4.5 * HOUR);
    });
  });

  describe("America/New_York, fall back 2026-11-01 (02:00 → 01:00)", () => {
    it("opens a 01:30 window once, at the first 01:30", () => {
      const found = nextOccurrences(
        [parseWindow("daily 01:30-03:00 America/New_York")],
        new Date("2026-10-31T12:00Z"),
        2,
      );
      expect(found[0]?.localStart).toBe("Sun 2026-11-01 01:30 -04:00 America/New_York");
      expect(found[0]?.localEnd).toBe("Sun 2026-11-01 03:00 -05:00 America/New_York");
      expect((found[0]?.end.getTime() ?? 0) - (found[0]?.start.getTime() ?? 0)).toBe(2.5 * HOUR);
      expect(found[1]?.localStart).toBe("Mon 2026-11-02 01:30 -05:00 America/New_York");
    });

    it("keeps the local end of a window crossing midnight into the change: an hour longer", () => {
      const [window] = nextOccurrences(
        [parseWindow("Sat 23:00-02:00 America/New_York")],
        new Date("2026-10-30T00:00Z"),
        1,
      );
      expect(window?.localEnd).toBe("Sun 2026-11-01 02:00 -05:00 America/New_York");
      expect((window?.end.getTime() ?? 0) - (window?.start.getTime() ?? 0)).toBe(4 * HOUR);
    });
  });
});

describe("canStartAt", () => {
  const saturday = parseWindow("Sat 02:00-04:00 Europe/Berlin");
  const fit = { estimatedMs: 30 * MINUTE, marginMs: 15 * MINUTE };

  it("starts now inside a window the run fits in", () => {
    const now = new Date("2026-12-05T01:30:00Z"); // 02:30 Berlin
    const decision = fits([saturday], [], now, fit);
    expect(startAt(decision, now)).toBe("now 2026-12-05T01:30:00.000Z");
    expect(decision.occurrence.localStart).toBe("Sat 2026-12-05 02:00 +01:00 Europe/Berlin");
  });

  it("starts at a window's opening, when outside one", () => {
    const now = new Date("2026-12-03T18:00:00Z");
    expect(startAt(fits([saturday], [], now, fit), now)).toBe("later 2026-12-05T01:00:00.000Z");
  });

  it("waits for the next window when the estimate and margin no longer fit in this one", () => {
    // 03:15 Berlin + 45 min = 04:00: just fits; at 03:16 it does not.
    const justInTime = new Date("2026-12-05T02:15:00Z");
    expect(startAt(fits([saturday], [], justInTime, fit), justInTime)).toBe("now 2026-12-05T02:15:00.000Z");
    const late = new Date("2026-12-05T02:16:00Z");
    expect(startAt(fits([saturday], [], late, fit), late)).toBe("later 2026-12-12T01:00:00.000Z");
  });

  it("skips windows too short for the run, and says when none fits", () => {
    const now = new Date("2026-12-03T18:00:00Z");
    const windows = [saturday, parseWindow("Sun 01:00-06:00 Europe/Berlin")];
    const long = { estimatedMs: 3 * HOUR, marginMs: 30 * MINUTE };
    expect(startAt(fits(windows, [], now, long), now)).toBe("later 2026-12-06T00:00:00.000Z");
    let refused: unknown;
    try {
      fits([saturday], [], now, long);
    } catch (error) {
      refused = error;
    }
    expect(refused).toBeInstanceOf(AirlockError);
    expect((refused as AirlockError).code).toBe("UPGRADE_NO_WINDOW_FITS");
    expect(() => fits([], [], now, fit)).toThrow(/no window/);
  });

  it("lets a run go on from one window into one that opens as it closes", () => {
    const now = new Date("2026-12-03T18:00:00Z");
    const windows = [parseWindow("Sat 20:00-24:00 UTC"), parseWindow("Sun 00:00-04:00 UTC")];
    const decision = fits(windows, [], now, { estimatedMs: 6 * HOUR, marginMs: HOUR });
    expect(startAt(decision, now)).toBe("later 2026-12-05T20:00:00.000Z");
    expect(decision.occurrence.window.spec).toBe("Sat 20:00-24:00 UTC");
    // A freeze on Saturday evening: it starts in its last half hour and runs on into Sunday's.
    const evening = parseFreeze("2026-12-05T19:00Z..2026-12-05T23:30Z");
    const later = fits(windows, [evening], now, { estimatedMs: 3 * HOUR, marginMs: 30 * MINUTE });
    expect(startAt(later, now)).toBe("later 2026-12-05T23:30:00.000Z");
    // All of Saturday's window frozen: the run starts in Sunday's, and the decision names that one.
    const saturdayFrozen = parseFreeze("2026-12-05T19:00Z..2026-12-06T00:00Z");
    const sunday = fits(windows, [saturdayFrozen], now, { estimatedMs: 3 * HOUR, marginMs: 0 });
    expect(startAt(sunday, now)).toBe("later 2026-12-06T00:00:00.000Z");
    expect(sunday.occurrence.window.spec).toBe("Sun 00:00-04:00 UTC");
    // 23:30 + 5 h is past Sunday's 04:00: the next Saturday.
    const nextWeek = fits(windows, [evening], now, { estimatedMs: 3 * HOUR, marginMs: 2 * HOUR });
    expect(startAt(nextWeek, now)).toBe("later 2026-12-12T20:00:00.000Z");
  });

  it("finds the first gap between freezes in an always-open window, within the horizon", () => {
    const always = parseWindow("daily 00:00-24:00 UTC");
    const now = new Date("2026-12-03T18:00:00Z");
    const freezes = [
      parseFreeze("2026-12-01..2026-12-20 UTC"),
      parseFreeze("2026-12-21T02:00Z..2027-01-10T00:00Z"),
    ];
    const run = { estimatedMs: 90 * MINUTE, marginMs: 30 * MINUTE };
    expect(startAt(fits([always], freezes, now, run), now)).toBe("later 2026-12-21T00:00:00.000Z");
    const longer = { estimatedMs: 2 * HOUR, marginMs: 30 * MINUTE };
    expect(startAt(fits([always], freezes, now, longer), now)).toBe("later 2027-01-10T00:00:00.000Z");
    expect(() =>
      canStartAt([always], freezes, now, longer.estimatedMs, longer.marginMs, { horizonMs: 30 * 24 * HOUR }),
    ).toThrow(/no window in the next 30 days/);
  });

  it("counts the real length of a window shortened by spring forward", () => {
    // Sat 23:00 → Sun 04:00 is 4 h on 2026-03-28/29, 5 h the week before.
    const window = parseWindow("Sat 23:00-04:00 Europe/Berlin");
    const run = { estimatedMs: 4 * HOUR + 30 * MINUTE, marginMs: 0 };
    const now = new Date("2026-03-21T00:00:00Z");
    expect(startAt(fits([window], [], now, run), now)).toBe("later 2026-03-21T22:00:00.000Z");
    const after = new Date("2026-03-22T12:00:00Z");
    expect(startAt(fits([window], [], after, run), after)).toBe("later 2026-04-04T21:00:00.000Z");
  });

  it("does not start in a freeze, nor a run that would reach into one", () => {
    const now = new Date("2026-12-03T18:00:00Z");
    const holidays = parseFreeze("2026-12-05..2026-12-13 Europe/Berlin");
    expect(startAt(fits([saturday], [holidays], now, fit), now)).toBe("later 2026-12-19T01:00:00.000Z");
    // A freeze from 02:30 Berlin: a run starting at 02:00 would overlap it; one after it ends fits.
    const afternoon = parseFreeze("2026-12-05T02:30..2026-12-05T03:00 Europe/Berlin");
    expect(startAt(fits([saturday], [afternoon], now, fit), now)).toBe("later 2026-12-05T02:00:00.000Z");
    const inFreeze = new Date("2026-12-05T01:40:00Z");
    expect(startAt(fits([saturday], [afternoon], inFreeze, fit), inFreeze)).toBe(
      "later 2026-12-05T02:00:00.000Z",
    );
  });

  it("starts a spring-forward 02:30 window's run at 03:00, once, in both zones", () => {
    const run = { estimatedMs: 20 * MINUTE, marginMs: 10 * MINUTE };
    const berlin = new Date("2026-03-28T12:00:00Z");
    const berlinWindow = parseWindow("Sun 02:30-04:00 Europe/Berlin");
    expect(startAt(fits([berlinWindow], [], berlin, run), berlin)).toBe("later 2026-03-29T01:00:00.000Z");
    const york = new Date("2026-03-07T12:00:00Z");
    const yorkWindow = parseWindow("Sun 02:30-04:00 America/New_York");
    expect(startAt(fits([yorkWindow], [], york, run), york)).toBe("later 2026-03-08T07:00:00.000Z");
  });

  it("starts a fall-back window at its first occurrence; the repeated hour is the same opening", () => {
    const run = { estimatedMs: 20 * MINUTE, marginMs: 10 * MINUTE };
    const window = parseWindow("Sun 02:30-03:30 Europe/Berlin");
    const before = new Date("2026-10-24T12:00:00Z");
    const first = fits([window], [], before, run);
    expect(startAt(first, before)).toBe("later 2026-10-25T00:30:00.000Z");
    // At the second 02:30 (an hour later) the same opening is still open, not a new one.
    const second = new Date("2026-10-25T01:30:00Z");
    const again = fits([window], [], second, run);
    expect(startAt(again, second)).toBe("now 2026-10-25T01:30:00.000Z");
    expect(again.occurrence.start).toEqual(first.occurrence.start);
    const york = parseWindow("Sun 01:30-02:30 America/New_York");
    const yorkBefore = new Date("2026-10-31T12:00:00Z");
    expect(startAt(fits([york], [], yorkBefore, run), yorkBefore)).toBe("later 2026-11-01T05:30:00.000Z");
  });
});
