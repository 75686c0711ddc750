import { AirlockError, digestOf } from "../registry/oci/index.js";
import {
  BROKER_CONFIG_DIR,
  BROKER_CONFIG_KEY,
  BROKER_DATA_DIR,
  BROKER_PID_FILE,
  BROKER_RUN_DIR,
  BROKER_TLS_DIR,
  CLIENT_ADVERTISE_ENV,
  CLUSTER_ADVERTISE_ENV,
  LAME_DUCK_DURATION_SECONDS,
  LAME_DUCK_GRACE_PERIOD_SECONDS,
  POD_BROKER_PATHS,
  POD_NAME_ENV,
  brokerPodHost,
  renderBrokerConfig,
} from "./broker-config.js";
import { pinImage, type ImageMap } from "./images.js";
import type {
  ConfigMap,
  HttpProbe,
  Labels,
  Namespace,
  NetworkPolicy,
  ObjectMeta,
  PersistentVolumeClaimTemplate,
  PlaneObject,
  PodDisruptionBudget,
  Secret,
  Service,
  StatefulSet,
  Toleration,
  Volume,
} from "./kubernetes.js";
import {
  BROKER,
  BROKER_CONFIG,
  BROKER_HEADLESS,
  BROKER_PEER_SECRET,
  BROKER_REPOSITORY,
  BROKER_SERVER_SECRET,
  BROKER_UID,
  NAMESPACE,
} from "./names.js";
import { parseValues, type Values, type ValuesInput } from "./values.js";

/** The broker's certificates as PEM text: the installer's PKI issues them (msgbroker-peer, msgbroker-server). */
export interface BrokerCertificatePems {
  /** The site CA certificate. */
  ca: string;
  peerCert: string;
  peerKey: string;
  serverCert: string;
  serverKey: string;
}

export interface RenderInputs {
  /**
   * The installation's name, the same across upgrades: the `app.kubernetes.io/instance` and
   * `airlock.dev/release` labels, by which the installer finds and prunes what it applied.
   */
  release: string;
  /** The plane's version (the bundle's): the `app.kubernetes.io/version` label and the broker image's tag. */
  version: string;
  certificates: BrokerCertificatePems;
}

export const RELEASE_LABEL = "airlock.dev/release";
/** Changes with the broker config or certificates, so pods restart to load them. */
export const CONFIG_DIGEST_ANNOTATION = "airlock.dev/config-digest";
const PART_OF = "hubble";
const MANAGED_BY = "airlock";
const BROKER_COMPONENT = "message-broker";
const CERTIFICATE_FILE_MODE = 0o440;
/** Where the msgbroker image (Debian's package) has the binary; the image has no shell. */
const BROKER_BINARY = "/usr/sbin/nats-server";
const CONFIG_FILE_MODE = 0o444;
const HOSTNAME_TOPOLOGY = "kubernetes.io/hostname";
const ZONE_TOPOLOGY = "topology.kubernetes.io/zone";
// Both become label values; a release name is further held to a DNS label, as object names are.
// A label value cannot carry semver's '+' build metadata.
const RELEASE_PATTERN = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const VERSION_PATTERN = /^[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/;
const PEM_PRIVATE_KEY = /-----BEGIN (?:[A-Z]+ )?PRIVATE KEY-----[\s\S]+-----END (?:[A-Z]+ )?PRIVATE KEY-----/;

interface RenderContext {
  values: Values;
  inputs: RenderInputs;
}

function checkInputs(inputs: RenderInputs): void {
  if (!RELEASE_PATTERN.test(inputs.release)) {
    throw new AirlockError("RELEASE_INVALID", `release name ${JSON.stringify(inputs.release)} is not valid`, {
      where: "release",
      hint: "a release name is at most 63 lowercase letters, digits and '-', starting and ending alphanumeric",
    });
  }
  if (!VERSION_PATTERN.test(inputs.version)) {
    throw new AirlockError(
      "RELEASE_INVALID",
      `version ${JSON.stringify(inputs.version)} is not a label value`,
      {
        where: "version",
        hint: "the plane's version must be at most 63 letters, digits, '-', '_' and '.' (no '+' build metadata)",
      },
    );
  }
  const pems: Array<[keyof BrokerCertificatePems, RegExp]> = [
    ["ca", PEM_CERTIFICATE],
    ["peerCert", PEM_CERTIFICATE],
    ["peerKey", PEM_PRIVATE_KEY],
    ["serverCert", PEM_CERTIFICATE],
    ["serverKey", PEM_PRIVATE_KEY],
  ];
  for (const [name, pattern] of pems) {
    if (!pattern.test(inputs.certificates[name])) {
      throw new AirlockError("CERTIFICATES_INVALID", `certificates.${name} is not PEM`, {
        where: `certificates.${name}`,
        hint: "pass the PEM files the site PKI issued (pki/ca.crt, msgbroker-peer.*, msgbroker-server.*)",
      });
    }
  }
}

/** The labels a selector matches on: only those that never change for the life of the release. */
function brokerSelector(context: RenderContext): Labels {
  return {
    "app.kubernetes.io/name": BROKER,
    "app.kubernetes.io/instance": context.inputs.release,
    "app.kubernetes.io/component": BROKER_COMPONENT,
  };
}

/** The stable labels, version excepted: what a StatefulSet's immutable claim templates may carry. */
function stableLabels(context: RenderContext, name: string, component: string): Labels {
  return {
    "app.kubernetes.io/name": name,
    "app.kubernetes.io/instance": context.inputs.release,
    "app.kubernetes.io/component": component,
    "app.kubernetes.io/part-of": PART_OF,
    "app.kubernetes.io/managed-by": MANAGED_BY,
    [RELEASE_LABEL]: context.inputs.release,
  };
}

function labelsOf(context: RenderContext, name: string, component: string): Labels {
  return { ...stableLabels(context, name, component), "app.kubernetes.io/version": context.inputs.version };
}

function brokerMeta(context: RenderContext, name: string): ObjectMeta {
  return { name, namespace: NAMESPACE, labels: labelsOf(context, BROKER, BROKER_COMPONENT) };
}

function renderNamespace(context: RenderContext): Namespace {
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name: NAMESPACE,
      labels: {
        ...labelsOf(context, NAMESPACE, "namespace"),
        // The broker pods meet the restricted Pod Security Standard; the namespace holds everyone to it.
        "pod-security.kubernetes.io/enforce": "restricted",
      },
    },
  };
}

