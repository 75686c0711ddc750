import { AirlockError } from "../../registry/oci/index.js";
import { describeRef, type ObjectRef } from "./client.js";

/**
 * The API server's answers as Airlock's errors, one table for the real client and the in-memory
 * cluster alike, so that code above the interface sees the same codes from both.
 */
const BY_STATUS: Record<number, { code: string; hint: string }> = {
  400: { code: "CLUSTER_BAD_REQUEST", hint: "the object is malformed: check the rendered manifests" },
  401: {
    code: "CLUSTER_UNAUTHORIZED",
    hint: "the kubeconfig's credentials were refused: check its user and that they have not expired",
  },
  403: {
    code: "CLUSTER_FORBIDDEN",
    hint: "the kubeconfig's user lacks the RBAC rights for this: use a cluster-admin kubeconfig",
  },
  404: {
    code: "CLUSTER_NOT_FOUND",
    hint: "it does not exist (for a namespaced object: its namespace may not)",
  },
  409: {
    code: "CLUSTER_CONFLICT",
    hint: "another field manager owns these fields: find who changed the object (kubectl get --show-managed-fields)",
  },
  422: {
    code: "CLUSTER_INVALID",
    hint: "the API server's validation refused the object: check the rendered manifests",
  },
};

export function clusterError(
  status: number,
  ref: ObjectRef | string,
  message: string,
  cause?: unknown,
): AirlockError {
  const known = BY_STATUS[status] ?? {
    code: "CLUSTER_API_FAILED",
    hint: "the API server failed the request: check its health (kubectl get --raw /readyz)",
  };
  return new AirlockError(known.code, message, {
    where: typeof ref === "string" ? ref : describeRef(ref),
    hint: known.hint,
    cause,
  });
}

/** The HTTP status an API server answers for one of the codes above (500 for any other). */
export function statusOfClusterError(code: string): number {
  const found = Object.entries(BY_STATUS).find(([, known]) => known.code === code);
  return found === undefined ? 500 : Number(found[0]);
}
