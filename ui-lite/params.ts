import { AirlockError } from "../registry/oci/index.js";

/** A query parameter that does not parse: answered 400 with the message, nothing done. */
export function badParameter(name: string, value: unknown, expected: string): AirlockError {
  return new AirlockError("UI_BAD_PARAMETER", `${name} ${JSON.stringify(value)} is not ${expected}`, {
    where: name,
  });
}

/** One query value: a repeated parameter, or one too long, is refused rather than guessed at. */
export function queryText(query: Record<string, unknown>, name: string, maxLength = 200): string | undefined {
  const value = query[name];
  if (value === undefined || value === "") return undefined;
  if (typeof value !== "string" || value.length > maxLength) {
    throw badParameter(name, value, `one value of at most ${maxLength} characters`);
  }
  return value;
}

/** A positive whole number from the query, or the fallback when absent. */
export function queryInteger(query: Record<string, unknown>, name: string, fallback: number): number {
  const text = queryText(query, name, 12);
  if (text === undefined) return fallback;
  if (!/^[1-9][0-9]*$/.test(text)) throw badParameter(name, text, "a whole number of 1 or more");
  return Number(text);
}
