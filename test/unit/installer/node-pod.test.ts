/**
 * The containerd node's reading of a pod spec, without containerd: environment and `$(VAR)`
 * expansion, the process's arguments against the image's entrypoint and cmd, capabilities after a
 * securityContext, probe thresholds, and volumes written as files with their items and modes.
 */
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { ClusterObject, PodContext } from "../../../installer/cluster/index.js";
import {
  containerArgs,
  containerEnv,
  ContainerConfigError,
  expand,
} from "../../../installer/cluster/node/env.js";
import { ProbeState } from "../../../installer/cluster/node/probes.js";
import { capabilitiesOf, DEFAULT_CAPABILITIES } from "../../../installer/cluster/node/spec.js";
import { prepareVolumes } from "../../../installer/cluster/node/volumes.js";

const objects: ClusterObject[] = [
  {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { name: "cm", namespace: "ns" },
    data: { a: "1", b: "2" },
  },
  {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "sec", namespace: "ns" },
    data: { key: Buffer.from("k3y").toString("base64") },
  },
];
const context: PodContext = {
  get: (ref) =>
    objects.find(
      (o) => o.kind === ref.kind && o.metadata.name === ref.name && o.metadata.namespace === ref.namespace,
    ),
  report: () => undefined,
};
const pod = { name: "web-0", namespace: "ns", uid: "u-1", podIP: "198.18.0.5" };
const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

describe("the node's pod spec", () => {
  it("builds the environment in order, each value able to name those before it, $$ a literal $", () => {
    const env = containerEnv(
      {
        name: "c",
        image: "i",
        env: [
          { name: "NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
          { name: "IP", valueFrom: { fieldRef: { fieldPath: "status.podIP" } } },
          { name: "A", valueFrom: { configMapKeyRef: { name: "cm", key: "a" } } },
          { name: "KEY", valueFrom: { secretKeyRef: { name: "sec", key: "key" } } },
          { name: "URL", value: "$(NAME).svc:$(PORT) $$(NAME) $(LATER)" },
          { name: "LATER", value: "x" },
        ],
      },
      { Env: ["PATH=/usr/bin", "NAME=image"] },
      pod,
      context,
    );
    expect(Object.fromEntries(env)).toEqual({
      PATH: "/usr/bin",
      NAME: "web-0",
      IP: "198.18.0.5",
      A: "1",
      KEY: "k3y",
      URL: "web-0.svc:$(PORT) $(NAME) $(LATER)",
      LATER: "x",
    });
    expect(() =>
      containerEnv(
        {
          name: "c",
          image: "i",
          env: [{ name: "X", valueFrom: { configMapKeyRef: { name: "cm", key: "zz" } } }],
        },
        {},
        pod,
        context,
      ),
    ).toThrow(new ContainerConfigError("couldn't find key zz in ConfigMap ns/cm"));
    expect(expand("$(A)-$(B)", new Map([["A", "1"]]))).toBe("1-$(B)");
  });

  it("takes command over the image's entrypoint and args over its cmd, as Kubernetes does", () => {
    const image = { Entrypoint: ["/bin/server"], Cmd: ["--config", "/etc/default.conf"] };
    const env = new Map([["POD", "web-0"]]);
    expect(containerArgs({ name: "c", image: "i" }, image, env)).toEqual([
      "/bin/server",
      "--config",
      "/etc/default.conf",
    ]);
    expect(containerArgs({ name: "c", image: "i", args: ["-n", "$(POD)"] }, image, env)).toEqual([
      "/bin/server",
      "-n",
      "web-0",
    ]);
    expect(containerArgs({ name: "c", image: "i", command: ["/bin/other"] }, image, env)).toEqual([
      "/bin/other",
    ]);
    expect(() => containerArgs({ name: "c", image: "i" }, {}, env)).toThrow(ContainerConfigError);
  });

  it("drops ALL capabilities, or named ones, and adds what the securityContext adds", () => {
    expect(capabilitiesOf(["ALL"])).toEqual([]);
    expect(capabilitiesOf(["ALL"], ["NET_BIND_SERVICE"])).toEqual(["CAP_NET_BIND_SERVICE"]);
    expect(capabilitiesOf(["NET_RAW"])).toEqual(DEFAULT_CAPABILITIES.filter((cap) => cap !== "CAP_NET_RAW"));
    expect(capabilitiesOf()).toEqual(DEFAULT_CAPABILITIES);
  });

  it("counts probe results against their thresholds", () => {
    const probe = new ProbeState({ failureThreshold: 2, successThreshold: 1 });
    expect(probe.passing).toBe(false);
    expect(probe.record({ ok: true })).toBe(true);
    expect(probe.record({ ok: false, message: "refused" })).toBe(false);
    expect(probe.passing).toBe(true);
    expect(probe.record({ ok: false, message: "refused" })).toBe(true);
    expect([probe.passing, probe.failedOut, probe.lastMessage]).toEqual([false, true, "refused"]);
  });

  it("writes ConfigMap, Secret and projected volumes as files with items and modes, owned by the fsGroup", async () => {
    const dir = await mkdtemp(join(tmpdir(), "airlock-node-volumes-"));
    dirs.push(dir);
    const volumes = await prepareVolumes(
      {
        containers: [],
        securityContext: { fsGroup: 1000 },
        volumes: [
          { name: "cm", configMap: { name: "cm", items: [{ key: "b", path: "sub/b.txt", mode: 0o600 }] } },
          { name: "all", configMap: { name: "cm", defaultMode: 0o440 } },
          {
            name: "both",
            projected: {
              defaultMode: 0o400,
              sources: [
                { secret: { name: "sec" } },
                { configMap: { name: "cm", items: [{ key: "a", path: "a" }] } },
              ],
            },
          },
          { name: "scratch", emptyDir: {} },
          { name: "claim", persistentVolumeClaim: { claimName: "data-web-0" } },
        ],
      },
      "ns",
      join(dir, "pod"),
      join(dir, "claims"),
      context,
    );
    expect(await readFile(join(volumes.get("cm")!.path, "sub/b.txt"), "utf8")).toBe("2");
    expect((await stat(join(volumes.get("cm")!.path, "sub/b.txt"))).mode & 0o777).toBe(0o600);
    expect((await stat(join(volumes.get("all")!.path, "a"))).mode & 0o777).toBe(0o440);
    expect(await readFile(join(volumes.get("both")!.path, "key"), "utf8")).toBe("k3y");
    const projected = await stat(join(volumes.get("both")!.path, "a"));
    expect([projected.mode & 0o777, projected.gid]).toEqual([0o400, 1000]);
    expect(volumes.get("cm")!.readOnly).toBe(true);
    expect(volumes.get("scratch")!.readOnly).toBe(false);
    expect(volumes.get("claim")!.path).toBe(join(dir, "claims", "ns", "data-web-0"));
    expect((await stat(volumes.get("claim")!.path)).mode & 0o7777).toBe(0o2775);
    await expect(
      prepareVolumes(
        { containers: [], volumes: [{ name: "x", secret: { secretName: "missing" } }] },
        "ns",
        join(dir, "p2"),
        join(dir, "c2"),
        context,
      ),
    ).rejects.toThrow('secret "missing" not found');
  });
});
