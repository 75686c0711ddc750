import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from "node:crypto";
import { AirlockError } from "../registry/oci/index.js";

/** scrypt's cost (2^15, r 8, p 1: about 32 MiB and tens of milliseconds a hash), as stored per hash. */
const COST = { N: 32768, r: 8, p: 1 };
const KEY_BYTES = 32;
const SALT_BYTES = 16;
export const MIN_PASSWORD_LENGTH = 12;

function derive(password: string, salt: Buffer, cost: typeof COST): Promise<Buffer> {
  const options: ScryptOptions = { ...cost, maxmem: 128 * cost.N * cost.r * 2 };
  return new Promise((resolve, reject) =>
    scrypt(password.normalize("NFC"), salt, KEY_BYTES, options, (error, key) =>
      error === null ? resolve(key) : reject(error),
    ),
  );
}

/** `scrypt$N$r$p$salt$key`, salt and key base64url: a fresh salt per hash. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await derive(password, salt, COST);
  return ["scrypt", COST.N, COST.r, COST.p, salt.toString("base64url"), key.toString("base64url")].join("$");
}

/** Compares in constant time; a hash this code did not write never matches. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, key] = stored.split("$");
  if (scheme !== "scrypt" || salt === undefined || key === undefined) return false;
  const expected = Buffer.from(key, "base64url");
  const actual = await derive(password, Buffer.from(salt, "base64url"), {
    N: Number(n),
    r: Number(r),
    p: Number(p),
  });
  return actual.length === expected.length && timingSafeEqual(actual, expected);
}

/** A hash nobody's password matches, verified when a login names no user so its timing is the same. */
export const UNMATCHABLE_HASH = `scrypt$${COST.N}$${COST.r}$${COST.p}$${"A".repeat(22)}$${"A".repeat(43)}`;

/** 20 random characters from an alphabet without look-alikes (no 0/O, 1/l/I): read off a terminal. */
export function oneTimePassword(): string {
  const alphabet = "abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
  let out = "";
  // Rejection sampling keeps every character equally likely.
  while (out.length < 20) {
    for (const byte of randomBytes(32)) {
      if (byte < 256 - (256 % alphabet.length) && out.length < 20) out += alphabet[byte % alphabet.length];
    }
  }
  return out;
}

export function checkNewPassword(password: string): void {
  if (password.length < MIN_PASSWORD_LENGTH) {
    throw new AirlockError(
      "UI_PASSWORD_WEAK",
      `the new password has ${password.length} characters; it needs at least ${MIN_PASSWORD_LENGTH}`,
      { hint: `choose a password of ${MIN_PASSWORD_LENGTH} characters or more` },
    );
  }
}
