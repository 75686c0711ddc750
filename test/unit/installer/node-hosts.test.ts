import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createClusterHosts, renderHostsFile } from "../../../installer/cluster/node/hosts.js";
import { expectAirlockError, rejection } from "../../helpers/fixtures.js";

const HEADER = [
  "# Kubernetes-managed hosts file, written by Airlock's containerd node.",
  "127.0.0.1\tlocalhost",
  "::1\tlocalhost ip6-localhost ip6-loopback",
];
const FQDN0 = "msgbroker-0.msgbroker-headless.hubble-system.svc.cluster.local";
const SHORT0 = "msgbroker-0.msgbroker-headless.hubble-system.svc";
const FQDN1 = "msgbroker-1.msgbroker-headless.hubble-system.svc.cluster.local";

describe("renderHostsFile", () => {
  it("writes localhost, the pod's own line with its FQDN first, then every other name by address", () => {
    const names = new Map([
      [FQDN1, "198.18.3.10"],
      [SHORT0, "198.18.3.2"],
      [FQDN0, "198.18.3.2"],
      ["msgbroker-2.msgbroker-headless.hubble-system.svc.cluster.local", "198.18.3.9"],
    ]);
    expect(renderHostsFile(names, "msgbroker-0", "198.18.3.2")).toBe(
      [
        ...HEADER,
        `198.18.3.2\t${FQDN0} msgbroker-0 ${SHORT0}`,
        "198.18.3.9\tmsgbroker-2.msgbroker-headless.hubble-system.svc.cluster.local",
        `198.18.3.10\t${FQDN1}`,
        "",
      ].join("\n"),
    );
  });

  it("takes a dotted hostname as the FQDN, and a short one with no name set as itself", () => {
    expect(renderHostsFile(new Map(), "web-0.web.ns.svc.cluster.local", "198.18.0.5")).toContain(
      "198.18.0.5\tweb-0.web.ns.svc.cluster.local web-0\n",
    );
    expect(renderHostsFile(new Map(), "web-0", "198.18.0.5")).toContain("198.18.0.5\tweb-0\n");
  });
});

