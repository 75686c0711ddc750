/**
 * The containerd node against a registry that lets only an account pull (issue 12, point 2): with
 * the account in registries.yaml's configs the node pulls (ctr --user, the bearer-token flow) and the
 * pod gets Ready; without it the pull fails at once as ErrImagePull naming the refusal, never hangs.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  brokerSet,
  containerOf,
  isReady,
  podUntil,
  startNodeHarness,
  type NodeHarness,
} from "../helpers/node-cluster.js";

const ACCOUNT = { user: "puller", password: "pull-Secret-42" };
let harness: NodeHarness;

beforeAll(async () => {
  harness = await startNodeHarness(ACCOUNT);
}, 120_000);

afterAll(async () => {
  await harness?.close();
}, 120_000);

const applied = { fieldManager: "test" };

describe("the containerd node and registry accounts", () => {
  it("without the account: ErrImagePull with the registry's refusal, within seconds", async () => {
    const node = await harness.newNode();
    const cluster = await harness.newCluster(node);
    const started = Date.now();
    await cluster.apply(brokerSet({ name: "anonymous", image: harness.image }), applied);
    const pod = await podUntil(
      cluster,
      "anonymous-0",
      (found) => containerOf(found)?.state.waiting?.reason === "ErrImagePull",
    );
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(containerOf(pod)?.state.waiting?.message).toMatch(
      /401 Unauthorized|unauthorized|authorization failed/i,
    );
  }, 120_000);

  it("with the account in registries.yaml: pulled and Ready", async () => {
    const node = await harness.newNode({ account: ACCOUNT });
    const cluster = await harness.newCluster(node);
    await cluster.apply(brokerSet({ name: "authorised", image: harness.image }), applied);
    const pod = await podUntil(cluster, "authorised-0", isReady);
    expect(containerOf(pod)?.restartCount).toBe(0);
  }, 120_000);
});
