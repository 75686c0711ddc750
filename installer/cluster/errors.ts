import { AirlockError, errorCodeInfo, type ErrorCode } from "../../registry/oci/index.js";
import { describeRef, type ObjectRef } from "./client.js";

/**
 * The API server's answers as Airlock's errors, one table for the real client and the in-memory
 * cluster alike, so that code above the interface sees the same codes from both. Each code's status
 * is its entry's in the error-code table.
 */
const HINTS = {
  CLUSTER_BAD_REQUEST: "the object is malformed: check the rendered manifests",
  CLUSTER_UNAUTHORIZED:
    "the kubeconfig's credentials were refused: check its user and that they have not expired",
  CLUSTER_FORBIDDEN: "the kubeconfig's user lacks the RBAC rights for this: use a cluster-admin kubeconfig",
  CLUSTER_NOT_FOUND: "it does not exist (for a namespaced object: its namespace may not)",
  CLUSTER_CONFLICT:
    "another field manager owns these fields: find who changed the object (kubectl get --show-managed-fields)",
  CLUSTER_INVALID: "the API server's validation refused the object: check the rendered manifests",
  CLUSTER_FIELD_IMMUTABLE:
    "the API server does not change this field in place: the object must be deleted and created again (airlock upgrade plan shows it as recreate, and the run does it)",
  CLUSTER_API_FAILED: "the API server failed the request: check its health (kubectl get --raw /readyz)",
} satisfies Partial<Record<ErrorCode, string>>;

type ClusterErrorCode = keyof typeof HINTS;

/** The code of each status the API server answers; any other is CLUSTER_API_FAILED. */
const BY_STATUS = new Map<number | undefined, ClusterErrorCode>(
  (
    [
      "CLUSTER_BAD_REQUEST",
      "CLUSTER_UNAUTHORIZED",
      "CLUSTER_FORBIDDEN",
      "CLUSTER_NOT_FOUND",
      "CLUSTER_CONFLICT",
      "CLUSTER_INVALID",
    ] as const
  ).map((code) => [errorCodeInfo(code).http, code]),
);

/** How kube-apiserver words a 422 for a field that is fixed at creation, for every kind that has them. */
const IMMUTABLE_MESSAGES =
  /field is immutable|may not change once set|is immutable after creation|updates to statefulset spec for fields other than/;

/** One field error of a 422 Invalid, as the Status's details.causes carry it. */
export interface InvalidCause {
  reason: "FieldValueForbidden" | "FieldValueInvalid";
  field: string;
  /** Without the field: `Forbidden: …`, `Invalid value: …: …`. */
  message: string;
}

/** A 422 Invalid with its field causes, so an API server facade answers the Status a real one would. */
export class ClusterInvalidError extends AirlockError {
  constructor(
    message: string,
    where: string,
    readonly group: string,
    readonly kind: string,
    readonly objectName: string,
    readonly causes: InvalidCause[],
  ) {
    const code = IMMUTABLE_MESSAGES.test(message) ? "CLUSTER_FIELD_IMMUTABLE" : "CLUSTER_INVALID";
    super(code, message, { where, hint: HINTS[code] });
    this.name = "ClusterInvalidError";
  }
}

/**
 * kube-apiserver's NewInvalid: `Kind.group "name" is invalid: field: body`, or with several
 * errors `… is invalid: [field: body, field: body]`.
 */
export function invalidError(ref: ObjectRef, causes: InvalidCause[]): ClusterInvalidError {
  const group = ref.apiVersion.includes("/") ? ref.apiVersion.split("/")[0]! : "";
  const errors = causes.map((cause) => `${cause.field}: ${cause.message}`);
  const message = `${ref.kind}${group === "" ? "" : `.${group}`} ${JSON.stringify(ref.name)} is invalid: ${errors.length === 1 ? errors[0]! : `[${errors.join(", ")}]`}`;
  return new ClusterInvalidError(message, describeRef(ref), group, ref.kind, ref.name, causes);
}

export function clusterError(
  status: number,
  ref: ObjectRef | string,
  message: string,
  cause?: unknown,
): AirlockError {
  const code =
    status === 422 && IMMUTABLE_MESSAGES.test(message)
      ? "CLUSTER_FIELD_IMMUTABLE"
      : (BY_STATUS.get(status) ?? "CLUSTER_API_FAILED");
  return new AirlockError(code, message, {
    where: typeof ref === "string" ? ref : describeRef(ref),
    hint: HINTS[code],
    cause,
  });
}

/** The HTTP status an API server answers for one of the codes above (500 for any other). */
export function statusOfClusterError(code: ErrorCode): number {
  return code in HINTS ? (errorCodeInfo(code).http ?? 500) : 500;
}
