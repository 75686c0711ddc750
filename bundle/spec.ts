import { readFile } from "node:fs/promises";
import { basename, dirname, resolve } from "node:path";
import { valid, validRange } from "semver";
import { LineCounter, isAlias, isMap, isNode, isScalar, isSeq, parseDocument, type Document } from "yaml";
import type { BundleUpgradeGate } from "./format.js";
import { z } from "zod";
import {
  AirlockError,
  errnoCode,
  isDigest,
  isRegistryHost,
  parsePlatform,
  parseReference,
  type Digest,
  type Platform,
  fieldIssuesError,
  fieldIssuesOf,
  schemaIssueMessage,
  type FieldIssue,
} from "../registry/oci/index.js";

export type ImageSourceSpec =
  | { transport: "oci"; path: string; ref: string | undefined }
  | { transport: "oci-archive"; path: string; ref: string | undefined }
  | { transport: "docker-archive"; path: string; ref: string | undefined }
  | RegistrySourceSpec;

/** `docker://HOST[:PORT]/REPOSITORY(:TAG|@DIGEST)`: an image in a registry, as skopeo names it. */
export interface RegistrySourceSpec {
  transport: "docker";
  /** `host[:port]` */
  registry: string;
  repository: string;
  /** The tag or digest to pull. */
  ref: string;
}

/** How to reach one registry (`registries:` in bundle.yaml), paths resolved. */
export interface RegistrySpec {
  /** Plain HTTP, no TLS. */
  insecureHttp: boolean;
  /** PEM of the CA(s) the registry's certificate chains to, trusted beside the system's. */
  caFile: string | undefined;
  /** Accept any certificate. */
  insecureSkipTlsVerify: boolean;
  /** A docker-style auth.json holding the registry's credentials. */
  authFile: string | undefined;
}

export interface ImageSpec {
  /** The image's name inside the bundle, `repository:tag`. */
  ref: string;
  source: ImageSourceSpec;
  /** Pin of the source's top manifest or index digest. */
  digest: Digest | undefined;
  platforms: Platform[] | undefined;
  /** Also bring the manifests that refer to the image (signatures, SBOMs) from the registry. */
  referrers: boolean;
}

export interface PackSpec {
  path: string;
}

export interface FileSpec {
  path: string;
  /** Entry name under `bin/`. */
  name: string;
  /** Bare lowercase hex. */
  sha256: string | undefined;
  mode: 0o644 | 0o755;
}

export interface BundleSpec {
  name: string;
  version: string;
  upgradeFrom: string | undefined;
  upgradeGates: BundleUpgradeGate[];
  /** ISO 8601 in UTC, as `Date.prototype.toISOString` writes it. */
  created: string | undefined;
  images: ImageSpec[];
  packs: PackSpec[];
  manifests: string | undefined;
  files: FileSpec[];
  /** Connection settings by registry `host[:port]`. */
  registries: Record<string, RegistrySpec>;
  /** Absolute directory of the spec file; every path above is resolved against it. */
  specDir: string;
}

const IMAGE_TRANSPORTS = ["oci", "oci-archive", "docker-archive"] as const;
const BUNDLE_NAME_PATTERN = /^[a-z0-9][a-z0-9-]*$/;
const SHA256_HEX_PATTERN = /^[a-f0-9]{64}$/;
const ENTRY_SEGMENT_PATTERN = /^[A-Za-z0-9._+-]+$/;

