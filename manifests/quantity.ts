/**
 * Kubernetes resource quantities (`500m`, `1.5`, `256Mi`, `1e3`), as the API server's grammar
 * writes them, less the sign: a resource amount is never negative.
 */
const QUANTITY_PATTERN = /^(\d+(?:\.\d*)?|\.\d+)(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d{1,2}|m|k|M|G|T|P|E)?$/;
const MAX_QUANTITY_LENGTH = 64;

const BINARY_EXPONENTS: Record<string, bigint> = { Ki: 10n, Mi: 20n, Gi: 30n, Ti: 40n, Pi: 50n, Ei: 60n };
const DECIMAL_EXPONENTS: Record<string, number> = { m: -3, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };

/** An exact amount, numerator over denominator: `100m` and `0.1` compare equal without float rounding. */
interface Ratio {
  numerator: bigint;
  denominator: bigint;
}

export function isQuantity(text: string): boolean {
  return text.length <= MAX_QUANTITY_LENGTH && QUANTITY_PATTERN.test(text);
}

function ratioOf(text: string): Ratio {
  const match = QUANTITY_PATTERN.exec(text);
  if (match === null) throw new RangeError(`not a quantity: ${JSON.stringify(text)}`);
  const [whole = "", fraction = ""] = match[1]!.split(".");
  let numerator = BigInt(`${whole}${fraction}` || "0");
  let exponent10 = -fraction.length;
  const suffix = match[2] ?? "";
  const binary = BINARY_EXPONENTS[suffix];
  if (binary !== undefined) numerator *= 1n << binary;
  else if (/^[eE]/.test(suffix)) exponent10 += Number(suffix.slice(1));
  else exponent10 += DECIMAL_EXPONENTS[suffix] ?? 0;
  return exponent10 >= 0
    ? { numerator: numerator * 10n ** BigInt(exponent10), denominator: 1n }
    : { numerator, denominator: 10n ** BigInt(-exponent10) };
}

/** Negative, zero or positive as `a` is less than, equal to or more than `b`. */
export function compareQuantities(a: string, b: string): number {
  const x = ratioOf(a);
  const y = ratioOf(b);
  const left = x.numerator * y.denominator;
  const right = y.numerator * x.denominator;
  return left < right ? -1 : left > right ? 1 : 0;
}
