import { readFile } from "node:fs/promises";
import { BROKER, NAMESPACE, render } from "../../manifests/index.js";
import {
  applyRelease,
  rolledOut,
  waitForRollout,
  type ClusterObject,
  type ObjectRef,
} from "../cluster/index.js";
import type { Release } from "../state/index.js";
import type { StepDefinition } from "./machine.js";
import { planeValues } from "./plane-values.js";
import { pullEndpoint } from "./registry-address.js";
import type { PkiDetail } from "./steps-site.js";
import type { InstallContext } from "./types.js";

const DEFAULT_TIMEOUT_MS = 15 * 60_000;
export const BROKER_REF: ObjectRef = {
  apiVersion: "apps/v1",
  kind: "StatefulSet",
  name: BROKER,
  namespace: NAMESPACE,
};

/** The installation's name, the same across upgrades: the bundle's name (`mgmt`). */
export function releaseName(context: InstallContext): string {
  return context.head.metadata.name;
}

function releaseOf(context: InstallContext): Release {
  const { releaseId } = context.details.get("render") as { releaseId: number };
  return context.state.releases.get(releaseId);
}

/** A release this install rendered and has not finished with: a re-run after a crash reuses it. */
function pendingRelease(context: InstallContext, installId: number): Release | undefined {
  return context.state.releases
    .list()
    .find((release) => release.installId === installId && release.status !== "failed");
}

async function brokerPems(
  pki: PkiDetail,
): Promise<{ ca: string; peerCert: string; peerKey: string; serverCert: string; serverKey: string }> {
  const read = (file: string): Promise<string> => readFile(file, "utf8");
  return {
    ca: await read(pki.caFile),
    peerCert: await read(pki.broker.peerCert),
    peerKey: await read(pki.broker.peerKey),
    serverCert: await read(pki.broker.serverCert),
    serverKey: await read(pki.broker.serverKey),
  };
}

export const renderStep: StepDefinition<InstallContext> = {
  name: "render",
  title: "Render the plane",
  stillDone: (context, detail) =>
    Promise.resolve(context.state.releases.get(detail.releaseId as number).status !== "failed"),
  async run(context) {
    const installId = context.installId();
    const earlier = pendingRelease(context, installId);
    if (earlier !== undefined) {
      return {
        detail: { releaseId: earlier.id },
        summary: `release ${earlier.id} (rendered by an earlier run)`,
      };
    }
    const endpoint = pullEndpoint(context.registryListen);
    const { given, values } = await planeValues(
      context.dataDir,
      context.head,
      context.options.valuesFile,
      endpoint,
    );
    const { metadata } = context.head;
    const objects = render(values, metadata.images, {
      release: releaseName(context),
      version: metadata.version,
      certificates: await brokerPems(context.details.get("pki") as unknown as PkiDetail),
    });
    const release = context.state.releases.record({
      installId,
      bundleDigest: context.head.digest,
      bundleName: metadata.name,
      version: metadata.version,
      valuesGiven: given,
      valuesEffective: values,
      objects,
    });
    return {
      detail: { releaseId: release.id },
      summary: `release ${release.id}: ${objects.length} objects, images from ${values.registry}`,
    };
  },
};

export const applyStep: StepDefinition<InstallContext> = {
  name: "apply",
  title: "Apply",
  stillDone: async (context) => (await context.cluster().get(BROKER_REF)) !== undefined,
  async run(context) {
    const release = releaseOf(context);
    const result = await applyRelease(context.cluster(), release.objects as ClusterObject[], {
      release: releaseName(context),
      timeoutMs: context.options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      signal: context.options.signal,
    });
    const count = (action: string): number =>
      result.applied.filter((object) => object.action === action).length;
    return {
      detail: { applied: result.applied.length, pruned: result.pruned.length },
      summary: `${count("created")} created, ${count("configured")} configured, ${count("unchanged")} unchanged`,
    };
  },
};

export const waitStep: StepDefinition<InstallContext> = {
  name: "wait",
  title: "Wait for the plane",
  stillDone: async (context) => {
    const broker = await context.cluster().get(BROKER_REF);
    return broker !== undefined && rolledOut(broker);
  },
  async run(context) {
    const broker = await waitForRollout(context.cluster(), BROKER_REF, {
      timeoutMs: context.options.timeoutMs ?? DEFAULT_TIMEOUT_MS,
      signal: context.options.signal,
    });
    const ready = (broker.status?.readyReplicas as number | undefined) ?? 0;
    return { detail: { readyReplicas: ready }, summary: `${BROKER}: ${ready} ready` };
  },
};

export const recordStep: StepDefinition<InstallContext> = {
  name: "record",
  title: "Record the release",
  stillDone: (context) => Promise.resolve(context.state.releases.current()?.id === releaseOf(context).id),
  run(context) {
    const release = context.state.releases.deploy(releaseOf(context).id);
    return Promise.resolve({
      detail: { releaseId: release.id },
      summary: `release ${release.id}: ${release.bundleName} ${release.version} deployed`,
    });
  },
};
