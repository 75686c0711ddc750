/**
 * The one wording of schema problems (issue 11, point 5), used by bundle.yaml and the plane's
 * values: zod's issues reworded for YAML, flattened to one issue per field, gathered into one error.
 */
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  AirlockError,
  fieldIssuesError,
  fieldIssuesOf,
  schemaIssueMessage,
  type FieldIssue,
} from "../../../registry/oci/index.js";

const schema = z.strictObject({
  name: z.string(),
  replicas: z.number(),
  labels: z.record(z.string().regex(/^[a-z]+$/), z.string()).optional(),
});

function issuesOf(input: unknown, wording = {}): z.core.$ZodIssue[] {
  const result = schema.safeParse(input, { error: (issue) => schemaIssueMessage(issue, wording) });
  expect(result.success).toBe(false);
  return result.error!.issues;
}

const hints = (path: readonly PropertyKey[]): string => `fix ${path.join(".")}`;

describe("schemaIssueMessage", () => {
  it("names a missing field, and a wrong kind in YAML's words", () => {
    expect(issuesOf({ replicas: "two" }).map((issue) => issue.message)).toEqual([
      "required field is missing",
      "expected a number, got a string",
    ]);
    expect(issuesOf([]).map((issue) => issue.message)).toEqual(["expected a mapping, got a list"]);
    expect(issuesOf(null).map((issue) => issue.message)).toEqual(["expected a mapping, got an empty value"]);
  });

  it("names a wrong number by its value when asked, and takes the kind expected from the caller", () => {
    const wrong = { name: 1.5, replicas: 1 };
    expect(issuesOf(wrong)[0]!.message).toBe("expected a string, got a number");
    expect(issuesOf(wrong, { numbersAsWritten: true })[0]!.message).toBe("expected a string, got 1.5");
    expect(issuesOf(wrong, { expected: "int" })[0]!.message).toBe("expected a whole number, got a number");
  });

  it("lists the keys allowed beside an unknown one; leaves other issues to zod", () => {
    const [unknown] = issuesOf({ name: "a", replicas: 1, replica: 2 });
    expect(unknown!.message).toBe("unknown key (allowed here: name, replicas, labels)");
    expect(schemaIssueMessage({ code: "too_small" })).toBeUndefined();
  });
});

describe("fieldIssuesOf", () => {
  it("gives each unknown key an issue at the key, telling to remove it", () => {
    const [issue] = issuesOf({ name: "a", replicas: 1, one: 1, two: 2 });
    expect(fieldIssuesOf(issue!, hints)).toEqual([
      { path: ["one"], atKey: true, message: issue!.message, hint: "remove the key or fix its spelling" },
      { path: ["two"], atKey: true, message: issue!.message, hint: "remove the key or fix its spelling" },
    ]);
  });

  it("words a bad record key by its own issues; any other issue keeps its path and gets its field's hint", () => {
    const [key] = issuesOf({ name: "a", replicas: 1, labels: { Bad: "x" } });
    expect(key!.code).toBe("invalid_key");
    const [flat] = fieldIssuesOf(key!, hints);
    expect(flat).toMatchObject({ path: ["labels", "Bad"], atKey: false, hint: "fix labels.Bad" });
    expect(flat!.message).toContain("Invalid string");
    const [missing] = issuesOf({ replicas: 1 });
    expect(fieldIssuesOf(missing!, hints)).toEqual([
      { path: ["name"], atKey: false, message: "required field is missing", hint: "fix name" },
    ]);
  });
});

describe("fieldIssuesError", () => {
  const issue = (field: string, message: string): FieldIssue => ({
    path: [field],
    atKey: false,
    message,
    hint: `hint for ${field}`,
  });
  const issues = [issue("b", "second"), issue("a", "first")];
  const offsets: Record<string, number> = { a: 3, b: 9 };

  it("orders the lines by place, the first one's place and hint on the error", () => {
    const error = fieldIssuesError("SPEC_INVALID", issues, {
      locate: (found) => ({
        at: `f:${offsets[String(found.path[0])]}`,
        order: offsets[String(found.path[0])]!,
      }),
      describe: (found) => `${String(found.path[0])}: ${found.message}`,
      firstInWhereOnly: true,
    });
    expect(error).toBeInstanceOf(AirlockError);
    expect(error).toMatchObject({ code: "SPEC_INVALID", where: "f:3", hint: "hint for a", exitCode: 2 });
    expect(error.message).toBe("a: first\nf:9: b: second");
  });

  it("keeps the given order for equal places, and names the place on every line unless told", () => {
    const error = fieldIssuesError("VALUES_INVALID", issues, {
      locate: (found) => ({ at: String(found.path[0]), order: 0 }),
      describe: (found) => found.message,
    });
    expect(error).toMatchObject({ where: "b", hint: "hint for b" });
    expect(error.message).toBe("b: second\na: first");
  });
});
