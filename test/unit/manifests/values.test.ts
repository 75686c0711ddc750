import { describe, expect, it } from "vitest";
import { DEFAULT_REGISTRY, parseValues } from "../../../manifests/index.js";
import { AirlockError } from "../../../registry/oci/index.js";
import { CUSTOM_VALUES } from "./plane-fixtures.js";

/** The VALUES_INVALID error parsing `input` gives; fails the test when it parses. */
function valuesError(input: unknown): AirlockError {
  try {
    parseValues(input);
  } catch (error) {
    if (error instanceof AirlockError) return error;
    throw error;
  }
  throw new Error(`values parsed: ${JSON.stringify(input)}`);
}

function expectInvalid(input: unknown, field: string, message: string | RegExp): AirlockError {
  const error = valuesError(input);
  expect(error.code).toBe("VALUES_INVALID");
  expect(error.exitCode).toBe(2);
  expect(error.where).toBe(field);
  expect(error.message.split("\n")[0]).toMatch(
    typeof message === "string"
      ? `${field}: ${message}`
      : new RegExp(`^${field.replace(/[[\].]/g, "\\$&")}: ${message.source}`),
  );
  expect(error.hint).toEqual(expect.any(String));
  expect(error.hint!.length).toBeGreaterThan(10);
  return error;
}

describe("values defaults", () => {
  it("fills every field from {}, and reads an empty values file (null) the same way", () => {
    const defaults = parseValues({});
    expect(defaults).toEqual({
      registry: DEFAULT_REGISTRY,
      clusterDomain: "cluster.local",
      msgbroker: {
        replicas: 2,
        partition: 0,
        resources: { requests: { cpu: "100m", memory: "128Mi" }, limits: { cpu: "1", memory: "512Mi" } },
        ports: { client: 4222, cluster: 6222, monitor: 8222 },
        persistence: { enabled: false, size: "1Gi" },
        jetstream: { enabled: false },
        tls: { verifyClients: true },
        extraSans: [],
        nodeSelector: {},
        tolerations: [],
        networkPolicy: {},
      },
    });
    expect(parseValues(null)).toEqual(defaults);
    expect(parseValues(undefined)).toEqual(defaults);
  });

  it("keeps defaults beside the fields a nested mapping sets", () => {
    const values = parseValues({
      msgbroker: { resources: { limits: { memory: "2Gi" } }, ports: { client: 4333 } },
    });
    expect(values.msgbroker.resources).toEqual({
      requests: { cpu: "100m", memory: "128Mi" },
      limits: { cpu: "1", memory: "2Gi" },
    });
    expect(values.msgbroker.ports).toEqual({ client: 4333, cluster: 6222, monitor: 8222 });
  });

  it("takes every non-default field, numbers as quantities included, and parses its own output unchanged", () => {
    const values = parseValues(CUSTOM_VALUES);
    expect(values.msgbroker.resources.limits.cpu).toBe("2");
    expect(values.msgbroker.tolerations).toHaveLength(3);
    expect(values.registry).toBe("harbor.site.example:8443");
    expect(parseValues(values)).toEqual(values);
  });

  it("accepts every quantity spelling Kubernetes does", () => {
    for (const cpu of ["0", "1", "0.5", ".5", "1.", "250m", "1e3", "2E-1", "1k"]) {
      expect(
        parseValues({ msgbroker: { resources: { requests: { cpu }, limits: { cpu: "2000" } } } }).msgbroker
          .resources.requests.cpu,
      ).toBe(cpu);
    }
    for (const memory of ["128974848", "129e6", "129M", "123Mi", "1Gi", "0.5Gi"]) {
      expect(
        parseValues({ msgbroker: { resources: { requests: { memory }, limits: { memory: "1Ei" } } } })
          .msgbroker.resources.requests.memory,
      ).toBe(memory);
    }
  });

  it("compares requests with limits exactly across suffixes", () => {
    expect(() =>
      parseValues({ msgbroker: { resources: { requests: { cpu: "0.1" }, limits: { cpu: "100m" } } } }),
    ).not.toThrow();
    expect(() =>
      parseValues({
        msgbroker: { resources: { requests: { memory: "1Gi" }, limits: { memory: "1024Mi" } } },
      }),
    ).not.toThrow();
    expect(() =>
      parseValues({ msgbroker: { resources: { requests: { memory: "1G" }, limits: { memory: "1Gi" } } } }),
    ).not.toThrow();
    expectInvalid(
      { msgbroker: { resources: { requests: { memory: "1Gi" }, limits: { memory: "1G" } } } },
      "msgbroker.resources.requests.memory",
      "1Gi is more than the limit 1G",
    );
    expectInvalid(
      { msgbroker: { resources: { requests: { cpu: "1001m" }, limits: { cpu: "1" } } } },
      "msgbroker.resources.requests.cpu",
      "1001m is more than the limit 1",
    );
  });
});