/** What the operator is told to do, by field (list indexes written as `[]`). */
const FIELD_HINTS: Record<string, string> = {
  name: "a bundle name is lowercase letters, digits and '-', starting with a letter or digit, at most 63 characters",
  version: "write a semantic version such as 4.5.0 (no leading 'v')",
  upgradeFrom: 'write a semver range such as ">=4.4.0 <4.5.0"',
  created: "write an RFC 3339 timestamp with a zone, such as 2026-11-01T00:00:00Z",
  "images[].ref":
    "write the image's name inside the bundle as repository:tag, e.g. hubble/msgbroker:4.5.0; the registry host comes from where the bundle is served, the digest from digest:",
  "images[].source":
    "supported sources: docker://HOST[:PORT]/REPOSITORY:TAG or docker://HOST[:PORT]/REPOSITORY@sha256:…, oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:REF] (paths containing ':' are not supported)",
  "images[].digest":
    "a digest is sha256: followed by 64 lowercase hex characters (sha512: and 128 also work)",
  "images[].platforms":
    "list platforms as os/architecture[/variant], e.g. [linux/amd64, linux/arm64], or leave platforms out",
  "images[].platforms[]": "write a platform as os/architecture[/variant], e.g. linux/amd64 or linux/arm64/v8",
  "images[].referrers":
    "referrers: true asks the source registry's referrers API, so it needs a docker:// source",
  "registries[*]":
    "a registries: key is the host[:port] an image's docker:// source names, e.g. registry.example.com:5000",
  "registries[*].insecureHttp":
    "insecureHttp: true is plain HTTP; it cannot be combined with caFile or insecureSkipTlsVerify, which are about TLS",
  "files[].path":
    "set name: to a name of letters, digits and . _ + - when the file's own name has other characters",
  "files[].name":
    "a name is a relative path under bin/ whose segments are letters, digits and . _ + - (no '..', '.', or empty segments)",
  "files[].sha256": "write the bare lowercase hex that sha256sum prints (64 characters, no sha256: prefix)",
  "files[].mode": "write mode: 0644 (the default) or 0755",
  "upgradeGates[]":
    "a gate is name: plus exactly one of http: { url, status } or job: (a batch/v1 Job manifest), and optionally timeoutSeconds:",
  "upgradeGates[].name": "a gate name is lowercase letters, digits and '-', at most 40 characters",
};
const SCHEMA_HINT = "bundle.schema.json describes every field of bundle.yaml";

/** The failure of a field parser below; `parsedBy` turns its message into an issue at that field. */
function invalid(message: string): AirlockError {
  return new AirlockError("SPEC_INVALID", message);
}

function parseStrictSemver(value: string): string {
  // `valid` strips build metadata and tolerates a leading "v" or whitespace; strict means canonical as written.
  if (valid(value) !== value.split("+", 1)[0])
    throw invalid(`not a semantic version: ${JSON.stringify(value)}`);
  return value;
}

function parseSemverRange(value: string): string {
  // `validRange` reads an empty string as "*", which would silently allow upgrades from anything.
  if (value.trim() === "" || validRange(value) === null) {
    throw invalid(`not a semver range: ${JSON.stringify(value)}`);
  }
  return value;
}

function parseBundleImageRef(value: string): string {
  const reference = parseReference(value);
  if (reference.registry !== undefined) {
    throw invalid(`${JSON.stringify(value)} names registry ${reference.registry}; give only repository:tag`);
  }
  if (reference.digest !== undefined) {
    throw invalid(`${JSON.stringify(value)} carries a digest; give only repository:tag and pin with digest:`);
  }
  // parseReference fills in "latest" when no tag is written; an image in a bundle must name its tag.
  if (!value.endsWith(`:${reference.tag}`)) throw invalid(`${JSON.stringify(value)} has no tag`);
  return value;
}

function isImageTransport(value: string): value is (typeof IMAGE_TRANSPORTS)[number] {
  return (IMAGE_TRANSPORTS as readonly string[]).includes(value);
}

const REGISTRY_SCHEME = "docker://";

/** `docker://HOST[:PORT]/REPOSITORY(:TAG|@DIGEST)`: exactly one of tag or digest, so what is pulled is named. */
function parseRegistrySource(value: string): RegistrySourceSpec {
  const written = value.slice(REGISTRY_SCHEME.length);
  const reference = parseReference(written);
  if (reference.registry === undefined) {
    throw invalid(
      `${JSON.stringify(value)} names no registry host; write docker://HOST[:PORT]/REPOSITORY:TAG`,
    );
  }
  if (reference.digest !== undefined && reference.tag !== undefined) {
    throw invalid(
      `${JSON.stringify(value)} names both a tag and a digest; give one (pin a tag with digest:)`,
    );
  }
  // parseReference fills in "latest" when neither is written; a moving default makes builds drift.
  if (reference.digest === undefined && !written.endsWith(`:${reference.tag}`)) {
    throw invalid(`${JSON.stringify(value)} names no tag or digest`);
  }
  return {
    transport: "docker",
    registry: reference.registry,
    repository: reference.repository,
    ref: reference.digest ?? reference.tag!,
  };
}