describe("createClusterHosts", () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "airlock-hosts-unit-"));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("keeps every pod's file current in place as names come and go", async () => {
    const hosts = createClusterHosts(join(dir, "hosts"));
    hosts.set(FQDN0, "198.18.3.2");
    const file0 = await hosts.hostsFileFor("hubble-system/msgbroker-0", "msgbroker-0", "198.18.3.2");
    const file1 = await hosts.hostsFileFor("hubble-system/msgbroker-1", "msgbroker-1", "198.18.3.3");
    expect(file0).not.toBe(file1);
    expect((await stat(file0)).mode & 0o777).toBe(0o644);
    const inodes = [(await stat(file0)).ino, (await stat(file1)).ino];

    hosts.set(FQDN1, "198.18.3.3");
    hosts.set("msgbroker.hubble-system.svc", "198.18.3.2");
    await hosts.flush();
    expect(await readFile(file0, "utf8")).toContain(`198.18.3.3\t${FQDN1}\n`);
    expect(await readFile(file1, "utf8")).toContain(`198.18.3.3\t${FQDN1} msgbroker-1\n`);
    expect(await readFile(file1, "utf8")).toContain(`198.18.3.2\t${FQDN0} msgbroker.hubble-system.svc\n`);

    hosts.set(FQDN0, undefined);
    await hosts.flush();
    expect(await readFile(file1, "utf8")).not.toContain(FQDN0);
    expect([(await stat(file0)).ino, (await stat(file1)).ino]).toEqual(inodes);
  });

  it("gives a Service name one line per endpoint, kept current and resolvable as endpoints change", async () => {
    const hosts = createClusterHosts(dir);
    hosts.set(FQDN0, "198.18.3.2");
    const file0 = await hosts.hostsFileFor("hubble-system/msgbroker-0", "msgbroker-0", "198.18.3.2");
    const CLIENT = "msgbroker.hubble-system.svc.cluster.local";
    hosts.setServices(
      new Map([
        [CLIENT, ["198.18.3.2", "198.18.3.3"]],
        ["msgbroker.hubble-system.svc", ["198.18.3.2", "198.18.3.3"]],
      ]),
    );
    await hosts.flush();
    const text = await readFile(file0, "utf8");
    expect(text).toContain(`198.18.3.2\t${CLIENT}\n198.18.3.3\t${CLIENT}\n`);
    expect(text).toContain("198.18.3.3\tmsgbroker.hubble-system.svc\n");
    expect(hosts.resolve(CLIENT)).toEqual(["198.18.3.2", "198.18.3.3"]);
    expect(hosts.resolve(FQDN0)).toEqual(["198.18.3.2"]);
    expect(hosts.resolve("nowhere.hubble-system.svc")).toEqual([]);
    expect(hosts.pathOf("hubble-system/msgbroker-0")).toBe(file0);

    hosts.setServices(new Map([[CLIENT, ["198.18.3.3"]]]));
    await hosts.flush();
    const after = await readFile(file0, "utf8");
    expect(after).not.toContain(`198.18.3.2\t${CLIENT}`);
    expect(after).toContain(`198.18.3.3\t${CLIENT}\n`);
    expect(after).not.toContain("msgbroker.hubble-system.svc\n");
    expect(hosts.resolve(CLIENT)).toEqual(["198.18.3.3"]);
    expect(() => hosts.setServices(new Map([["Bad Name", []]]))).toThrow(
      expect.objectContaining({ code: "NODE_HOSTS_INVALID" }),
    );
  });

  it("release deletes the pod's file and stops writing it", async () => {
    const hosts = createClusterHosts(dir);
    const file = await hosts.hostsFileFor("ns/a", "a", "198.18.0.2");
    await hosts.release("ns/a");
    await hosts.release("ns/never");
    hosts.set("b.svc", "198.18.0.3");
    await hosts.flush();
    expect(await readdir(dir)).toEqual([]);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });

  it("gives keys that sanitise alike different files", async () => {
    const hosts = createClusterHosts(dir);
    const one = await hosts.hostsFileFor("ns/a", "a", "198.18.0.2");
    const other = await hosts.hostsFileFor("ns_a", "a", "198.18.0.3");
    expect(one).not.toBe(other);
    expect(await readdir(dir)).toHaveLength(2);
  });

  it("refuses names and addresses that are not DNS names and IPv4 addresses", async () => {
    const hosts = createClusterHosts(dir);
    for (const name of ["", "UPPER.svc", "bad name", "-x.svc", "a..b", "x".repeat(64)]) {
      expect(() => hosts.set(name, "198.18.0.2"), name).toThrow(
        expect.objectContaining({ code: "NODE_HOSTS_INVALID" }),
      );
    }
    expect(() => hosts.set("a.svc", "198.18.0.256")).toThrow(
      expect.objectContaining({ code: "NODE_HOSTS_INVALID" }),
    );
    await expectAirlockError(hosts.hostsFileFor("ns/a", "a b", "198.18.0.2"), "NODE_HOSTS_INVALID", "ns/a");
  });

  it("reports a failed write from hostsFileFor (the pod not kept), and one behind set from flush (once)", async () => {
    const hostsDir = join(dir, "hosts");
    const hosts = createClusterHosts(hostsDir);
    await hosts.hostsFileFor("ns/a", "a", "198.18.0.2");
    await rm(hostsDir, { recursive: true });
    await writeFile(hostsDir, "");
    hosts.set("b.svc", "198.18.0.3");
    const error = await rejection(hosts.flush());
    expect(error.code).toBe("NODE_HOSTS_WRITE_FAILED");
    expect(error.where).toContain(hostsDir);
    await hosts.flush();

    await hosts.release("ns/a");
    await expectAirlockError(
      hosts.hostsFileFor("ns/c", "c", "198.18.0.4"),
      "NODE_HOSTS_WRITE_FAILED",
      hostsDir,
    );
    hosts.set("d.svc", "198.18.0.5");
    await hosts.flush();
  });
});
