/**
 * The upgrade gates a bundle declares (issue 14, point 4): bundle.yaml's upgradeGates, an HTTP probe
 * or a Job each, checked when the spec is read; and declaredGatesOf, which turns airlock.json's list
 * into the gates runUpgrade runs.
 */
import { describe, expect, it } from "vitest";
import { parseBundleSpec } from "../../../bundle/spec.js";
import { declaredGatesOf } from "../../../installer/upgrade/index.js";
import type { AirlockError } from "../../../registry/oci/index.js";

const HEAD = ["name: hubble-plane", "version: 4.5.0"];
const JOB = [
  "  - name: smoke",
  "    timeoutSeconds: 120",
  "    job:",
  "      apiVersion: batch/v1",
  "      kind: Job",
  "      spec:",
  "        backoffLimit: 0",
  "        template:",
  "          spec:",
  "            restartPolicy: Never",
  "            containers: [{ name: smoke, image: hubble/smoke:4.5.0 }]",
];
const HTTP = [
  "  - name: console",
  "    http: { url: 'http://console.hubble-system.svc:8080/healthz', status: 204 }",
];

function parse(...lines: string[]): ReturnType<typeof parseBundleSpec> {
  return parseBundleSpec(`${[...HEAD, ...lines].join("\n")}\n`, "/specs/bundle.yaml");
}

describe("bundle.yaml upgradeGates", () => {
  it("reads an HTTP probe and a Job, in order; none when the key is absent", () => {
    const spec = parse("upgradeGates:", ...HTTP, ...JOB);
    expect(spec.upgradeGates).toEqual([
      { name: "console", http: { url: "http://console.hubble-system.svc:8080/healthz", status: 204 } },
      {
        name: "smoke",
        timeoutSeconds: 120,
        job: {
          apiVersion: "batch/v1",
          kind: "Job",
          spec: {
            backoffLimit: 0,
            template: {
              spec: { restartPolicy: "Never", containers: [{ name: "smoke", image: "hubble/smoke:4.5.0" }] },
            },
          },
        },
      },
    ]);
    expect(parse().upgradeGates).toEqual([]);
  });

  it("refuses a gate with both or neither of http: and job:, a Job of another kind, a bad name", () => {
    const refused = (...lines: string[]): string => {
      try {
        parse("upgradeGates:", ...lines);
      } catch (error) {
        return (error as AirlockError).message;
      }
      throw new Error("the spec was accepted");
    };
    expect(refused("  - name: nothing")).toMatch(/give exactly one of http: and job:/);
    expect(refused(...HTTP, "    job: { apiVersion: batch/v1, kind: Job, spec: { template: {} } }")).toMatch(
      /give exactly one of http: and job:/,
    );
    expect(
      refused("  - name: smoke", "    job: { apiVersion: batch/v1, kind: Pod, spec: { template: {} } }"),
    ).toMatch(/upgradeGates\[0\]\.job\.kind/);
    expect(refused("  - name: Smoke_Test", "    http: { url: 'http://x/' }")).toMatch(
      /upgradeGates\[0\]\.name/,
    );
    expect(refused("  - name: ftp", "    http: { url: 'ftp://x/' }")).toMatch(/upgradeGates\[0\]\.http\.url/);
  });
});

describe("declaredGatesOf", () => {
  it("gives runUpgrade an HTTP gate and a Job gate named by the gate when the Job has no name, timeouts in ms", () => {
    const spec = parse("upgradeGates:", ...HTTP, ...JOB);
    const [http, job] = declaredGatesOf(spec.upgradeGates);
    expect(http).toEqual({
      name: "console",
      url: "http://console.hubble-system.svc:8080/healthz",
      status: 204,
      timeoutMs: undefined,
    });
    expect(job).toMatchObject({
      name: "smoke",
      timeoutMs: 120_000,
      job: { apiVersion: "batch/v1", kind: "Job", metadata: { name: "smoke" } },
    });
    expect(declaredGatesOf(undefined)).toEqual([]);
  });
});