/** `TRANSPORT:PATH[:REF]`, split at the first two colons: REF itself may hold colons (`hubble/x:1.0`). */
function parseImageSource(value: string): ImageSourceSpec {
  if (value.startsWith(REGISTRY_SCHEME)) return parseRegistrySource(value);
  const transportEnd = value.indexOf(":");
  const transport = value.slice(0, Math.max(transportEnd, 0));
  if (!isImageTransport(transport)) throw invalid(`unsupported image source ${JSON.stringify(value)}`);
  const location = value.slice(transportEnd + 1);
  const pathEnd = location.indexOf(":");
  const path = pathEnd < 0 ? location : location.slice(0, pathEnd);
  const ref = pathEnd < 0 ? undefined : location.slice(pathEnd + 1);
  if (path === "") throw invalid(`image source ${JSON.stringify(value)} names no path`);
  if (ref === "") throw invalid(`image source ${JSON.stringify(value)} ends in ':' with no reference`);
  return { transport, path, ref };
}

function parseDigestPin(value: string): Digest {
  if (!isDigest(value)) throw invalid(`expected sha256:<64 hex>, got ${JSON.stringify(value)}`);
  return value;
}

function isEntryName(value: string): boolean {
  return value
    .split("/")
    .every((segment) => ENTRY_SEGMENT_PATTERN.test(segment) && segment !== "." && segment !== "..");
}

function parseEntryName(value: string): string {
  if (!isEntryName(value)) {
    throw invalid(`${JSON.stringify(value)} is not a relative path of safe segments`);
  }
  return value;
}

/** Adapts a parser to a zod transform, so its failure is an issue at the field being parsed. */
function parsedBy<T>(parse: (value: string) => T) {
  return (value: string, ctx: z.RefinementCtx): T => {
    try {
      return parse(value);
    } catch (error) {
      if (!(error instanceof AirlockError)) throw error;
      ctx.addIssue({ code: "custom", message: error.message, input: value });
      return z.NEVER;
    }
  };
}

const imageSchema = z.strictObject({
  ref: z.string().transform(parsedBy(parseBundleImageRef)).meta({
    description: "The image's name inside the bundle, repository:tag (no registry host, no digest).",
  }),
  source: z.string().transform(parsedBy(parseImageSource)).meta({
    description:
      "Where the image comes from: docker://HOST[:PORT]/REPOSITORY(:TAG|@DIGEST) (a registry), oci:DIR[:REF], oci-archive:FILE[:REF] or docker-archive:FILE[:REF].",
  }),
  digest: z
    .string()
    .transform(parsedBy(parseDigestPin))
    .optional()
    .meta({ description: "Pin of the source's top manifest or index digest, sha256:<64 hex>." }),
  platforms: z
    .array(z.string().transform(parsedBy((value) => parsePlatform(value))))
    .min(1, { error: "must list at least one platform" })
    .optional()
    .meta({ description: "Platforms to take from a multi-platform source, os/architecture[/variant]." }),
  referrers: z.boolean().default(false).meta({
    description:
      "Also bring the manifests that refer to the image and each kept platform (signatures, SBOMs: the registry's referrers API), with their blobs. docker:// sources only.",
  }),
});

const registrySchema = z.strictObject({
  insecureHttp: z.boolean().default(false).meta({
    description:
      "Plain HTTP, no TLS (as --insecure-registry HOST): only for a registry that offers nothing else.",
  }),
  caFile: z.string().min(1, { error: "must not be empty" }).optional().meta({
    description: "PEM file of the CA(s) the registry's certificate chains to, trusted beside the system's.",
  }),
  insecureSkipTlsVerify: z
    .boolean()
    .default(false)
    .meta({ description: "Accept any certificate the registry presents: an explicit opt-in." }),
  authFile: z.string().min(1, { error: "must not be empty" }).optional().meta({
    description:
      "docker-style auth.json with the registry's credentials (as `skopeo login` writes it); default: --authfile, $REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json.",
  }),
});

