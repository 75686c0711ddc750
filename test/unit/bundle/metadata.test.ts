import { describe, expect, it } from "vitest";
import { parseBundleMetadata } from "../../../bundle/metadata.js";
import { BUNDLE_MEDIA_TYPE, type BundleMetadata, type BundleReferrer } from "../../../bundle/format.js";
import type { AirlockError } from "../../../registry/oci/index.js";

const HEX = "a".repeat(64);
const OTHER = "b".repeat(64);

function valid(): BundleMetadata {
  return {
    schemaVersion: 1,
    mediaType: BUNDLE_MEDIA_TYPE,
    name: "mgmt",
    version: "4.5.0",
    upgradeFrom: ">=4.4.0 <4.5.0",
    created: "2026-11-01T00:00:00.000Z",
    images: [
      {
        ref: "hubble/msgbroker:4.5.0",
        digest: `sha256:${HEX}`,
        mediaType: "application/vnd.oci.image.manifest.v1+json",
        size: 500,
        totalBytes: 1500,
        blobs: 2,
        platforms: ["linux/amd64"],
        kind: "image",
        sourceDigest: `sha256:${HEX}`,
        referrers: [
          {
            digest: `sha256:${OTHER}`,
            mediaType: "application/vnd.oci.image.manifest.v1+json",
            size: 300,
            subject: `sha256:${HEX}`,
          },
        ],
      },
    ],
    packs: [],
    files: [
      { path: `blobs/sha256/${HEX}`, size: 1000, sha256: HEX, mode: 0o644 },
      { path: "bin/k3s", size: 24, sha256: OTHER, mode: 0o755 },
    ],
    totals: { files: 2, bytes: 1024, images: 1, blobs: 1, blobBytes: 1000 },
  };
}

function parse(doc: unknown): BundleMetadata {
  return parseBundleMetadata(new TextEncoder().encode(JSON.stringify(doc)), "x.airlock.tar");
}

function refusal(doc: unknown): AirlockError {
  try {
    parse(doc);
  } catch (error) {
    return error as AirlockError;
  }
  throw new Error("the document was accepted");
}

function edited(edit: (doc: Record<string, unknown> & BundleMetadata) => void): unknown {
  const doc = valid() as Record<string, unknown> & BundleMetadata;
  edit(doc);
  return doc;
}