function base64(text: string): string {
  return Buffer.from(text, "utf8").toString("base64");
}

function renderTlsSecret(context: RenderContext, name: string, cert: string, key: string): Secret {
  return {
    apiVersion: "v1",
    kind: "Secret",
    metadata: brokerMeta(context, name),
    type: "kubernetes.io/tls",
    data: {
      "ca.crt": base64(context.inputs.certificates.ca),
      "tls.crt": base64(cert),
      "tls.key": base64(key),
    },
  };
}

function renderConfigMap(context: RenderContext, config: string): ConfigMap {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: brokerMeta(context, BROKER_CONFIG),
    data: { [BROKER_CONFIG_KEY]: config },
  };
}

function renderHeadlessService(context: RenderContext): Service {
  const { ports } = context.values.msgbroker;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: brokerMeta(context, BROKER_HEADLESS),
    spec: {
      type: "ClusterIP",
      clusterIP: "None",
      // Peers must resolve each other's names before they are ready: readiness needs the routes.
      publishNotReadyAddresses: true,
      selector: brokerSelector(context),
      ports: [
        { name: "cluster", port: ports.cluster, targetPort: "cluster", protocol: "TCP" },
        { name: "client", port: ports.client, targetPort: "client", protocol: "TCP" },
      ],
    },
  };
}

function renderClientService(context: RenderContext): Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: brokerMeta(context, BROKER),
    spec: {
      type: "ClusterIP",
      selector: brokerSelector(context),
      ports: [
        {
          name: "client",
          port: context.values.msgbroker.ports.client,
          targetPort: "client",
          protocol: "TCP",
        },
      ],
    },
  };
}

function httpProbe(path: string, timing: Omit<HttpProbe, "httpGet">): HttpProbe {
  return { httpGet: { path, port: "monitor" }, ...timing };
}

/** Toleration fields in one order, whatever order the values wrote them in. */
function renderToleration(toleration: Toleration): Toleration {
  return {
    ...(toleration.key === undefined ? {} : { key: toleration.key }),
    ...(toleration.operator === undefined ? {} : { operator: toleration.operator }),
    ...(toleration.value === undefined ? {} : { value: toleration.value }),
    ...(toleration.effect === undefined ? {} : { effect: toleration.effect }),
    ...(toleration.tolerationSeconds === undefined
      ? {}
      : { tolerationSeconds: toleration.tolerationSeconds }),
  };
}