const packSchema = z.strictObject({
  path: z
    .string()
    .min(1, { error: "must not be empty" })
    .meta({ description: "Directory holding pack.yaml, templates and values.yaml." }),
});

const GATE_NAME_PATTERN = /^[a-z0-9][a-z0-9-]*$/;

const upgradeGateSchema = z
  .strictObject({
    name: z
      .string()
      .max(40, { error: "must be at most 40 characters" })
      .regex(GATE_NAME_PATTERN, { error: "must be lowercase letters, digits and '-'" })
      .meta({ description: "The gate's name, as the run records it (http:NAME, job:NAME)." }),
    http: z
      .strictObject({
        url: z.url({ protocol: /^https?$/, error: "expected an http:// or https:// URL" }),
        status: z.int().min(100).max(599).optional(),
      })
      .optional()
      .meta({ description: "GET url must answer status (default 200)." }),
    job: z
      .looseObject({
        apiVersion: z.literal("batch/v1"),
        kind: z.literal("Job"),
        metadata: z.looseObject({}).optional(),
        spec: z.looseObject({ template: z.looseObject({}) }),
      })
      .optional()
      .meta({ description: "A Kubernetes Job that must succeed; its namespace defaults to the plane's." }),
    timeoutSeconds: z.int().positive().optional().meta({ description: "How long the gate may take." }),
  })
  .refine((gate) => (gate.http === undefined) !== (gate.job === undefined), {
    error: "give exactly one of http: and job:",
  });

// YAML 1.2 reads 0755 as the integer 755 and 0o755 as 493: both spellings mean the octal mode.
const EXECUTABLE_MODE_SPELLINGS: readonly unknown[] = [0o755, 755, "0755"];

const fileSchema = z.strictObject({
  path: z.string().min(1, { error: "must not be empty" }).meta({ description: "The source file." }),
  name: z
    .string()
    .transform(parsedBy(parseEntryName))
    .optional()
    .meta({ description: "Entry name under bin/ (default: the file name of path)." }),
  sha256: z
    .string()
    .regex(SHA256_HEX_PATTERN, { error: "expected 64 lowercase hex characters" })
    .optional()
    .meta({ description: "Pin of the file's content, bare lowercase hex." }),
  mode: z
    .literal([0o644, 644, "0644", 0o755, 755, "0755"], { error: "expected 0644 or 0755" })
    .transform((mode): FileSpec["mode"] => (EXECUTABLE_MODE_SPELLINGS.includes(mode) ? 0o755 : 0o644))
    .optional()
    .meta({ description: "File mode: 0644 (default) or 0755." }),
});

/** The schema of a `bundle.yaml` document; its output is the spec with paths still as written. */
export const bundleSpecSchema = z
  .strictObject({
    name: z
      .string()
      .max(63, { error: "must be at most 63 characters" })
      .regex(BUNDLE_NAME_PATTERN, {
        error: "must be lowercase letters, digits and '-', starting with a letter or digit",
      })
      .meta({ description: "Bundle name: lowercase letters, digits and '-', at most 63 characters." }),
    version: z
      .string()
      .transform(parsedBy(parseStrictSemver))
      .meta({ description: "The plane's version, strict semver." }),
    upgradeFrom: z
      .string()
      .transform(parsedBy(parseSemverRange))
      .optional()
      .meta({ description: "Semver range of installed versions this bundle upgrades." }),
    created: z.iso
      .datetime({ offset: true, error: "expected an RFC 3339 timestamp" })
      .transform((timestamp) => new Date(timestamp).toISOString())
      .optional()
      .meta({ description: "The build's creation time, RFC 3339; makes the build reproducible." }),
    images: z.array(imageSchema).default([]).meta({ description: "Container images the bundle carries." }),
    packs: z.array(packSchema).default([]).meta({ description: "Packs the bundle carries." }),
    manifests: z
      .string()
      .min(1, { error: "must not be empty" })
      .optional()
      .meta({ description: "Directory of plane manifests." }),
    files: z.array(fileSchema).default([]).meta({ description: "Files the bundle carries under bin/." }),
    registries: z
      .record(z.string(), registrySchema)
      .default({})
      .meta({ description: "How to reach the registries docker:// sources name, by host[:port]." }),
    upgradeGates: z
      .array(upgradeGateSchema)
      .default([])
      .meta({ description: "Checks an upgrade to this bundle must pass after each broker and at the end." }),
  })
  .meta({ description: "An Airlock bundle spec: what `airlock bundle build` packs." });

