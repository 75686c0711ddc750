/**
 * What keeps the console's pages and uploads fast (issue 15, point 7) without changing what they show:
 * the certificate listing reused until a file changes or a minute passes, a session's last-seen time
 * written at most once a minute, and the gate an import reads a still-arriving upload through.
 */
import { rotate } from "../../../installer/pki/index.js";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CertificateList, CERTIFICATE_LIST_TTL_MS } from "../../../ui-lite/certificate-list.js";
import { ArrivalGate } from "../../../ui-lite/upload-follow.js";
import { SESSION_TOUCH_MS, SessionRecords } from "../../../ui-lite/sessions.js";
import { openConsoleSite, type ConsoleSite } from "./console-site.js";

let site: ConsoleSite;

beforeEach(async () => {
  site = await openConsoleSite();
});

afterEach(async () => {
  await site.close();
});

describe("the certificate listing", () => {
  it("is reused while the files are unchanged, and read again after a rotation or a minute", async () => {
    const list = new CertificateList(site.pki, site.clock);
    const first = await list.list();
    expect(await list.list()).toBe(first);
    await rotate(site.pki, { names: ["edge"] });
    const rotated = await list.list();
    expect(rotated).not.toBe(first);
    const serial = (all: typeof first) => all.find((c) => c.name === "edge")!.serialNumber;
    expect(serial(rotated)).not.toBe(serial(first));
    site.advance(CERTIFICATE_LIST_TTL_MS);
    const later = await list.list();
    expect(later).not.toBe(rotated);
    expect(later.find((c) => c.name === "edge")!.daysLeft).toBe(
      rotated.find((c) => c.name === "edge")!.daysLeft,
    );
  });
});

describe("a session's last-seen time", () => {
  it("is written at most once a minute, so a session idle past its limit still ends", async () => {
    const { user } = await site.users.add("ivy", "admin");
    const sessions = new SessionRecords(site.state.db, site.users, site.clock, {
      idleMs: 5 * 60_000,
      absoluteMs: 3_600_000,
    });
    const { token } = sessions.open(user);
    const seen = () =>
      (site.state.db.prepare("SELECT last_seen_at FROM ui_sessions").get() as { last_seen_at: string })
        .last_seen_at;
    const opened = seen();
    site.advance(SESSION_TOUCH_MS - 1_000);
    expect(sessions.resume(token)).toBeDefined();
    expect(seen()).toBe(opened);
    site.advance(2_000);
    expect(sessions.resume(token)).toBeDefined();
    expect(seen()).not.toBe(opened);
    site.advance(5 * 60_000 + 1);
    expect(sessions.resume(token)).toBeUndefined();
  });
});

describe("the arrival gate", () => {
  it("lets a read through once its bytes are written, and rejects one that waits past the stall time", async () => {
    const gate = new ArrivalGate(100, 200);
    await expect(gate.ready(100)).resolves.toBeUndefined();
    let through = false;
    const waiting = gate.ready(300).then(() => (through = true));
    gate.advance(299);
    await Promise.resolve();
    expect(through).toBe(false);
    gate.advance(300);
    await waiting;
    expect(through).toBe(true);
    await expect(gate.ready(400)).rejects.toMatchObject({ code: "UI_UPLOAD_STALLED" });
    await expect(gate.ready(301)).rejects.toMatchObject({ code: "UI_UPLOAD_STALLED" });
  });
});
