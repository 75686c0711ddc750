/**
 * The built msgbroker image run for real (issue 6, point 6): containerd of the test's own imports it
 * from an oci-archive made by skopeo, runc runs it on the host network, and the broker inside answers
 * on its monitoring endpoint as the image's non-root user.
 */
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildMsgbrokerImage, type MsgbrokerImage } from "../../scripts/msgbroker-image.mjs";
import { freePorts, startContainerd, startDaemon, type Containerd, type Daemon } from "../helpers/daemons.js";
import { runTool, waitFor } from "../helpers/fixtures.js";

const NAMESPACE = "airlock";
const REF = "hubble/msgbroker:4.5.0";
// runc keeps container state under /run/containerd/runc/<namespace>/<id> whichever containerd runs it:
// an id of our own keeps us clear of any other test run on the machine.
const CONTAINER = `msgbroker-test-${process.pid}`;

let root: string;
let image: MsgbrokerImage;
let containerd: Containerd | undefined;
let broker: Daemon | undefined;

async function ctr(...args: string[]): Promise<string> {
  const result = await containerd!.ctr(NAMESPACE, ...args);
  expect(result.code, `ctr ${args.join(" ")}: ${result.stderr}`).toBe(0);
  return result.stdout.toString();
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "airlock-msgbroker-it-"));
  image = await buildMsgbrokerImage({ out: join(root, "layout"), ref: REF });
  containerd = await startContainerd(await mkdtemp(join(root, "containerd-")));
});

afterAll(async () => {
  if (containerd !== undefined) {
    // The task first (its shim and mounts go with it), then the containers, then containerd itself.
    await containerd.ctr(NAMESPACE, "task", "kill", "-s", "SIGKILL", CONTAINER);
    await broker?.stop();
    for (const id of [CONTAINER, `${CONTAINER}-config`]) {
      await containerd.ctr(NAMESPACE, "task", "delete", "--force", id);
      await containerd.ctr(NAMESPACE, "container", "rm", id);
    }
    await containerd.stop();
  }
  await broker?.stop();
  await rm(root, { recursive: true, force: true });
});

describe("the msgbroker image in containerd", () => {
  it("imports from an oci-archive under its ref, with the digest the script reported, and unpacks", async () => {
    const archive = join(root, "msgbroker.oci-archive.tar");
    const copy = await runTool("skopeo", [
      "--insecure-policy",
      "copy",
      "--quiet",
      `oci:${image.layout}:${REF}`,
      `oci-archive:${archive}:${REF}`,
    ]);
    expect(copy.code, copy.stderr).toBe(0);
    await ctr("images", "import", archive);

    const listing = await ctr("images", "ls");
    const line = listing.split("\n").find((text) => text.startsWith(`${REF} `));
    expect(line, listing).toBeDefined();
    expect(line).toContain(image.digest);
    expect(line).toContain(image.platform);
    expect(await ctr("images", "check")).toMatch(/complete \(2\/2\).*true/);
  });

  it("checks the configuration baked into the image with the broker itself", async () => {
    const result = await containerd!.ctr(
      NAMESPACE,
      "run",
      "--rm",
      REF,
      `${CONTAINER}-config`,
      image.natsServer.path,
      "--config",
      "/etc/nats/nats.conf",
      "-t",
    );
    expect(result.code, result.stderr).toBe(0);
    expect(`${result.stdout.toString()}${result.stderr}`).toMatch(/nats\.conf is valid/);
  });

  it("runs nats-server as uid 1000 on the host network, and its /healthz answers ok", async () => {
    const [clientPort, monitorPort] = await freePorts(2);
    broker = startDaemon("ctr", [
      "-a",
      containerd!.socket,
      "-n",
      NAMESPACE,
      "run",
      "--rm",
      "--net-host",
      REF,
      CONTAINER,
      image.natsServer.path,
      "-p",
      String(clientPort),
      "-m",
      String(monitorPort),
      "-a",
      "127.0.0.1",
    ]);
    let health: unknown;
    await waitFor(
      async () => {
        const exit = broker!.exited();
        if (exit !== undefined)
          throw new Error(`ctr run ended (${JSON.stringify(exit)}): ${broker!.output()}`);
        const response = await fetch(`http://127.0.0.1:${monitorPort}/healthz`).catch(() => undefined);
        if (response?.status !== 200) return false;
        health = await response.json();
        return true;
      },
      60_000,
      "the broker's /healthz in the container",
    );
    expect(health).toEqual({ status: "ok" });

    const varz = (await (await fetch(`http://127.0.0.1:${monitorPort}/varz`)).json()) as {
      version: string;
      port: number;
    };
    expect(varz).toMatchObject({ version: image.natsServer.upstreamVersion, port: clientPort });

    // The broker is the task's process on the host; the image's User made it nats, not root.
    const ps = await ctr("task", "ps", CONTAINER);
    const pid = /^(\d+)\s/m.exec(ps)?.[1];
    expect(pid, ps).toBeDefined();
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    expect(status).toMatch(/^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    expect(status).toMatch(/^Gid:\s+1000\s+1000\s+1000\s+1000$/m);

    // Killed, the task ends and `ctr run --rm` removes the container.
    await ctr("task", "kill", "-s", "SIGKILL", CONTAINER);
    await waitFor(() => broker!.exited() !== undefined, 30_000, "ctr run to end");
    expect((await ctr("containers", "ls", "-q")).split("\n")).not.toContain(CONTAINER);
  });
});