type ParsedBundleSpec = z.output<typeof bundleSpecSchema>;

export function bundleSpecJsonSchema(): Record<string, unknown> {
  // The input side is the document an operator writes; the output side holds parsed values.
  const { $schema, ...schema } = z.toJSONSchema(bundleSpecSchema, { io: "input", unrepresentable: "any" });
  return {
    $schema,
    $id: "https://airlock.dev/schemas/bundle.schema.json",
    title: "Airlock bundle.yaml",
    ...schema,
  };
}

/** One problem found in a spec: the field it concerns, and whether it points at a key rather than a value. */
type SpecIssue = FieldIssue;

/** Messages for zod's own issues, in the words of YAML. */
const issueMessage: z.core.$ZodErrorMap = (issue) => schemaIssueMessage(issue);

/** A path segment as a message (`[1]`, `["host:5000"]`, `.digest`) or as a FIELD_HINTS key (`[]`, `[*]`). */
function segmentName(path: readonly PropertyKey[], index: number, pattern: boolean): string {
  const segment = path[index];
  if (typeof segment === "number") return pattern ? "[]" : `[${segment}]`;
  // A registry's key is a host[:port], which reads badly after a dot.
  if (index === 1 && path[0] === "registries") return pattern ? "[*]" : `[${JSON.stringify(segment)}]`;
  return index === 0 ? String(segment) : `.${String(segment)}`;
}

/** `images[1].digest`, `registries["host:5000"].caFile`, as the message names a field. */
function fieldName(path: readonly PropertyKey[]): string {
  return path.map((_, index) => segmentName(path, index, false)).join("");
}

/** `images[].digest`, `registries[*].caFile`, as FIELD_HINTS names a field. */
function fieldPattern(path: readonly PropertyKey[]): string {
  return path.map((_, index) => segmentName(path, index, true)).join("");
}

function specIssuesOf(issue: z.core.$ZodIssue): SpecIssue[] {
  return fieldIssuesOf(issue, (path) => FIELD_HINTS[fieldPattern(path)] ?? SCHEMA_HINT);
}

/** Entries whose key an earlier entry already has, each with the index of that earlier entry. */
function repeatedEntries<T>(
  entries: readonly T[],
  keyOf: (entry: T) => string,
): Array<{ index: number; first: number }> {
  const firstIndexByKey = new Map<string, number>();
  const repeats: Array<{ index: number; first: number }> = [];
  entries.forEach((entry, index) => {
    const key = keyOf(entry);
    const first = firstIndexByKey.get(key);
    if (first === undefined) firstIndexByKey.set(key, index);
    else repeats.push({ index, first });
  });
  return repeats;
}

/** `a/b/c` → `a`, `a/b`. */
function ancestorsOf(name: string): string[] {
  const segments = name.split("/");
  return segments.slice(1).map((_, depth) => segments.slice(0, depth + 1).join("/"));
}

/**
 * Problems the per-field checks cannot see: entry names taken from a file's own name, and two
 * images, packs or files that would land on the same name in the bundle.
 */
