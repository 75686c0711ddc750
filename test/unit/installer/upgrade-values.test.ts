import { describe, expect, it } from "vitest";
import { canonicalJson, diffValues, planDigest } from "../../../installer/upgrade/index.js";
import { parseValues } from "../../../manifests/index.js";
import { AirlockError } from "../../../registry/oci/index.js";

describe("diffValues", () => {
  const installedGiven = {
    msgbroker: {
      replicas: 3,
      nodeSelector: { "kubernetes.io/os": "linux" },
      tolerations: [{ operator: "Exists" }],
    },
  };
  const installedEffective = {
    msgbroker: {
      replicas: 3,
      resources: { limits: { memory: "512Mi" } },
      nodeSelector: { "kubernetes.io/os": "linux" },
      tolerations: [{ operator: "Exists" }],
    },
  };

  it("carries the operator's values over the next bundle's defaults, and lists what changes", () => {
    const incomingDefaults = {
      msgbroker: { replicas: 2, resources: { limits: { memory: "1Gi" } }, jetstream: { enabled: true } },
    };
    const diff = diffValues(installedGiven, installedEffective, incomingDefaults);
    expect(diff.given).toEqual(installedGiven);
    expect(diff.values).toEqual({
      msgbroker: {
        replicas: 3,
        resources: { limits: { memory: "1Gi" } },
        jetstream: { enabled: true },
        nodeSelector: { "kubernetes.io/os": "linux" },
        tolerations: [{ operator: "Exists" }],
      },
    });
    expect(() => parseValues(diff.values)).not.toThrow();
    expect(diff.changes).toEqual([
      { path: "msgbroker.jetstream.enabled", incomingDefault: true, rendered: true, overridden: false },
      // The bundle's default for the operator's nodeSelector is none; the operator's stays.
      {
        path: 'msgbroker.nodeSelector["kubernetes.io/os"]',
        installed: "linux",
        rendered: "linux",
        overridden: true,
      },
      { path: "msgbroker.replicas", installed: 3, incomingDefault: 2, rendered: 3, overridden: true },
      {
        path: "msgbroker.resources.limits.memory",
        installed: "512Mi",
        incomingDefault: "1Gi",
        rendered: "1Gi",
        overridden: false,
      },
      {
        path: "msgbroker.tolerations",
        installed: [{ operator: "Exists" }],
        rendered: [{ operator: "Exists" }],
        overridden: true,
      },
    ]);
  });

  it("lists nothing when the next bundle's defaults are the installed ones and nothing is overridden", () => {
    const effective = { msgbroker: { replicas: 2 } };
    expect(diffValues({}, effective, effective).changes).toEqual([]);
  });

  it("shows a default the next bundle drops, and takes new operator values over the installed ones", () => {
    const diff = diffValues(
      { msgbroker: { replicas: 3 } },
      { registry: "registry.airlock.local:5443", msgbroker: { replicas: 3, partition: 0 } },
      { msgbroker: { replicas: 2 } },
      { msgbroker: { partition: 1 } },
    );
    expect(diff.given).toEqual({ msgbroker: { replicas: 3, partition: 1 } });
    expect(diff.values).toEqual({ msgbroker: { replicas: 3, partition: 1 } });
    expect(diff.changes).toEqual([
      { path: "msgbroker.partition", installed: 0, rendered: 1, overridden: true },
      { path: "msgbroker.replicas", installed: 3, incomingDefault: 2, rendered: 3, overridden: true },
      { path: "registry", installed: "registry.airlock.local:5443", overridden: false },
    ]);
  });
});

describe("planDigest", () => {
  it("is the same for the same data in any key order, and differs for any change", () => {
    const inputs = {
      release: { id: 4, objects: [{ kind: "Service", metadata: { name: "a" } }] },
      bundle: "sha256:ab",
    };
    const reordered = {
      bundle: "sha256:ab",
      release: { objects: [{ metadata: { name: "a" }, kind: "Service" }], id: 4 },
    };
    expect(planDigest(inputs)).toBe(planDigest(reordered));
    expect(planDigest(inputs)).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(planDigest({ ...inputs, bundle: "sha256:ac" })).not.toBe(planDigest(inputs));
    expect(planDigest({ ...inputs, values: undefined })).toBe(planDigest(inputs));
    expect(planDigest({ ...inputs, values: null })).not.toBe(planDigest(inputs));
  });

  it("writes canonical JSON: sorted keys, no undefined fields, lists in order", () => {
    expect(canonicalJson({ b: 1, a: [3, { d: undefined, c: "x" }] })).toBe('{"a":[3,{"c":"x"}],"b":1}');
  });

  it("refuses what JSON cannot hold", () => {
    for (const bad of [{ n: Number.NaN }, { f: () => 1 }, { big: 1n }]) {
      let refused: unknown;
      try {
        planDigest(bad);
      } catch (error) {
        refused = error;
      }
      expect(refused).toBeInstanceOf(AirlockError);
      expect((refused as AirlockError).code).toBe("PLAN_INPUT_INVALID");
    }
  });
});
