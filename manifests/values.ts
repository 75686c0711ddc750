import { isIP } from "node:net";
import { z } from "zod";
import {
  fieldIssuesError,
  fieldIssuesOf,
  parseReference,
  schemaIssueMessage,
} from "../registry/oci/index.js";
import { compareQuantities, isQuantity } from "./quantity.js";

/**
 * The plane's values: what an operator may change about the rendered objects. Every field has a
 * default or may be left out, so `{}` is a complete, valid set; unknown keys are refused, so a
 * misspelt key fails instead of being ignored.
 */

/**
 * The registry host image references name. k3s's `registries.yaml` points it at Airlock's registry,
 * so this logical name works at any site; a site that mirrors into its own registry names that one.
 */
export const DEFAULT_REGISTRY = "registry.airlock.local:5443";

const DNS_LABEL = "[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?";
const DNS_NAME_PATTERN = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);
const SAN_DNS_PATTERN = new RegExp(`^(?:\\*\\.)?${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);
const MAX_DNS_NAME = 253;
const LABEL_NAME_PATTERN = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE_PATTERN = /^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/;
const HOST_PORT_PATTERN = /^(?<host>\[[0-9A-Fa-f:.]+\]|[^:[\]]+):(?<port>\d{1,5})$/;

function isDnsName(value: string): boolean {
  return value.length <= MAX_DNS_NAME && DNS_NAME_PATTERN.test(value);
}

/** A label key: `name` or `prefix/name`, the prefix a DNS name (Kubernetes' qualified name). */
function isLabelKey(value: string): boolean {
  const slash = value.indexOf("/");
  if (slash === -1) return LABEL_NAME_PATTERN.test(value);
  return isDnsName(value.slice(0, slash)) && LABEL_NAME_PATTERN.test(value.slice(slash + 1));
}

const labelKey = z.string().refine(isLabelKey, {
  error: "must be a label key: name or prefix/name, letters, digits, '-', '_', '.', at most 63 per part",
});
const labelValue = z.string().regex(LABEL_VALUE_PATTERN, {
  error: "must be a label value: at most 63 letters, digits, '-', '_', '.', starting and ending alphanumeric",
});
const labels = z.record(labelKey, labelValue);

const dnsName = z.string().refine(isDnsName, {
  error: "must be a DNS name: lowercase labels of letters, digits and '-', dot-separated",
});

/** YAML writes `cpu: 1` as a number; Kubernetes reads numbers as quantities too. */
const quantity = z
  .union([z.string(), z.number()], { error: "expected a quantity such as 500m, 1, 256Mi or 1Gi" })
  .transform((value, ctx) => {
    const text = String(value);
    if (!isQuantity(text)) {
      ctx.addIssue({
        code: "custom",
        input: value,
        message: `${JSON.stringify(text)} is not a non-negative quantity such as 500m, 1, 256Mi or 1Gi`,
      });
      return z.NEVER;
    }
    return text;
  });

const port = z.int().min(1, { error: "must be ≥ 1" }).max(65535, { error: "must be ≤ 65535" });

/** A registry `host[:port]` as an image reference names it: a dot, a port or `localhost` marks a host. */
const registryHost = z.string().refine(
  (value) => {
    try {
      return parseReference(`${value}/probe`).registry === value;
    } catch {
      return false;
    }
  },
  { error: "must be a registry host[:port] such as registry.airlock.local:5443" },
);

/** `repository:tag` as a bundle's airlock.json names an image: no registry host, no digest. */
const imageName = z.string().refine(
  (value) => {
    try {
      const reference = parseReference(value);
      return (
        reference.registry === undefined &&
        reference.digest === undefined &&
        value.endsWith(`:${reference.tag}`)
      );
    } catch {
      return false;
    }
  },
  { error: "must be repository:tag as the bundle names the image, e.g. hubble/msgbroker:4.5.0" },
);

const subjectAltName = z
  .string()
  .refine((value) => isIP(value) !== 0 || (value.length <= MAX_DNS_NAME && SAN_DNS_PATTERN.test(value)), {
    error: "must be a DNS name (a leading *. allowed) or an IP address",
  });

const hostPort = z.string().refine(
  (value) => {
    const match = HOST_PORT_PATTERN.exec(value);
    if (match === null) return false;
    const port = Number(match.groups!.port);
    const host = match.groups!.host!;
    const hostOk = host.startsWith("[") ? isIP(host.slice(1, -1)) === 6 : isIP(host) === 4 || isDnsName(host);
    return hostOk && port >= 1 && port <= 65535;
  },
  { error: "must be host:port, e.g. 127.0.0.1:16222" },
);

const toleration = z
  .strictObject({
    key: labelKey.optional(),
    operator: z.enum(["Exists", "Equal"]).optional(),
    value: labelValue.optional(),
    effect: z.enum(["NoSchedule", "PreferNoSchedule", "NoExecute"]).optional(),
    tolerationSeconds: z.int().optional(),
  })
  // The API server's own rules for a toleration, checked here so a bad one fails before apply.
  .superRefine((value, ctx) => {
    if (value.operator === "Exists" && value.value !== undefined && value.value !== "") {
      ctx.addIssue({ code: "custom", path: ["value"], message: "must be empty when operator is Exists" });
    }
    if ((value.key === undefined || value.key === "") && value.operator !== "Exists") {
      ctx.addIssue({ code: "custom", path: ["operator"], message: "must be Exists when no key is given" });
    }
    if (value.tolerationSeconds !== undefined && value.effect !== "NoExecute") {
      ctx.addIssue({
        code: "custom",
        path: ["tolerationSeconds"],
        message: "only applies to effect NoExecute",
      });
    }
  });

const resourceAmounts = (cpu: string, memory: string) =>
  z.strictObject({ cpu: quantity.default(cpu), memory: quantity.default(memory) }).prefault({});

const msgbrokerSchema = z
  .strictObject({
    /** The image as the bundle names it; `hubble/msgbroker:<plane version>` when left out. */
    image: imageName.optional(),
    replicas: z.int().min(1, { error: "must be ≥ 1" }).default(2),
    /** Pods with an ordinal at or above it take a new revision: the upgrade engine's canary lever. */
    partition: z.int().min(0, { error: "must be ≥ 0" }).default(0),
    resources: z
      .strictObject({
        requests: resourceAmounts("100m", "128Mi"),
        limits: resourceAmounts("1", "512Mi"),
      })
      .prefault({}),
    ports: z
      .strictObject({
        client: port.default(4222),
        cluster: port.default(6222),
        monitor: port.default(8222),
      })
      .prefault({}),
    persistence: z
      .strictObject({
        enabled: z.boolean().default(false),
        size: quantity.default("1Gi"),
        storageClassName: dnsName.optional(),
      })
      .prefault({}),
    /** JetStream (persistent streams), stored under /data: on the volume when persistence is enabled. */
    jetstream: z.strictObject({ enabled: z.boolean().default(false) }).prefault({}),
    /** Whether clients must present a certificate from the site CA (mutual TLS). */
    tls: z.strictObject({ verifyClients: z.boolean().default(true) }).prefault({}),
    /** More names or addresses the broker certificates carry, for clients that reach it otherwise. */
    extraSans: z.array(subjectAltName).default([]),
    nodeSelector: labels.default({}),
    tolerations: z.array(toleration).default([]),
    networkPolicy: z
      .strictObject({
        /** Namespaces (by their labels) whose pods may reach the client port; any source when left out. */
        clientNamespaceSelector: labels.optional(),
      })
      .prefault({}),
    /**
     * TEST ONLY: `host:port` of each ordinal's route, in ordinal order, in place of its cluster DNS
     * name, so real brokers can cluster on 127.0.0.1. `render` refuses values that set it.
     */
    routeOverrides: z.array(hostPort).optional(),
  })
  .prefault({})
  .superRefine((broker, ctx) => {
    for (const resource of ["cpu", "memory"] as const) {
      const request = broker.resources.requests[resource];
      const limit = broker.resources.limits[resource];
      if (compareQuantities(request, limit) > 0) {
        ctx.addIssue({
          code: "custom",
          path: ["resources", "requests", resource],
          message: `${request} is more than the limit ${limit}`,
        });
      }
    }
    if (compareQuantities(broker.persistence.size, "0") <= 0) {
      ctx.addIssue({ code: "custom", path: ["persistence", "size"], message: "must be more than 0" });
    }
    const { client, cluster, monitor } = broker.ports;
    if (new Set([client, cluster, monitor]).size < 3) {
      ctx.addIssue({
        code: "custom",
        path: ["ports"],
        message: `client ${client}, cluster ${cluster} and monitor ${monitor} must be three different ports`,
      });
    }
    if (broker.routeOverrides !== undefined && broker.routeOverrides.length !== broker.replicas) {
      ctx.addIssue({
        code: "custom",
        path: ["routeOverrides"],
        message: `lists ${broker.routeOverrides.length} routes for ${broker.replicas} replicas`,
      });
    }
  });

export const valuesSchema = z.strictObject({
  /** The site registry `host[:port]` every image reference is rewritten to. */
  registry: registryHost.default(DEFAULT_REGISTRY),
  /** The cluster's DNS domain, the suffix of every stable broker name. */
  clusterDomain: dnsName.default("cluster.local"),
  msgbroker: msgbrokerSchema,
});

/** Values as an operator writes them: any field may be left out. */
export type ValuesInput = z.input<typeof valuesSchema>;
/** Values with every default filled in. */
export type Values = z.output<typeof valuesSchema>;

/** What the operator is told to do, by field (list indexes written as `[]`); the nearest parent's hint applies. */
const FIELD_HINTS: Record<string, string> = {
  registry: "write the site registry as host[:port], e.g. registry.airlock.local:5443",
  clusterDomain: "write the cluster's DNS domain, cluster.local unless the cluster was set up otherwise",
  "msgbroker.image": "name the broker image as the bundle does (airlock bundle inspect lists them)",
  "msgbroker.replicas": "replicas is a whole number of brokers, 1 or more (2 or more form a cluster)",
  "msgbroker.partition":
    "partition is a whole number, 0 or more: pods with an ordinal at or above it take a new revision",
  "msgbroker.resources":
    "write quantities as Kubernetes does: cpu 250m or 1, memory 256Mi or 1Gi; requests must not exceed limits",
  "msgbroker.ports":
    "a port is a whole number from 1 to 65535; client, cluster and monitor ports must differ",
  "msgbroker.persistence": "persistence is { enabled: true|false, size: 1Gi, storageClassName: NAME }",
  "msgbroker.jetstream": "jetstream is { enabled: true|false }",
  "msgbroker.tls": "tls is { verifyClients: true|false }",
  "msgbroker.extraSans": "list extra certificate names as DNS names or IP addresses",
  "msgbroker.nodeSelector": "nodeSelector maps node label keys to values, e.g. { kubernetes.io/os: linux }",
  "msgbroker.tolerations":
    "a toleration is { key, operator: Exists|Equal, value, effect: NoSchedule|PreferNoSchedule|NoExecute, tolerationSeconds }",
  "msgbroker.networkPolicy":
    "networkPolicy.clientNamespaceSelector maps namespace label keys to values; leave it out to allow any client",
  "msgbroker.routeOverrides": "routeOverrides is for tests on one host: one host:port per replica",
};
const VALUES_HINT = "manifests/README.md lists every values field and its default";

/** Messages for zod's own issues, in the words an operator writing YAML or JSON knows. */
const issueMessage: z.core.$ZodErrorMap = (issue) => {
  if (issue.code === "invalid_value") return `expected one of ${issue.values.map(String).join(", ")}`;
  return schemaIssueMessage(issue, {
    numbersAsWritten: true,
    // z.int() reports a string where it wanted a whole number as "expected number".
    expected: issue.inst instanceof z.ZodNumberFormat ? "int" : undefined,
  });
};

/** `msgbroker.tolerations[0].effect`, `msgbroker.nodeSelector["kubernetes.io/os"]`, as messages name a field. */
function fieldName(path: readonly PropertyKey[]): string {
  return path
    .map((segment, index) => {
      if (typeof segment === "number") return `[${segment}]`;
      const name = String(segment);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return `[${JSON.stringify(name)}]`;
      return index === 0 ? name : `.${name}`;
    })
    .join("");
}

function hintFor(path: readonly PropertyKey[]): string {
  for (let length = path.length; length > 0; length--) {
    const hint = FIELD_HINTS[fieldName(path.slice(0, length)).replace(/\[\d+\]/g, "[]")];
    if (hint !== undefined) return hint;
  }
  return VALUES_HINT;
}

/**
 * Values with their defaults filled in, or a VALUES_INVALID error naming every bad field as
 * `msgbroker.replicas: must be ≥ 1`, the first one in `where`.
 */
export function parseValues(input: unknown): Values {
  const result = valuesSchema.safeParse(input ?? {}, { error: issueMessage });
  if (result.success) return result.data;
  const issues = result.error.issues.flatMap((issue) => fieldIssuesOf(issue, hintFor));
  // In the order zod found them: a values document has no positions to sort by.
  throw fieldIssuesError("VALUES_INVALID", issues, {
    locate: (issue) => ({ at: fieldName(issue.path) || "values", order: 0 }),
    describe: (issue) => issue.message,
  });
}
