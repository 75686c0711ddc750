import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { StatefulSet as StatefulSetModel, type IStatefulSet } from "kubernetes-models/apps/v1";
import {
  ConfigMap as ConfigMapModel,
  Namespace as NamespaceModel,
  Secret as SecretModel,
  Service as ServiceModel,
  type IConfigMap,
  type INamespace,
  type ISecret,
  type IService,
} from "kubernetes-models/v1";
import {
  NetworkPolicy as NetworkPolicyModel,
  type INetworkPolicy,
} from "kubernetes-models/networking.k8s.io/v1";
import {
  PodDisruptionBudget as PodDisruptionBudgetModel,
  type IPodDisruptionBudget,
} from "kubernetes-models/policy/v1";
import { afterAll, beforeAll, describe, expect, expectTypeOf, it } from "vitest";
import {
  CONFIG_DIGEST_ANNOTATION,
  RELEASE_LABEL,
  pinImage,
  render,
  renderBrokerConfig,
  type ConfigMap,
  type ImageMap,
  type Namespace,
  type NetworkPolicy,
  type PlaneObject,
  type PodDisruptionBudget,
  type RenderInputs,
  type Secret,
  type Service,
  type StatefulSet,
  type ValuesInput,
} from "../../../manifests/index.js";
import { AirlockError } from "../../../registry/oci/index.js";
import {
  BROKER_DIGEST,
  BUNDLE_IMAGES,
  CUSTOM_VALUES,
  RELEASE,
  VERSION,
  issueBroker,
} from "./plane-fixtures.js";

/**
 * `never` at every key, at any depth, that Mine has and Theirs lacks: a type with a field the API
 * does not know (a misspelling the schemas' validators would let through) does not extend it.
 */
type Exactly<Mine, Theirs> = Mine extends readonly (infer Item)[]
  ? Theirs extends readonly (infer TheirItem)[]
    ? Exactly<Item, TheirItem>[]
    : never
  : Mine extends object
    ? { [Key in keyof Mine]: Key extends keyof Theirs ? Exactly<Mine[Key], NonNullable<Theirs[Key]>> : never }
    : Mine;

/** The real API schemas (kubernetes-models: the OpenAPI of a current Kubernetes release), by kind. */
const API_MODELS: Record<PlaneObject["kind"], new (data: never) => { validate(): void }> = {
  Namespace: NamespaceModel,
  Secret: SecretModel,
  ConfigMap: ConfigMapModel,
  Service: ServiceModel,
  StatefulSet: StatefulSetModel,
  PodDisruptionBudget: PodDisruptionBudgetModel,
  NetworkPolicy: NetworkPolicyModel,
};

let dir: string;
let inputs: RenderInputs;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-render-"));
  const { pems } = await issueBroker(dir, { replicas: 3 });
  inputs = { release: RELEASE, version: VERSION, certificates: pems };
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function renderWith(values: ValuesInput = {}): PlaneObject[] {
  return render(values, BUNDLE_IMAGES, inputs);
}

function only<Kind extends PlaneObject["kind"]>(
  objects: PlaneObject[],
  kind: Kind,
  name?: string,
): Extract<PlaneObject, { kind: Kind }> {
  const found = objects.filter(
    (object): object is Extract<PlaneObject, { kind: Kind }> =>
      object.kind === kind && (name === undefined || object.metadata.name === name),
  );
  expect(found, `${kind} ${name ?? ""}`).toHaveLength(1);
  return found[0]!;
}

