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

/** A 422 whose message says a field cannot change in place: the object must be deleted and created again. */
const IMMUTABLE = {
  code: "CLUSTER_FIELD_IMMUTABLE",
  hint: "the API server does not change this field in place: the object must be deleted and created again (airlock upgrade plan shows it as recreate, and the run does it)",
};
/** How kube-apiserver words such a refusal, for every kind whose fields are fixed at creation. */
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
    const known = IMMUTABLE_MESSAGES.test(message) ? IMMUTABLE : BY_STATUS[422]!;
    super(known.code, message, { where, hint: known.hint });
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
  const known = (status === 422 && IMMUTABLE_MESSAGES.test(message) ? IMMUTABLE : BY_STATUS[status]) ?? {
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
  if (code === IMMUTABLE.code) return 422;
  const found = Object.entries(BY_STATUS).find(([, known]) => known.code === code);
  return found === undefined ? 500 : Number(found[0]);
}
