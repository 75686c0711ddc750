import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MirrorStateFile, type InFlightUpload } from "../../../bundle/index.js";
import type { Digest } from "../../../registry/oci/index.js";

const MiB = 1024 * 1024;
const TARGET = "registry.site:5000";
const DIGEST = `sha256:${"a".repeat(64)}` as Digest;
const OTHER = `sha256:${"b".repeat(64)}` as Digest;
const LOCATION = "https://registry.site:5000/v2/p/app/blobs/uploads/1?_state=x";

let dir: string;
let path: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-mirror-state-"));
  path = join(dir, "mirror-state.json");
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function onDisk(): Promise<{ target: string; uploads: InFlightUpload[] }> {
  return JSON.parse(await readFile(path, "utf8")) as { target: string; uploads: InFlightUpload[] };
}

describe("MirrorStateFile", () => {
  it("keeps an upload's location and offset across runs, for the same target only", async () => {
    const state = await MirrorStateFile.open(path, TARGET);
    state.record("p/app", DIGEST, { location: LOCATION, offset: 0 });
    await state.close();
    expect((await onDisk()).uploads).toEqual([
      { digest: DIGEST, repository: "p/app", location: LOCATION, offset: 0 },
    ]);
    const again = await MirrorStateFile.open(path, TARGET);
    expect(again.find("p/app", DIGEST)).toEqual({ location: LOCATION, offset: 0 });
    expect(again.find("p/other", DIGEST)).toBeUndefined();
    const elsewhere = await MirrorStateFile.open(path, "other.site:5000");
    expect(elsewhere.list()).toEqual([]);
  });

  it("rewrites an entry every 8 MiB of progress, not per chunk, and on close writes the latest", async () => {
    const state = await MirrorStateFile.open(path, TARGET);
    state.record("p/app", DIGEST, { location: LOCATION, offset: 0 });
    await state.saved();
    for (let offset = MiB; offset < 8 * MiB; offset += MiB) {
      state.record("p/app", DIGEST, { location: LOCATION, offset });
      await state.saved();
    }
    expect((await onDisk()).uploads[0]!.offset).toBe(0);
    state.record("p/app", DIGEST, { location: LOCATION, offset: 8 * MiB });
    await state.saved();
    expect((await onDisk()).uploads[0]!.offset).toBe(8 * MiB);
    // A new Location (distribution's, after a PATCH) is written at once.
    state.record("p/app", DIGEST, { location: `${LOCATION}y`, offset: 9 * MiB });
    await state.saved();
    expect((await onDisk()).uploads[0]).toMatchObject({ location: `${LOCATION}y`, offset: 9 * MiB });
    state.record("p/app", DIGEST, { location: `${LOCATION}y`, offset: 10 * MiB });
    await state.close();
    expect((await onDisk()).uploads[0]!.offset).toBe(10 * MiB);
    expect((await readdir(dir)).sort()).toEqual(["mirror-state.json"]);
  });

  it("removes the file once nothing is in flight; keeps the entries still unfinished", async () => {
    const state = await MirrorStateFile.open(path, TARGET);
    state.record("p/app", DIGEST, { location: LOCATION, offset: 0 });
    state.record("p/app", OTHER, { location: `${LOCATION}2`, offset: 0 });
    state.forget("p/app", DIGEST);
    await state.close();
    expect((await onDisk()).uploads.map((upload) => upload.digest)).toEqual([OTHER]);
    const next = await MirrorStateFile.open(path, TARGET);
    next.forget("p/app", OTHER);
    await next.close();
    expect(await readdir(dir)).toEqual([]);
  });

  it("clear drops an earlier run's entries too, and the file with them", async () => {
    const state = await MirrorStateFile.open(path, TARGET);
    state.record("p/app", DIGEST, { location: LOCATION, offset: 0 });
    await state.close();
    const next = await MirrorStateFile.open(path, TARGET);
    next.clear();
    await next.close();
    expect(await readdir(dir)).toEqual([]);
  });

  it("a damaged or foreign file counts as empty: a fresh upload is always right", async () => {
    for (const text of [
      "{ not json",
      JSON.stringify({ version: 2, target: TARGET, uploads: [] }),
      JSON.stringify({
        version: 1,
        target: TARGET,
        uploads: [{ digest: "sha256:short", repository: "p/app", location: LOCATION, offset: 1 }],
      }),
      JSON.stringify({
        version: 1,
        target: TARGET,
        uploads: [{ digest: DIGEST, repository: "p/app", location: LOCATION, offset: -1 }],
      }),
    ]) {
      await writeFile(path, text);
      expect((await MirrorStateFile.open(path, TARGET)).list(), text).toEqual([]);
    }
  });

  it("a directory it cannot write into: close says so with a typed error", async () => {
    const state = await MirrorStateFile.open(join(dir, "missing", "mirror-state.json"), TARGET);
    state.record("p/app", DIGEST, { location: LOCATION, offset: 0 });
    await expect(state.close()).rejects.toMatchObject({ code: "MIRROR_STATE_WRITE_FAILED" });
  });
});