function expectValidAgainstApi(objects: PlaneObject[]): void {
  for (const object of objects) {
    const Model = API_MODELS[object.kind];
    expect(
      () => new Model(structuredClone(object) as never).validate(),
      `${object.kind} ${object.metadata.name}`,
    ).not.toThrow();
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value === "object" && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

function renderError(
  values: ValuesInput,
  images: ImageMap = BUNDLE_IMAGES,
  renderInputs = inputs,
): AirlockError {
  try {
    render(values, images, renderInputs);
  } catch (error) {
    if (error instanceof AirlockError) return error;
    throw error;
  }
  throw new Error("render succeeded");
}

const NON_DEFAULT_VALUES: Array<[string, ValuesInput]> = [
  ["every field changed", CUSTOM_VALUES],
  ["3 replicas", { msgbroker: { replicas: 3 } }],
  ["persistence on, default storage class", { msgbroker: { persistence: { enabled: true, size: "500Mi" } } }],
  ["tolerations only", { msgbroker: { tolerations: [{ key: "dedicated", operator: "Exists" }] } }],
  ["nodeSelector only", { msgbroker: { nodeSelector: { "kubernetes.io/arch": "amd64" } } }],
  ["extra SANs", { msgbroker: { extraSans: ["nats.site.example", "192.168.1.10", "fd00::10"] } }],
  [
    "custom resources",
    {
      msgbroker: {
        resources: { requests: { cpu: 0.5, memory: "1Gi" }, limits: { cpu: "4", memory: "4Gi" } },
      },
    },
  ],
  ["a single replica", { msgbroker: { replicas: 1, partition: 1 } }],
];

describe("render: against the Kubernetes API schemas", () => {
  it("renders the plane in apply order, every object valid, for default values", () => {
    const objects = renderWith();
    expect(objects.map((object) => `${object.kind}/${object.metadata.name}`)).toEqual([
      "Namespace/hubble-system",
      "NetworkPolicy/msgbroker",
      "Secret/msgbroker-peer-tls",
      "Secret/msgbroker-server-tls",
      "ConfigMap/msgbroker-config",
      "Service/msgbroker-headless",
      "Service/msgbroker",
      "StatefulSet/msgbroker",
      "PodDisruptionBudget/msgbroker",
    ]);
    expectValidAgainstApi(objects);
  });

  it.each(NON_DEFAULT_VALUES)("renders valid objects for non-default values: %s", (_name, values) => {
    expectValidAgainstApi(renderWith(values));
  });

  it("would catch an invalid object: the schemas are really checked", () => {
    const statefulSet = only(renderWith(), "StatefulSet");
    const broken = structuredClone(statefulSet) as unknown as { spec: { replicas: unknown } };
    broken.spec.replicas = "two";
    expect(() => new StatefulSetModel(broken as IStatefulSet).validate()).toThrow(/replicas/);
    const badQuantity = structuredClone(statefulSet);
    badQuantity.spec.template.spec.containers[0]!.resources.limits.cpu = "-1x";
    expect(() => new StatefulSetModel(badQuantity).validate()).toThrow(/quantity/);
  });

  it("types every object with the API's own fields and no others", () => {
    // Compile-time checks (tsc): each type fits the API's and names no field the API lacks.
    expectTypeOf<Namespace>().toExtend<INamespace>();
    expectTypeOf<Namespace>().toExtend<Exactly<Namespace, INamespace>>();
    expectTypeOf<Secret>().toExtend<ISecret>();
    expectTypeOf<Secret>().toExtend<Exactly<Secret, ISecret>>();
    expectTypeOf<ConfigMap>().toExtend<IConfigMap>();
    expectTypeOf<ConfigMap>().toExtend<Exactly<ConfigMap, IConfigMap>>();
    expectTypeOf<Service>().toExtend<IService>();
    expectTypeOf<Service>().toExtend<Exactly<Service, IService>>();
    expectTypeOf<StatefulSet>().toExtend<IStatefulSet>();
    expectTypeOf<StatefulSet>().toExtend<Exactly<StatefulSet, IStatefulSet>>();
    expectTypeOf<PodDisruptionBudget>().toExtend<IPodDisruptionBudget>();
    expectTypeOf<PodDisruptionBudget>().toExtend<Exactly<PodDisruptionBudget, IPodDisruptionBudget>>();
    expectTypeOf<NetworkPolicy>().toExtend<INetworkPolicy>();
    expectTypeOf<NetworkPolicy>().toExtend<Exactly<NetworkPolicy, INetworkPolicy>>();
    expectTypeOf<{ spec: { replicas: number; replica: number } }>().not.toExtend<
      Exactly<{ spec: { replicas: number; replica: number } }, IStatefulSet>
    >();
  });
});

describe("render: the objects", () => {
  it("labels every object with the app.kubernetes.io labels, managed-by airlock and the release", () => {
    for (const object of renderWith(CUSTOM_VALUES)) {
      expect(object.metadata.labels, `${object.kind} ${object.metadata.name}`).toMatchObject({
        "app.kubernetes.io/name": expect.any(String) as string,
        "app.kubernetes.io/instance": RELEASE,
        "app.kubernetes.io/version": VERSION,
        "app.kubernetes.io/component": expect.any(String) as string,
        "app.kubernetes.io/part-of": "hubble",
        "app.kubernetes.io/managed-by": "airlock",
        [RELEASE_LABEL]: RELEASE,
      });
      if (object.kind !== "Namespace") expect(object.metadata.namespace).toBe("hubble-system");
    }
    const statefulSet = only(renderWith(CUSTOM_VALUES), "StatefulSet");
    expect(statefulSet.spec.template.metadata.labels).toEqual(statefulSet.metadata.labels);
    expect(statefulSet.spec.volumeClaimTemplates![0]!.metadata.labels[RELEASE_LABEL]).toBe(RELEASE);
  });

  it("holds the namespace to the restricted Pod Security Standard", () => {
    expect(only(renderWith(), "Namespace").metadata.labels["pod-security.kubernetes.io/enforce"]).toBe(
      "restricted",
    );
  });

  it("carries the certificates as kubernetes.io/tls Secrets, base64 in data", () => {
    const objects = renderWith();
    const decode = (secret: Secret, key: string): string =>
      Buffer.from(secret.data[key]!, "base64").toString("utf8");
    const peer = only(objects, "Secret", "msgbroker-peer-tls");
    const server = only(objects, "Secret", "msgbroker-server-tls");
    for (const secret of [peer, server]) {
      expect(secret.type).toBe("kubernetes.io/tls");
      expect(Object.keys(secret.data).sort()).toEqual(["ca.crt", "tls.crt", "tls.key"]);
      expect(decode(secret, "ca.crt")).toBe(inputs.certificates.ca);
    }
    expect(decode(peer, "tls.crt")).toBe(inputs.certificates.peerCert);
    expect(decode(peer, "tls.key")).toBe(inputs.certificates.peerKey);
    expect(decode(server, "tls.crt")).toBe(inputs.certificates.serverCert);
    expect(decode(server, "tls.key")).toBe(inputs.certificates.serverKey);
  });

  it("gives peers a headless Service that publishes pods before they are ready, and clients their own", () => {
    const objects = renderWith(CUSTOM_VALUES);
    const headless = only(objects, "Service", "msgbroker-headless");
    expect(headless.spec).toMatchObject({ clusterIP: "None", publishNotReadyAddresses: true });
    expect(headless.spec.ports.map((port) => [port.name, port.port])).toEqual([
      ["cluster", 16222],
      ["client", 14222],
    ]);
    const client = only(objects, "Service", "msgbroker");
    expect(client.spec.clusterIP).toBeUndefined();
    expect(client.spec.ports).toEqual([
      { name: "client", port: 14222, targetPort: "client", protocol: "TCP" },
    ]);
    const statefulSet = only(objects, "StatefulSet");
    for (const service of [headless, client]) {
      expect(service.spec.selector).toEqual(statefulSet.spec.selector.matchLabels);
    }
  });

  it("renders the StatefulSet from default values: 2 parallel replicas, partition 0, anti-affinity, spread, hardened, probed", () => {
    const statefulSet = only(renderWith(), "StatefulSet");
    const { spec } = statefulSet;
    expect(spec).toMatchObject({
      replicas: 2,
      serviceName: "msgbroker-headless",
      podManagementPolicy: "Parallel",
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { partition: 0 } },
    });
    const pod = spec.template.spec;
    const selector = spec.selector;
    expect(pod.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution).toEqual([
      { weight: 100, podAffinityTerm: { labelSelector: selector, topologyKey: "kubernetes.io/hostname" } },
    ]);
    expect(pod.topologySpreadConstraints[0]).toMatchObject({ maxSkew: 1, labelSelector: selector });
    expect(pod.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      seccompProfile: { type: "RuntimeDefault" },
    });
    expect(pod.nodeSelector).toBeUndefined();
    expect(pod.tolerations).toBeUndefined();
    const [container, ...others] = pod.containers;
    expect(others).toEqual([]);
    expect(container!.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1000,
      runAsGroup: 1000,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ["ALL"] },
    });
    expect(container!.image).toBe(`registry.airlock.local:5443/hubble/msgbroker@${BROKER_DIGEST}`);
    expect(container!.args).toEqual(["--config", "/etc/nats/nats.conf"]);
    expect(container!.resources).toEqual({
      requests: { cpu: "100m", memory: "128Mi" },
      limits: { cpu: "1", memory: "512Mi" },
    });
    expect(container!.readinessProbe.httpGet).toEqual({
      path: "/healthz?js-enabled-only=true",
      port: "monitor",
    });
    expect(container!.livenessProbe.httpGet.path).toMatch(/^\/healthz/);
    expect(container!.startupProbe.httpGet).toEqual({ path: "/healthz", port: "monitor" });
    expect(container!.ports.map((port) => [port.name, port.containerPort])).toEqual([
      ["client", 4222],
      ["cluster", 6222],
      ["monitor", 8222],
    ]);
    expect(container!.env).toEqual([
      { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
      {
        name: "CLUSTER_ADVERTISE",
        value: "$(POD_NAME).msgbroker-headless.hubble-system.svc.cluster.local:6222",
      },
      {
        name: "CLIENT_ADVERTISE",
        value: "$(POD_NAME).msgbroker-headless.hubble-system.svc.cluster.local:4222",
      },
    ]);
    expect(container!.volumeMounts.map((mount) => mount.mountPath)).toEqual([
      "/etc/nats",
      "/etc/nats-tls",
      "/var/run/nats",
      "/data",
    ]);
    expect(pod.volumes.find((volume) => volume.name === "data")).toEqual({ name: "data", emptyDir: {} });
    expect(spec.volumeClaimTemplates).toBeUndefined();
  });

  it("stops a broker in lame-duck mode: preStop signals ldm to the PID the config writes, within a grace period above lame duck's", () => {
    const objects = renderWith({});
    const pod = only(objects, "StatefulSet").spec.template.spec;
    const container = pod.containers[0]!;
    expect(container.lifecycle.preStop.exec.command).toEqual([
      "/usr/sbin/nats-server",
      "--signal",
      "ldm=/var/run/nats/nats.pid",
    ]);
    expect(pod.volumes.find((volume) => volume.name === "run")).toEqual({ name: "run", emptyDir: {} });
    const config = only(objects, "ConfigMap").data["nats.conf"]!;
    expect(config).toContain('pid_file: "/var/run/nats/nats.pid"\n');
    const seconds = (key: string): number => Number(new RegExp(`${key}: "(\\d+)s"`).exec(config)![1]);
    expect(seconds("lame_duck_duration")).toBeGreaterThanOrEqual(30);
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(
      seconds("lame_duck_grace_period") + seconds("lame_duck_duration"),
    );
    // The broker's server_name, which /routez lists, is the pod's name.
    expect(config).toContain("server_name: $POD_NAME\n");
    expect(container.env[0]).toEqual({
      name: "POD_NAME",
      valueFrom: { fieldRef: { fieldPath: "metadata.name" } },
    });
  });

  it("renders the StatefulSet from non-default values: replicas, partition, resources, claim template, placement", () => {
    const { spec } = only(renderWith(CUSTOM_VALUES), "StatefulSet");
    expect(spec.replicas).toBe(3);
    expect(spec.updateStrategy.rollingUpdate.partition).toBe(2);
    const pod = spec.template.spec;
    const container = pod.containers[0]!;
    expect(container.image).toBe(`harbor.site.example:8443/hubble/msgbroker@${BUNDLE_IMAGES[2]!.digest}`);
    expect(container.resources).toEqual({
      requests: { cpu: "250m", memory: "256Mi" },
      limits: { cpu: "2", memory: "1Gi" },
    });
    expect(container.env[1]!.value).toBe(
      "$(POD_NAME).msgbroker-headless.hubble-system.svc.k8s.site.example:16222",
    );
    expect(pod.nodeSelector).toEqual({
      "kubernetes.io/os": "linux",
      "node-role.kubernetes.io/plane": "true",
    });
    expect(pod.tolerations).toEqual(CUSTOM_VALUES.msgbroker.tolerations);
    expect(pod.volumes.map((volume) => volume.name)).toEqual(["config", "tls", "run"]);
    expect(spec.volumeClaimTemplates).toEqual([
      {
        // No version label: claim templates cannot change once the StatefulSet exists.
        metadata: {
          name: "data",
          labels: {
            "app.kubernetes.io/name": "msgbroker",
            "app.kubernetes.io/instance": RELEASE,
            "app.kubernetes.io/component": "message-broker",
            "app.kubernetes.io/part-of": "hubble",
            "app.kubernetes.io/managed-by": "airlock",
            [RELEASE_LABEL]: RELEASE,
          },
        },
        spec: {
          accessModes: ["ReadWriteOnce"],
          storageClassName: "local-path",
          resources: { requests: { storage: "10Gi" } },
        },
      },
    ]);
  });

  it("keeps the StatefulSet's immutable fields across versions, so an upgrade can apply it", () => {
    const immutable = (version: string) => {
      const { spec } = only(render(CUSTOM_VALUES, BUNDLE_IMAGES, { ...inputs, version }), "StatefulSet");
      return {
        selector: spec.selector,
        serviceName: spec.serviceName,
        podManagementPolicy: spec.podManagementPolicy,
        claims: spec.volumeClaimTemplates,
      };
    };
    expect(immutable("4.6.0")).toEqual(immutable(VERSION));
  });

  it("restarts pods when the broker config or certificates change, not otherwise", () => {
    const digestOf = (objects: PlaneObject[]) =>
      only(objects, "StatefulSet").spec.template.metadata.annotations[CONFIG_DIGEST_ANNOTATION];
    const base = digestOf(renderWith());
    expect(base).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(digestOf(renderWith({ msgbroker: { partition: 1 } }))).toBe(base);
    expect(digestOf(renderWith({ msgbroker: { replicas: 3 } }))).not.toBe(base);
    const rotated = { ...inputs.certificates, peerCert: `${inputs.certificates.peerCert}\n` };
    expect(digestOf(render({}, BUNDLE_IMAGES, { ...inputs, certificates: rotated }))).not.toBe(base);
  });

  it("carries the broker config in the ConfigMap the pods mount", () => {
    const objects = renderWith(CUSTOM_VALUES);
    const configMap = only(objects, "ConfigMap");
    expect(configMap.data).toEqual({ "nats.conf": renderBrokerConfig(CUSTOM_VALUES) });
    const { volumes } = only(objects, "StatefulSet").spec.template.spec;
    expect(volumes[0]).toEqual({
      name: "config",
      configMap: { name: configMap.metadata.name, defaultMode: 0o444 },
    });
  });

  it("lets one broker be disrupted at a time", () => {
    const objects = renderWith();
    const budget = only(objects, "PodDisruptionBudget");
    expect(budget.spec).toEqual({ maxUnavailable: 1, selector: only(objects, "StatefulSet").spec.selector });
  });

  it("admits only the client, cluster (from brokers) and monitor ports", () => {
    const objects = renderWith();
    const brokers = only(objects, "StatefulSet").spec.selector;
    const policy = only(objects, "NetworkPolicy");
    expect(policy.spec).toEqual({
      podSelector: brokers,
      policyTypes: ["Ingress"],
      ingress: [
        { ports: [{ protocol: "TCP", port: "client" }] },
        { from: [{ podSelector: brokers }], ports: [{ protocol: "TCP", port: "cluster" }] },
        { ports: [{ protocol: "TCP", port: "monitor" }] },
      ],
    });
    const restricted = only(renderWith(CUSTOM_VALUES), "NetworkPolicy");
    expect(restricted.spec.ingress[0]).toEqual({
      from: [{ namespaceSelector: { matchLabels: { "kubernetes.io/metadata.name": "hubble-apps" } } }],
      ports: [{ protocol: "TCP", port: "client" }],
    });
  });
});

