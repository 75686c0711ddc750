import { AirlockError, type ErrorCode } from "../../registry/oci/index.js";

/** A piece of an operator's spec and where it starts in it. */
export interface Token {
  text: string;
  /** 0-based offset in the spec. */
  at: number;
}

/** A usage error (exit 2) that shows the spec with a caret line under the bad token. */
export function pointedError(
  code: ErrorCode,
  what: string,
  spec: string,
  token: Token,
  problem: string,
  hint: string,
): AirlockError {
  const caret = `${" ".repeat(token.at)}${"^".repeat(Math.max(1, token.text.length))}`;
  return new AirlockError(code, `${problem}\n  ${spec}\n  ${caret}`, {
    where: `${what} ${JSON.stringify(spec)}, column ${token.at + 1}`,
    hint,
  });
}

/** The non-empty pieces of `text` between separators, each with its offset (plus `offset`). */
export function tokensOf(text: string, separator: RegExp, offset = 0): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  for (const piece of text.split(separator)) {
    const start = text.indexOf(piece, at);
    if (piece !== "") tokens.push({ text: piece, at: offset + start });
    at = start + piece.length;
  }
  return tokens;
}