function sortedEntries(record: Labels): Labels {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

function renderStatefulSet(context: RenderContext, image: string, configDigest: string): StatefulSet {
  const broker = context.values.msgbroker;
  const selector = { matchLabels: brokerSelector(context) };
  const persistent = broker.persistence.enabled;
  const claimTemplate: PersistentVolumeClaimTemplate = {
    // Claim templates cannot change after creation: only labels that stay for the release's life.
    metadata: { name: "data", labels: stableLabels(context, BROKER, BROKER_COMPONENT) },
    spec: {
      accessModes: ["ReadWriteOnce"],
      ...(broker.persistence.storageClassName === undefined
        ? {}
        : { storageClassName: broker.persistence.storageClassName }),
      resources: { requests: { storage: broker.persistence.size } },
    },
  };
  const volumes: Volume[] = [
    { name: "config", configMap: { name: BROKER_CONFIG, defaultMode: CONFIG_FILE_MODE } },
    {
      name: "tls",
      projected: {
        // Group-readable: fsGroup makes the broker's group own the files.
        defaultMode: CERTIFICATE_FILE_MODE,
        sources: [
          {
            secret: {
              name: BROKER_PEER_SECRET,
              items: [
                { key: "ca.crt", path: "ca.crt" },
                { key: "tls.crt", path: "peer.crt" },
                { key: "tls.key", path: "peer.key" },
              ],
            },
          },
          {
            secret: {
              name: BROKER_SERVER_SECRET,
              items: [
                { key: "tls.crt", path: "server.crt" },
                { key: "tls.key", path: "server.key" },
              ],
            },
          },
        ],
      },
    },
    { name: "run", emptyDir: {} },
    ...(persistent ? [] : [{ name: "data", emptyDir: {} }]),
  ];
  const nodeSelector = sortedEntries(broker.nodeSelector);
  return {
    apiVersion: "apps/v1",
    kind: "StatefulSet",
    metadata: brokerMeta(context, BROKER),
    spec: {
      replicas: broker.replicas,
      serviceName: BROKER_HEADLESS,
      // Brokers start together: each waits for routes to the others, not for the others to be ready.
      podManagementPolicy: "Parallel",
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { partition: broker.partition } },
      selector,
      template: {
        metadata: {
          labels: labelsOf(context, BROKER, BROKER_COMPONENT),
          annotations: { [CONFIG_DIGEST_ANNOTATION]: configDigest },
        },
        spec: {
          // The broker never calls the Kubernetes API.
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          // Lame duck's grace and duration, then a margin for the last clients to close.
          terminationGracePeriodSeconds: LAME_DUCK_GRACE_PERIOD_SECONDS + LAME_DUCK_DURATION_SECONDS + 20,
          securityContext: {
            runAsNonRoot: true,
            runAsUser: BROKER_UID,
            runAsGroup: BROKER_UID,
            fsGroup: BROKER_UID,
            seccompProfile: { type: "RuntimeDefault" },
          },
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                { weight: 100, podAffinityTerm: { labelSelector: selector, topologyKey: HOSTNAME_TOPOLOGY } },
              ],
            },
          },
          topologySpreadConstraints: [
            {
              maxSkew: 1,
              topologyKey: ZONE_TOPOLOGY,
              whenUnsatisfiable: "ScheduleAnyway",
              labelSelector: selector,
            },
          ],
          ...(Object.keys(nodeSelector).length === 0 ? {} : { nodeSelector }),
          ...(broker.tolerations.length === 0
            ? {}
            : { tolerations: broker.tolerations.map(renderToleration) }),
          containers: [
            {
              name: BROKER,
              image,
              imagePullPolicy: "IfNotPresent",
              args: ["--config", `${BROKER_CONFIG_DIR}/${BROKER_CONFIG_KEY}`],
              env: [
                { name: POD_NAME_ENV, valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                {
                  name: CLUSTER_ADVERTISE_ENV,
                  value: `${brokerPodHost(context.values, `$(${POD_NAME_ENV})`)}:${broker.ports.cluster}`,
                },
                {
                  name: CLIENT_ADVERTISE_ENV,
                  value: `${brokerPodHost(context.values, `$(${POD_NAME_ENV})`)}:${broker.ports.client}`,
                },
              ],
              ports: [
                { name: "client", containerPort: broker.ports.client, protocol: "TCP" },
                { name: "cluster", containerPort: broker.ports.cluster, protocol: "TCP" },
                { name: "monitor", containerPort: broker.ports.monitor, protocol: "TCP" },
              ],
              resources: {
                requests: { ...broker.resources.requests },
                limits: { ...broker.resources.limits },
              },
              securityContext: {
                runAsNonRoot: true,
                runAsUser: BROKER_UID,
                runAsGroup: BROKER_UID,
                readOnlyRootFilesystem: true,
                allowPrivilegeEscalation: false,
                capabilities: { drop: ["ALL"] },
              },
              // The full health check waits for JetStream to catch up once, at start. Afterwards
              // it also fails while JetStream lacks a quorum, which losing one peer causes: restarting
              // or unreadying the survivors then would turn one lost broker into an outage.
              startupProbe: httpProbe("/healthz", {
                periodSeconds: 2,
                timeoutSeconds: 5,
                failureThreshold: 90,
              }),
              readinessProbe: httpProbe("/healthz?js-enabled-only=true", {
                periodSeconds: 10,
                timeoutSeconds: 5,
                failureThreshold: 3,
              }),
              livenessProbe: httpProbe("/healthz?js-enabled-only=true", {
                periodSeconds: 30,
                timeoutSeconds: 5,
                failureThreshold: 3,
              }),
              // Lame duck on deletion: clients move to the other brokers before this one exits.
              lifecycle: {
                preStop: {
                  exec: { command: [BROKER_BINARY, "--signal", `ldm=${BROKER_PID_FILE}`] },
                },
              },
              volumeMounts: [
                { name: "config", mountPath: BROKER_CONFIG_DIR, readOnly: true },
                { name: "tls", mountPath: BROKER_TLS_DIR, readOnly: true },
                { name: "run", mountPath: BROKER_RUN_DIR },
                { name: "data", mountPath: BROKER_DATA_DIR },
              ],
            },
          ],
          volumes,
        },
      },
      ...(persistent ? { volumeClaimTemplates: [claimTemplate] } : {}),
    },
  };
}

