import { z } from "zod";
import { isDigest, type Digest } from "../registry/oci/index.js";
import { metadataInvalid } from "./entry-checks.js";
import {
  BLOB_DIR,
  BUNDLE_MEDIA_TYPE,
  FILE_MODES,
  METADATA_ENTRY,
  SIGNATURE_ENTRY,
  entryMtime,
  entryNameProblem,
  type BundleMetadata,
} from "./format.js";

/**
 * The one schema of `airlock.json`: verify, inspect, import, diff and mirror all read a bundle's
 * metadata through parseBundleMetadata, so what passes verify is what the others can use.
 */
const digest = z.custom<Digest>((value) => typeof value === "string" && isDigest(value), {
  error: "must be a digest: sha256: and 64 lowercase hex characters",
});
const count = z.int().nonnegative();
const text = z.string().min(1);
/** The largest mtime a ustar header's 11 octal digits hold. */
const MAX_MTIME = 8 ** 11 - 1;

const referrerSchema = z.object({
  digest,
  mediaType: text,
  size: count,
  artifactType: text.optional(),
  subject: digest,
});

const imageSchema = z.object({
  ref: text,
  digest,
  mediaType: text,
  size: count,
  totalBytes: count,
  blobs: count,
  platforms: z.array(z.string()),
  kind: z.enum(["image", "pack"]),
  sourceDigest: digest,
  referrers: z.array(referrerSchema).optional(),
});

const fileSchema = z.object({
  path: text,
  size: count,
  sha256: z.string().regex(/^[a-f0-9]{64}$/, { error: "must be 64 lowercase hex characters" }),
  mode: z.literal(FILE_MODES, { error: "must be 420 (0644) or 493 (0755): build writes no other mode" }),
});

// Loose at the top: fields a later build adds stay in the parsed document, as they are in the signed one.
const metadataSchema = z
  .looseObject({
    schemaVersion: z.literal(1),
    mediaType: z.literal(BUNDLE_MEDIA_TYPE),
    name: text,
    version: text,
    upgradeFrom: text.optional(),
    upgradeGates: z
      .array(
        z.looseObject({
          name: text,
          http: z.object({ url: text, status: z.int().optional() }).optional(),
          job: z
            .looseObject({
              apiVersion: z.literal("batch/v1"),
              kind: z.literal("Job"),
              metadata: z.record(z.string(), z.unknown()).optional(),
              spec: z.record(z.string(), z.unknown()),
            })
            .optional(),
          timeoutSeconds: z.int().positive().optional(),
        }),
      )
      .optional(),
    created: z.iso.datetime().refine((created) => {
      const mtime = entryMtime(created);
      return mtime >= 0 && mtime <= MAX_MTIME;
    }, "must lie between 1970 and the year 2242 (a tar header's mtime)"),
    base: z
      .object({
        name: text,
        version: text,
        digest,
        blobs: z.array(z.object({ digest, size: count })),
      })
      .optional(),
    images: z.array(imageSchema),
    packs: z.array(z.object({ name: text, version: text, ref: text, digest })),
    files: z.array(fileSchema),
    totals: z.object({ files: count, bytes: count, images: count, blobs: count, blobBytes: count }),
  })
  .superRefine((metadata, ctx) => {
    const paths = new Set<string>();
    for (const [index, file] of metadata.files.entries()) {
      const path = ["files", index, "path"];
      const problem = entryNameProblem(file.path);
      if (problem !== undefined) ctx.addIssue({ code: "custom", path, message: `${file.path} ${problem}` });
      else if ([METADATA_ENTRY, SIGNATURE_ENTRY].includes(file.path) || paths.has(file.path)) {
        ctx.addIssue({ code: "custom", path, message: `${file.path} is listed twice or lists itself` });
      } else if (file.path.startsWith(BLOB_DIR) && file.path !== `${BLOB_DIR}${file.sha256}`) {
        ctx.addIssue({
          code: "custom",
          path,
          message: `${file.path} is a blob whose name is not its sha256`,
        });
      }
      paths.add(file.path);
    }
    if (metadata.totals.files !== metadata.files.length) {
      ctx.addIssue({
        code: "custom",
        path: ["totals", "files"],
        message: "is not the number of files listed",
      });
    }
    if (metadata.totals.bytes !== metadata.files.reduce((sum, file) => sum + file.size, 0)) {
      ctx.addIssue({
        code: "custom",
        path: ["totals", "bytes"],
        message: "is not the sum of the files' sizes",
      });
    }
  }) satisfies z.ZodType<BundleMetadata>;

/** `files[3].path`, `base.name`: a field as a reader finds it in the document. */
function fieldPath(path: readonly PropertyKey[]): string {
  return path
    .map((segment, index) =>
      typeof segment === "number" ? `[${segment}]` : `${index === 0 ? "" : "."}${String(segment)}`,
    )
    .join("");
}

/** Parses and checks a bundle's airlock.json; the error names the first bad field by its path. */
export function parseBundleMetadata(bytes: Uint8Array, where: string): BundleMetadata {
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (error) {
    throw metadataInvalid(`not valid JSON (${(error as Error).message})`, where);
  }
  const result = metadataSchema.safeParse(doc);
  if (result.success) return result.data;
  const [first, ...others] = result.error.issues;
  const field = first!.path.length === 0 ? "" : `${fieldPath(first!.path)}: `;
  const more = others.length === 0 ? "" : ` (and ${others.length} more problems)`;
  throw metadataInvalid(`${field}${first!.message}${more}`, where);
}