function entryIssues(parsed: ParsedBundleSpec, spec: BundleSpec): SpecIssue[] {
  const derivedNames = spec.files.flatMap((file, index) =>
    parsed.files[index]?.name !== undefined || isEntryName(file.name)
      ? []
      : [
          {
            path: ["files", index, "path"],
            atKey: false,
            message: `its file name ${JSON.stringify(file.name)} is not a safe entry name; set name:`,
            hint: FIELD_HINTS["files[].path"],
          },
        ],
  );
  const images = repeatedEntries(spec.images, (image) => image.ref).map(({ index, first }) => ({
    path: ["images", index, "ref"],
    atKey: false,
    message: `duplicate ref ${JSON.stringify(spec.images[index]?.ref)}, already images[${first}].ref`,
    hint: "each image needs its own repository:tag inside the bundle",
  }));
  const packs = repeatedEntries(spec.packs, (pack) => pack.path).map(({ index, first }) => ({
    path: ["packs", index, "path"],
    atKey: false,
    message: `duplicate pack ${JSON.stringify(parsed.packs[index]?.path)}, the same directory as packs[${first}].path`,
    hint: "list each pack once",
  }));
  const fileNameField = (index: number): string =>
    parsed.files[index]?.name === undefined ? "path" : "name";
  const files = repeatedEntries(spec.files, (file) => file.name).map(({ index, first }) => ({
    path: ["files", index, fileNameField(index)],
    atKey: false,
    message: `duplicate entry bin/${spec.files[index]?.name}, already files[${first}]`,
    hint: "give one of the files another name:",
  }));
  // bin/a as a file and bin/a/b cannot both exist in one tree.
  const names = new Set(spec.files.map((file) => file.name));
  const nested = spec.files.flatMap((file, index) => {
    const parent = ancestorsOf(file.name).find((ancestor) => names.has(ancestor));
    if (parent === undefined) return [];
    return [
      {
        path: ["files", index, fileNameField(index)],
        atKey: false,
        message: `entry bin/${file.name} would sit inside bin/${parent}, which is a file`,
        hint: "give one of the files another name:",
      },
    ];
  });
  return [...derivedNames, ...images, ...packs, ...files, ...nested];
}

/**
 * What ties images to registries: referrers need a registry source, and each `registries:` entry is
 * a valid host that some image pulls from (an unused entry is most likely a misspelt host, whose
 * image would then silently go without its settings).
 */
function registryIssues(spec: BundleSpec): SpecIssue[] {
  const referrers = spec.images.flatMap((image, index) =>
    image.referrers && image.source.transport !== "docker"
      ? [
          {
            path: ["images", index, "referrers"],
            atKey: false,
            message: `referrers: true needs a docker:// source, not ${image.source.transport}:`,
            hint: FIELD_HINTS["images[].referrers"],
          },
        ]
      : [],
  );
  const used = new Set(
    spec.images.flatMap((image) => (image.source.transport === "docker" ? [image.source.registry] : [])),
  );
  const registries = Object.entries(spec.registries).flatMap(([host, settings]): SpecIssue[] => {
    if (!isRegistryHost(host)) {
      return [
        {
          path: ["registries", host],
          atKey: true,
          message: `${JSON.stringify(host)} is not a registry host[:port]`,
          hint: FIELD_HINTS["registries[*]"],
        },
      ];
    }
    if (!used.has(host)) {
      return [
        {
          path: ["registries", host],
          atKey: true,
          message: `no image's docker:// source names ${host}`,
          hint: `fix the host to match the source (as written there, port included), or remove the entry; sources name: ${[...used].join(", ") || "no registry"}`,
        },
      ];
    }
    const tls = (["caFile", "insecureSkipTlsVerify"] as const).filter(
      (key) => settings[key] !== undefined && settings[key] !== false,
    );
    return settings.insecureHttp && tls.length > 0
      ? [
          {
            path: ["registries", host, "insecureHttp"],
            atKey: false,
            message: `plain HTTP leaves no TLS for ${tls.join(" and ")} to apply to`,
            hint: FIELD_HINTS["registries[*].insecureHttp"],
          },
        ]
      : [];
  });
  return [...referrers, ...registries];
}

/**
 * The source offset of the node an issue concerns: the value; the key, for unknown keys and empty
 * values; the deepest map or list that exists, for a missing key.
 */
function issueOffset(doc: Document, issue: SpecIssue): number {
  let node: unknown = doc.contents;
  let offset = startOf(node) ?? 0;
  for (const [index, segment] of issue.path.entries()) {
    if (isAlias(node)) node = node.resolve(doc);
    let key: unknown;
    if (isMap(node)) {
      const pair = node.items.find(
        (item) => isScalar(item.key) && String(item.key.value) === String(segment),
      );
      if (pair === undefined) break;
      key = pair.key;
      node = pair.value;
    } else if (isSeq(node) && typeof segment === "number" && segment < node.items.length) {
      node = node.items[segment];
    } else {
      break;
    }
    const pointsAtKey = issue.atKey && index === issue.path.length - 1;
    offset = (pointsAtKey ? undefined : startOf(node)) ?? startOf(key) ?? offset;
  }
  return offset;
}