function renderDisruptionBudget(context: RenderContext): PodDisruptionBudget {
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: brokerMeta(context, BROKER),
    spec: { maxUnavailable: 1, selector: { matchLabels: brokerSelector(context) } },
  };
}

function renderNetworkPolicy(context: RenderContext): NetworkPolicy {
  const clientNamespaces = context.values.msgbroker.networkPolicy.clientNamespaceSelector;
  const brokers = { matchLabels: brokerSelector(context) };
  return {
    apiVersion: "networking.k8s.io/v1",
    kind: "NetworkPolicy",
    metadata: brokerMeta(context, BROKER),
    spec: {
      podSelector: brokers,
      policyTypes: ["Ingress"],
      ingress: [
        {
          ...(clientNamespaces === undefined
            ? {}
            : { from: [{ namespaceSelector: { matchLabels: sortedEntries(clientNamespaces) } }] }),
          ports: [{ protocol: "TCP", port: "client" }],
        },
        { from: [{ podSelector: brokers }], ports: [{ protocol: "TCP", port: "cluster" }] },
        // Open to any source: the kubelet's probes come from the node, which no selector names.
        { ports: [{ protocol: "TCP", port: "monitor" }] },
      ],
    },
  };
}

/**
 * The management plane's objects in apply order: the namespace, the network policy (before any
 * pod runs), the broker's Secrets and ConfigMap, its Services, the StatefulSet, its disruption
 * budget. Pure: the same values, images and inputs give deep-equal objects.
 */
export function render(input: ValuesInput, images: ImageMap, inputs: RenderInputs): PlaneObject[] {
  const values = parseValues(input);
  if (values.msgbroker.routeOverrides !== undefined) {
    throw new AirlockError("VALUES_INVALID", "msgbroker.routeOverrides: only for brokers run by tests", {
      where: "msgbroker.routeOverrides",
      hint: "remove routeOverrides: in a cluster every broker routes to its peers' stable DNS names",
    });
  }
  checkInputs(inputs);
  const context: RenderContext = { values, inputs };
  const imageRef = values.msgbroker.image ?? `${BROKER_REPOSITORY}:${inputs.version}`;
  const image = pinImage(images, imageRef, values.registry);
  const config = renderBrokerConfig(values, POD_BROKER_PATHS);
  const { certificates } = inputs;
  // Keys stay out: a new key always comes with a new certificate, which already changes the digest.
  const configDigest = digestOf(
    [config, certificates.ca, certificates.peerCert, certificates.serverCert].join("\0"),
  );
  return [
    renderNamespace(context),
    renderNetworkPolicy(context),
    renderTlsSecret(context, BROKER_PEER_SECRET, certificates.peerCert, certificates.peerKey),
    renderTlsSecret(context, BROKER_SERVER_SECRET, certificates.serverCert, certificates.serverKey),
    renderConfigMap(context, config),
    renderHeadlessService(context),
    renderClientService(context),
    renderStatefulSet(context, image, configDigest),
    renderDisruptionBudget(context),
  ];
}
