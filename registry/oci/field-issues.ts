import type { ErrorCode } from "./error-codes.js";
import { AirlockError } from "./errors.js";

/**
 * Schema problems in a document an operator wrote (bundle.yaml, the plane's values), worded for
 * them and gathered into one error. It reads zod's issues by their shape and imports no schema
 * library, so this dependency-free library can hold it for both `bundle` and `manifests`.
 */

/** The fields of a zod issue the wording reads. */
export interface SchemaIssue {
  readonly code: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly input?: unknown;
  readonly expected?: string;
  /** The unknown keys, of an `unrecognized_keys` issue. */
  readonly keys?: readonly string[];
  /** The schema that failed: an object's has its `shape`. */
  readonly inst?: unknown;
  /** The key's own issues, of an `invalid_key` issue. */
  readonly issues?: readonly { readonly message: string }[];
}

/** One problem, at one field. */
export interface FieldIssue {
  path: readonly PropertyKey[];
  /** The problem is the key itself (an unknown key), not its value. */
  atKey: boolean;
  message: string;
  hint: string | undefined;
}

const KINDS: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "a whole number",
  boolean: "true or false",
  array: "a list",
  object: "a mapping",
  record: "a mapping",
};

export interface IssueWording {
  /** Name a wrong number by its value (`got 1.5`) rather than its kind (`got a number`). */
  numbersAsWritten?: boolean;
  /** The kind expected, where zod's `expected` says too little (a whole number is `number` to it). */
  expected?: string | undefined;
}

function kindOf(value: unknown, wording: IssueWording): string {
  if (value === null) return "an empty value";
  if (typeof value === "number" && wording.numbersAsWritten === true) return String(value);
  if (Array.isArray(value)) return "a list";
  return KINDS[typeof value] ?? typeof value;
}

function shapeKeys(schema: unknown): string[] | undefined {
  if (typeof schema !== "object" || schema === null || !("shape" in schema)) return undefined;
  const { shape } = schema;
  return typeof shape === "object" && shape !== null ? Object.keys(shape) : undefined;
}

/**
 * A message for a wrong type or an unknown key, in the words of YAML; undefined leaves zod's own.
 * Fit for a zod error map.
 */
export function schemaIssueMessage(
  issue: Omit<SchemaIssue, "path" | "message">,
  wording: IssueWording = {},
): string | undefined {
  if (issue.code === "invalid_type") {
    if (issue.input === undefined) return "required field is missing";
    const expected = wording.expected ?? issue.expected ?? "";
    return `expected ${KINDS[expected] ?? expected}, got ${kindOf(issue.input, wording)}`;
  }
  const allowed = issue.code === "unrecognized_keys" ? shapeKeys(issue.inst) : undefined;
  if (allowed !== undefined) return `unknown key (allowed here: ${allowed.join(", ")})`;
  return undefined;
}

const UNKNOWN_KEY_HINT = "remove the key or fix its spelling";

/**
 * The field issues a schema issue stands for: each unknown key at its key, a bad record key with its
 * own messages, anything else at its path with the hint `hintFor` gives.
 */
export function fieldIssuesOf(
  issue: SchemaIssue,
  hintFor: (path: readonly PropertyKey[]) => string | undefined,
): FieldIssue[] {
  if (issue.code === "unrecognized_keys") {
    return (issue.keys ?? []).map((key) => ({
      path: [...issue.path, key],
      atKey: true,
      message: issue.message,
      hint: UNKNOWN_KEY_HINT,
    }));
  }
  const message =
    issue.code === "invalid_key" && issue.issues !== undefined
      ? issue.issues.map((inner) => inner.message).join("; ")
      : issue.message;
  return [{ path: issue.path, atKey: false, message, hint: hintFor(issue.path) }];
}

/**
 * One error for every issue, ordered and named by `locate` (a YAML position, or the field's name):
 * a line each, `AT: MESSAGE`, the first issue's place in `where` and its hint as the error's. With
 * `firstInWhereOnly`, the first line leaves out the place `where` already gives.
 */
export function fieldIssuesError(
  code: ErrorCode,
  issues: readonly FieldIssue[],
  options: {
    locate(issue: FieldIssue): { at: string; order: number };
    describe(issue: FieldIssue): string;
    firstInWhereOnly?: boolean;
  },
): AirlockError {
  const located = issues
    .map((issue) => ({ issue, ...options.locate(issue) }))
    .sort((a, b) => a.order - b.order);
  const [first, ...others] = located as [(typeof located)[number], ...typeof located];
  const line = ({ issue, at }: (typeof located)[number]): string => `${at}: ${options.describe(issue)}`;
  const lines = [
    options.firstInWhereOnly === true ? options.describe(first.issue) : line(first),
    ...others.map(line),
  ];
  return new AirlockError(code, lines.join("\n"), { where: first.at, hint: first.issue.hint });
}