describe("parseBundleMetadata", () => {
  it("accepts what build writes, keeping fields a later build adds", () => {
    expect(parse(valid())).toEqual(valid());
    const withBase = edited((doc) => {
      doc.base = {
        name: "mgmt",
        version: "4.4.0",
        digest: `sha256:${HEX}`,
        blobs: [{ digest: `sha256:${OTHER}`, size: 5 }],
      };
      doc.sizing = { cpus: 4 };
    });
    expect(parse(withBase)).toEqual(withBase);
  });

  it.each([
    ['"base": {}', (doc: Record<string, unknown>) => (doc.base = {}), "base.name: "],
    [
      "base blobs with a bad digest",
      (doc: Record<string, unknown>) =>
        (doc.base = {
          name: "m",
          version: "1",
          digest: `sha256:${HEX}`,
          blobs: [{ digest: "md5:x", size: 1 }],
        }),
      "base.blobs[0].digest: must be a digest",
    ],
    ["no name", (doc: Record<string, unknown>) => delete doc.name, "name: "],
    ["another schemaVersion", (doc: Record<string, unknown>) => (doc.schemaVersion = 2), "schemaVersion: "],
    [
      "another mediaType",
      (doc: Record<string, unknown>) => (doc.mediaType = "application/json"),
      "mediaType: ",
    ],
    [
      "created that is no time",
      (doc: Record<string, unknown>) => (doc.created = "last tuesday"),
      "created: ",
    ],
    [
      "created before 1970",
      (doc: Record<string, unknown>) => (doc.created = "1969-12-31T23:59:59Z"),
      "created: must lie between 1970",
    ],
    [
      "a setuid file mode",
      (doc: BundleMetadata) => (doc.files[1]!.mode = 0o4755),
      "files[1].mode: must be 420 (0644) or 493 (0755)",
    ],
    ["a world-writable file mode", (doc: BundleMetadata) => (doc.files[0]!.mode = 0o666), "files[0].mode: "],
    ["a negative size", (doc: BundleMetadata) => (doc.files[1]!.size = -1), "files[1].size: "],
    ["a fractional size", (doc: BundleMetadata) => (doc.files[1]!.size = 1.5), "files[1].size: "],
    [
      "an uppercase sha256",
      (doc: BundleMetadata) => (doc.files[1]!.sha256 = OTHER.toUpperCase()),
      "files[1].sha256: must be 64 lowercase hex",
    ],
    [
      "a path climbing out",
      (doc: BundleMetadata) => (doc.files[1]!.path = "bin/../../etc/passwd"),
      "files[1].path: bin/../../etc/passwd climbs out of the bundle",
    ],
    [
      "a path listed twice",
      (doc: BundleMetadata) => (doc.files[1]!.path = `blobs/sha256/${HEX}`),
      "files[1].path: ",
    ],
    [
      "airlock.json listing itself",
      (doc: BundleMetadata) => (doc.files[1]!.path = "airlock.json"),
      "files[1].path: airlock.json is listed twice or lists itself",
    ],
    [
      "a blob not named by its digest",
      (doc: BundleMetadata) => (doc.files[0]!.sha256 = OTHER),
      "files[0].path: blobs/sha256/",
    ],
    [
      "an image without a digest",
      (doc: BundleMetadata) => delete (doc.images[0] as Partial<BundleMetadata["images"][0]>).digest,
      "images[0].digest: ",
    ],
    [
      "an unknown image kind",
      (doc: Record<string, unknown>) => ((doc.images as { kind: string }[])[0]!.kind = "chart"),
      "images[0].kind: ",
    ],
    [
      "a referrer without a subject",
      (doc: BundleMetadata) => delete (doc.images[0]!.referrers![0] as Partial<BundleReferrer>).subject,
      "images[0].referrers[0].subject: ",
    ],
    ["packs not a list", (doc: Record<string, unknown>) => (doc.packs = {}), "packs: "],
    ["totals missing", (doc: Record<string, unknown>) => delete doc.totals, "totals: "],
    [
      "totals.files not the count of files",
      (doc: BundleMetadata) => (doc.totals.files = 3),
      "totals.files: is not the number of files listed",
    ],
    [
      "totals.bytes not their sum",
      (doc: BundleMetadata) => (doc.totals.bytes = 1),
      "totals.bytes: is not the sum",
    ],
  ] as [string, (doc: never) => void, string][])(
    "%s is BUNDLE_METADATA_INVALID naming the field",
    (_title, edit, says) => {
      const error = refusal(edited(edit as (doc: Record<string, unknown> & BundleMetadata) => void));
      expect(error.code).toBe("BUNDLE_METADATA_INVALID");
      expect(error.message).toContain(`airlock.json: ${says}`);
      expect(error.where).toBe("x.airlock.tar");
      expect(error.hint).toContain("vendor");
    },
  );

  it("names the first problem and counts the others", () => {
    const error = refusal(
      edited((doc) => {
        delete (doc as Partial<BundleMetadata>).name;
        delete (doc as Partial<BundleMetadata>).version;
      }),
    );
    expect(error.message).toMatch(/^airlock\.json: name: .* \(and 1 more problems\)$/);
  });

  it("refuses what is not JSON, or not UTF-8, or not an object", () => {
    for (const bytes of [
      Buffer.from("{"),
      Buffer.from([0x7b, 0xff, 0x7d]),
      Buffer.from("[]"),
      Buffer.from("null"),
    ]) {
      expect(() => parseBundleMetadata(bytes, "x")).toThrow(
        expect.objectContaining({ code: "BUNDLE_METADATA_INVALID" }),
      );
    }
  });
});