describe("render: images", () => {
  it("pins the image by digest in the site registry, taking the bundle's airlock.json images as they are", () => {
    expect(pinImage(BUNDLE_IMAGES, "hubble/msgbroker:4.5.0", "registry.airlock.local:5443")).toBe(
      `registry.airlock.local:5443/hubble/msgbroker@${BROKER_DIGEST}`,
    );
    expect(
      pinImage(
        [{ ref: "hubble/msgbroker:4.5.0", digest: BROKER_DIGEST }],
        "hubble/msgbroker:4.5.0",
        "127.0.0.1:5000",
      ),
    ).toBe(`127.0.0.1:5000/hubble/msgbroker@${BROKER_DIGEST}`);
  });

  it("names an image the bundle lacks, and what the bundle has", () => {
    const missing = renderError(
      {},
      BUNDLE_IMAGES.filter((image) => !image.ref.endsWith(`:${VERSION}`)),
    );
    expect(missing.code).toBe("IMAGE_NOT_IN_BUNDLE");
    expect(missing.message).toBe("image hubble/msgbroker:4.5.0 is not in the bundle");
    expect(missing.where).toBe("hubble/msgbroker:4.5.0");
    expect(missing.hint).toContain("hubble/msgbroker:4.4.0");
    const asked = renderError({ msgbroker: { image: "hubble/msgbroker:9.9.9" } });
    expect([asked.code, asked.where]).toEqual(["IMAGE_NOT_IN_BUNDLE", "hubble/msgbroker:9.9.9"]);
    expect(renderError({}, []).hint).toMatch(/lists no images/);
  });

  it("never takes a pack for an image, and refuses a malformed digest", () => {
    const packOnly = [{ ref: "hubble/msgbroker:4.5.0", digest: BROKER_DIGEST, kind: "pack" }];
    expect(renderError({}, packOnly).code).toBe("IMAGE_NOT_IN_BUNDLE");
    const badDigest = renderError({}, [{ ref: "hubble/msgbroker:4.5.0", digest: "sha256:abc" }]);
    expect([badDigest.code, badDigest.where]).toEqual(["DIGEST_INVALID", "hubble/msgbroker:4.5.0"]);
  });
});