describe("bad values", () => {
  it("refuses replicas below 1, and fractions", () => {
    expectInvalid({ msgbroker: { replicas: 0 } }, "msgbroker.replicas", "must be ≥ 1");
    expectInvalid({ msgbroker: { replicas: -3 } }, "msgbroker.replicas", "must be ≥ 1");
    expectInvalid({ msgbroker: { replicas: 1.5 } }, "msgbroker.replicas", "expected a whole number, got 1.5");
  });

  it("refuses negative and malformed quantities", () => {
    for (const cpu of ["-1", -1, "1.2.3", "10x", "1e", "m", "", " 1", "1 m", "1e999"]) {
      expectInvalid(
        { msgbroker: { resources: { requests: { cpu } } } },
        "msgbroker.resources.requests.cpu",
        /.* is not a non-negative quantity/,
      );
    }
    expectInvalid(
      { msgbroker: { resources: { limits: { memory: "-512Mi" } } } },
      "msgbroker.resources.limits.memory",
      /"-512Mi" is not/,
    );
    expectInvalid(
      { msgbroker: { persistence: { size: "0" } } },
      "msgbroker.persistence.size",
      "must be more than 0",
    );
  });

  it("refuses values of the wrong type, naming what was expected and what came", () => {
    expectInvalid(
      { msgbroker: { replicas: "2" } },
      "msgbroker.replicas",
      "expected a whole number, got a string",
    );
    expectInvalid(
      { msgbroker: { persistence: { enabled: "yes" } } },
      "msgbroker.persistence.enabled",
      "expected true or false, got a string",
    );
    expectInvalid(
      { msgbroker: { extraSans: "a.example" } },
      "msgbroker.extraSans",
      "expected a list, got a string",
    );
    expectInvalid(
      { msgbroker: { resources: { requests: { cpu: true } } } },
      "msgbroker.resources.requests.cpu",
      /expected a quantity/,
    );
    expectInvalid({ msgbroker: null }, "msgbroker", "expected a mapping, got an empty value");
    expectInvalid([], "values", "expected a mapping, got a list");
  });

  it("refuses unknown keys at any depth, listing the allowed ones", () => {
    const error = expectInvalid(
      { msgbroker: { replica: 3 } },
      "msgbroker.replica",
      /unknown key \(allowed here: image, replicas, /,
    );
    expect(error.hint).toMatch(/spelling/);
    expectInvalid({ registy: "x.example" }, "registy", /unknown key/);
    expectInvalid(
      { msgbroker: { persistence: { storageClass: "fast" } } },
      "msgbroker.persistence.storageClass",
      /unknown key/,
    );
    expectInvalid(
      { msgbroker: { tolerations: [{ key: "a", operator: "Exists", effects: "NoSchedule" }] } },
      "msgbroker.tolerations[0].effects",
      /unknown key/,
    );
  });

  it("names every bad field in the message, the first in where", () => {
    const error = expectInvalid(
      { msgbroker: { replicas: 0, partition: -1, ports: { client: 70000 } } },
      "msgbroker.replicas",
      "must be ≥ 1",
    );
    expect(error.message).toContain("msgbroker.partition: must be ≥ 0");
    expect(error.message).toContain("msgbroker.ports.client: must be ≤ 65535");
  });

  it("refuses ports that clash, registries and domains that are no host, and bad SANs", () => {
    expectInvalid(
      { msgbroker: { ports: { monitor: 4222 } } },
      "msgbroker.ports",
      /client 4222, cluster 6222 and monitor 4222 must be three different ports/,
    );
    expectInvalid({ msgbroker: { ports: { cluster: 0 } } }, "msgbroker.ports.cluster", "must be ≥ 1");
    for (const registry of [
      "registry",
      "https://registry.example",
      "Registry.Example:5443/x",
      "registry.example:port",
      "",
    ]) {
      expectInvalid({ registry }, "registry", /must be a registry host\[:port\]/);
    }
    expectInvalid({ clusterDomain: "Cluster.Local" }, "clusterDomain", /must be a DNS name/);
    expectInvalid(
      { msgbroker: { extraSans: ["ok.example", "not a name"] } },
      "msgbroker.extraSans[1]",
      /must be a DNS name .* or an IP address/,
    );
    expectInvalid(
      { msgbroker: { image: "registry.example/hubble/msgbroker:4.5.0" } },
      "msgbroker.image",
      /must be repository:tag/,
    );
    expectInvalid({ msgbroker: { image: "hubble/msgbroker" } }, "msgbroker.image", /must be repository:tag/);
  });

  it("refuses label keys and values Kubernetes would, naming the key", () => {
    expectInvalid(
      { msgbroker: { nodeSelector: { "bad key": "x" } } },
      'msgbroker.nodeSelector["bad key"]',
      /must be a label key/,
    );
    expectInvalid(
      { msgbroker: { nodeSelector: { "kubernetes.io/os": "linux!" } } },
      'msgbroker.nodeSelector["kubernetes.io/os"]',
      /must be a label value/,
    );
    expectInvalid(
      { msgbroker: { nodeSelector: { zone: 1 } } },
      "msgbroker.nodeSelector.zone",
      "expected a string, got 1",
    );
    expectInvalid(
      { msgbroker: { networkPolicy: { clientNamespaceSelector: { team: "a".repeat(64) } } } },
      "msgbroker.networkPolicy.clientNamespaceSelector.team",
      /must be a label value/,
    );
  });

  it("checks tolerations as the API server does", () => {
    expectInvalid(
      { msgbroker: { tolerations: [{ key: "a", effect: "NoRun" }] } },
      "msgbroker.tolerations[0].effect",
      /expected one of NoSchedule, PreferNoSchedule, NoExecute/,
    );
    expectInvalid(
      { msgbroker: { tolerations: [{ key: "a", operator: "Exists", value: "b" }] } },
      "msgbroker.tolerations[0].value",
      "must be empty when operator is Exists",
    );
    expectInvalid(
      { msgbroker: { tolerations: [{ value: "b" }] } },
      "msgbroker.tolerations[0].operator",
      "must be Exists when no key is given",
    );
    expectInvalid(
      {
        msgbroker: {
          tolerations: [{ key: "a", operator: "Exists", effect: "NoSchedule", tolerationSeconds: 5 }],
        },
      },
      "msgbroker.tolerations[0].tolerationSeconds",
      "only applies to effect NoExecute",
    );
  });

  it("refuses route overrides that are no host:port, or not one per replica", () => {
    expectInvalid(
      { msgbroker: { routeOverrides: ["127.0.0.1"], replicas: 1 } },
      "msgbroker.routeOverrides[0]",
      /must be host:port/,
    );
    expectInvalid(
      { msgbroker: { routeOverrides: ["127.0.0.1:99999"], replicas: 1 } },
      "msgbroker.routeOverrides[0]",
      /must be host:port/,
    );
    expectInvalid(
      { msgbroker: { routeOverrides: ["127.0.0.1:16222"] } },
      "msgbroker.routeOverrides",
      "lists 1 routes for 2 replicas",
    );
    expect(
      parseValues({ msgbroker: { replicas: 2, routeOverrides: ["127.0.0.1:1", "[::1]:2"] } }).msgbroker
        .routeOverrides,
    ).toEqual(["127.0.0.1:1", "[::1]:2"]);
  });
});
