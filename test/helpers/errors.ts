import { AirlockError } from "../../registry/oci/index.js";

/** The AirlockError a promise rejects with; fails the test when it resolves or throws anything else. */
export async function rejection(promise: Promise<unknown>): Promise<AirlockError> {
  let outcome: unknown;
  try {
    outcome = await promise;
  } catch (error) {
    if (error instanceof AirlockError) return error;
    throw new Error(`expected an AirlockError, got ${String(error)}`, { cause: error });
  }
  throw new Error(
    `expected an AirlockError, but the operation succeeded: ${JSON.stringify(outcome)?.slice(0, 300)}`,
  );
}
