import { expect } from "vitest";
import {
  fakeHostView,
  healthyHostSpec,
  runPreflight,
  type BundleFacts,
  type CheckResult,
  type FakeHostSpec,
  type PreflightOptions,
  type PreflightReport,
} from "../../installer/preflight/index.js";
import type { SiteSummary } from "../../installer/state/index.js";

export const GiB = 1024 ** 3;
export const EMPTY_SITE: SiteSummary = {
  release: undefined,
  latestInstall: undefined,
  clusterStepStarted: false,
};

/** The sample plane's figures: two images, a k3s binary and its images archive. */
export const FACTS: BundleFacts = {
  name: "mgmt",
  version: "4.5.0",
  digest: "sha256:ab",
  created: "2026-11-20T00:00:00Z",
  images: [
    { ref: "hubble/msgbroker:4.5.0", platforms: ["linux/amd64"] },
    { ref: "hubble/console:4.5.0", platforms: ["linux/amd64", "linux/arm64/v8"] },
  ],
  sizing: { cpus: 2, memoryBytes: 2 * GiB, source: "default" },
  storeBytes: 3 * GiB,
  k3sBinaryBytes: 70 * 1024 ** 2,
  k3sArchiveBytes: 200 * 1024 ** 2,
  imageBytes: 1 * GiB,
};

export interface CheckCase {
  change?: (spec: FakeHostSpec) => void;
  /** Facts of the bundle checked against; `null` for none. */
  facts?: BundleFacts | null;
  options?: Partial<PreflightOptions>;
}

/** Preflight over the healthy fake host, changed as the case says. */
export async function preflightOn(testCase: CheckCase = {}): Promise<PreflightReport> {
  const spec = healthyHostSpec();
  testCase.change?.(spec);
  const facts = testCase.facts === undefined ? FACTS : testCase.facts;
  return runPreflight({
    dataDir: "/var/lib/airlock",
    host: fakeHostView(spec),
    site: EMPTY_SITE,
    ...(facts === null ? {} : { bundleFacts: facts }),
    ...testCase.options,
  });
}

/** One check's result; a warn or fail must carry a hint. */
export async function checkResult(id: string, testCase: CheckCase = {}): Promise<CheckResult> {
  const report = await preflightOn(testCase);
  const result = report.checks.find((c) => c.id === id);
  if (result === undefined) throw new Error(`no check ${id} in ${report.checks.map((c) => c.id).join(", ")}`);
  if (result.status !== "pass") expect(result.hint, `${id} ${result.status} has a hint`).toBeTruthy();
  return result;
}