describe("render: inputs", () => {
  it("is deterministic and pure: same inputs, deep-equal objects, inputs untouched", () => {
    const values = deepFreeze(structuredClone(CUSTOM_VALUES));
    const images = deepFreeze(structuredClone(BUNDLE_IMAGES));
    const frozenInputs = deepFreeze(structuredClone(inputs));
    const first = render(values, images, frozenInputs);
    const second = render(values, images, frozenInputs);
    expect(second).toEqual(first);
    expect(JSON.stringify(second)).toBe(JSON.stringify(first));
    // Nothing is shared between two renders: changing one result leaves the next untouched.
    only(first, "StatefulSet").spec.template.spec.containers[0]!.resources.limits.cpu = "9";
    only(first, "StatefulSet").spec.selector.matchLabels["x"] = "y";
    expect(render(values, images, frozenInputs)).toEqual(second);
    expect(values).toEqual(CUSTOM_VALUES);
  });

  it("gives the same objects whatever order nodeSelector and tolerations' keys were written in", () => {
    const reordered = {
      ...CUSTOM_VALUES,
      msgbroker: {
        ...CUSTOM_VALUES.msgbroker,
        nodeSelector: { "kubernetes.io/os": "linux", "node-role.kubernetes.io/plane": "true" },
        tolerations: CUSTOM_VALUES.msgbroker.tolerations.map((toleration) =>
          Object.fromEntries(Object.entries(toleration).reverse()),
        ),
      },
    };
    expect(JSON.stringify(renderWith(reordered))).toBe(JSON.stringify(renderWith(CUSTOM_VALUES)));
  });

  it("refuses bad values with VALUES_INVALID naming the field", () => {
    for (const [values, field] of [
      [{ msgbroker: { replicas: 0 } }, "msgbroker.replicas"],
      [{ msgbroker: { resources: { limits: { cpu: "-1" } } } }, "msgbroker.resources.limits.cpu"],
      [{ msgbroker: { replicas: "3" } }, "msgbroker.replicas"],
      [{ msgbroker: { persistance: { enabled: true } } }, "msgbroker.persistance"],
    ] as Array<[ValuesInput, string]>) {
      const error = renderError(values);
      expect([error.code, error.where]).toEqual(["VALUES_INVALID", field]);
      expect(error.message).toMatch(new RegExp(`^${field.replace(/\./g, "\\.")}: `));
    }
  });

  it("refuses routeOverrides: they exist for brokers run by tests, not for a cluster", () => {
    const error = renderError({ msgbroker: { replicas: 1, routeOverrides: ["127.0.0.1:16222"] } });
    expect([error.code, error.where]).toEqual(["VALUES_INVALID", "msgbroker.routeOverrides"]);
    expect(error.hint).toMatch(/remove routeOverrides/);
  });

  it("refuses a release or version no label can carry, and certificates that are not PEM", () => {
    expect(renderError({}, BUNDLE_IMAGES, { ...inputs, release: "Mgmt_1" }).code).toBe("RELEASE_INVALID");
    const build = renderError({}, BUNDLE_IMAGES, { ...inputs, version: "4.5.0+build.7" });
    expect([build.code, build.where]).toEqual(["RELEASE_INVALID", "version"]);
    const swapped = { ...inputs.certificates, peerKey: inputs.certificates.peerCert };
    const notPem = renderError({}, BUNDLE_IMAGES, { ...inputs, certificates: swapped });
    expect([notPem.code, notPem.where]).toEqual(["CERTIFICATES_INVALID", "certificates.peerKey"]);
  });
});