/** Where a node starts, when it spans any source (an empty value spans none). */
function startOf(node: unknown): number | undefined {
  if (!isNode(node) || node.range == null) return undefined;
  const [start, end] = node.range;
  return end > start ? start : undefined;
}

function specInvalid(
  file: string,
  lineCounter: LineCounter,
  doc: Document,
  issues: SpecIssue[],
): AirlockError {
  return fieldIssuesError("SPEC_INVALID", issues, {
    locate: (issue) => {
      const offset = issueOffset(doc, issue);
      const { line, col } = lineCounter.linePos(offset);
      return { at: `${file}:${line}:${col}`, order: offset };
    },
    describe: (issue) =>
      issue.path.length === 0 ? issue.message : `${fieldName(issue.path)}: ${issue.message}`,
    firstInWhereOnly: true,
  });
}

function resolvePaths(parsed: ParsedBundleSpec, specDir: string): BundleSpec {
  const at = (path: string): string => resolve(specDir, path);
  return {
    name: parsed.name,
    version: parsed.version,
    upgradeFrom: parsed.upgradeFrom,
    upgradeGates: parsed.upgradeGates,
    created: parsed.created,
    images: parsed.images.map((image) => ({
      ref: image.ref,
      source:
        image.source.transport === "docker" ? image.source : { ...image.source, path: at(image.source.path) },
      digest: image.digest,
      platforms: image.platforms,
      referrers: image.referrers,
    })),
    packs: parsed.packs.map((pack) => ({ path: at(pack.path) })),
    manifests: parsed.manifests === undefined ? undefined : at(parsed.manifests),
    files: parsed.files.map((file) => ({
      path: at(file.path),
      name: file.name ?? basename(at(file.path)),
      sha256: file.sha256,
      mode: file.mode ?? 0o644,
    })),
    registries: Object.fromEntries(
      Object.entries(parsed.registries).map(([host, settings]) => [
        host,
        {
          insecureHttp: settings.insecureHttp,
          caFile: settings.caFile === undefined ? undefined : at(settings.caFile),
          insecureSkipTlsVerify: settings.insecureSkipTlsVerify,
          authFile: settings.authFile === undefined ? undefined : at(settings.authFile),
        },
      ]),
    ),
    specDir,
  };
}

/**
 * Parses and validates a `bundle.yaml` document. `file` names the document in errors (as given)
 * and anchors its relative paths (resolved), so the result does not depend on the working directory.
 */
export function parseBundleSpec(text: string, file: string): BundleSpec {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const syntaxError = doc.errors[0];
  if (syntaxError !== undefined) {
    const { line, col } = lineCounter.linePos(syntaxError.pos[0]);
    throw new AirlockError("SPEC_INVALID", `YAML syntax: ${syntaxError.message}`, {
      where: `${file}:${line}:${col}`,
      hint: "fix the YAML syntax at that position",
    });
  }
  let document: unknown;
  try {
    document = doc.toJS();
  } catch (error) {
    // yaml refuses documents whose aliases expand beyond its limit (a "billion laughs" document).
    throw new AirlockError("SPEC_INVALID", `YAML: ${(error as Error).message}`, {
      where: file,
      cause: error,
    });
  }
  const result = bundleSpecSchema.safeParse(document, { error: issueMessage });
  if (!result.success) throw specInvalid(file, lineCounter, doc, result.error.issues.flatMap(specIssuesOf));
  const spec = resolvePaths(result.data, dirname(resolve(file)));
  const issues = [...entryIssues(result.data, spec), ...registryIssues(spec)];
  if (issues.length > 0) throw specInvalid(file, lineCounter, doc, issues);
  return spec;
}

export async function loadBundleSpec(file: string): Promise<BundleSpec> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    if (errnoCode(error) === "ENOENT") {
      throw new AirlockError("SPEC_NOT_FOUND", `no bundle spec at ${file}`, {
        where: file,
        hint: "pass the path of the bundle's bundle.yaml",
        cause: error,
      });
    }
    throw error;
  }
  return parseBundleSpec(text, file);
}
