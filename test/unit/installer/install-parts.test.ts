/**
 * The install's pieces on their own: the registry accounts (bcrypt, 0600, kept on re-run), the
 * registry unit's ExecStart, the merge of bundle and operator values, and the files an existing
 * cluster's nodes get.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import bcrypt from "bcryptjs";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ensureAccounts } from "../../../installer/install/accounts.js";
import { writeNodeConfig } from "../../../installer/install/node-config.js";
import { mergeValues, readOperatorValues } from "../../../installer/install/plane-values.js";
import { siteUnit } from "../../../installer/install/registry-service.js";
import { loadHtpasswd } from "../../../registry/server/index.js";
import { expectAirlockError } from "../../helpers/fixtures.js";

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "airlock-install-parts-"));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("registry accounts", () => {
  it("makes a pull and an admin account once, bcrypt in a 0600 htpasswd, and keeps them on a re-run", async () => {
    const first = await ensureAccounts(dir);
    expect(first.created.map((account) => account.username)).toEqual(["cluster-pull", "admin"]);
    expect((await stat(first.htpasswdFile)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "registry/pull-password"))).mode & 0o777).toBe(0o600);
    const users = await loadHtpasswd(first.htpasswdFile);
    const admin = first.created.find((account) => account.username === "admin")!;
    expect(await bcrypt.compare(admin.password, users.get("admin")!)).toBe(true);
    expect(await bcrypt.compare(first.pull.password, users.get("cluster-pull")!)).toBe(true);
    const before = await readFile(first.htpasswdFile, "utf8");

    const again = await ensureAccounts(dir);
    expect(again.created).toEqual([]);
    expect(again.pull).toEqual(first.pull);
    expect(await readFile(first.htpasswdFile, "utf8")).toBe(before);
  });

  it("makes a new pull password when its file no longer matches, keeping the admin account", async () => {
    const first = await ensureAccounts(dir);
    await writeFile(join(dir, "registry/pull-password"), "not-the-password\n");
    const again = await ensureAccounts(dir);
    expect(again.created.map((account) => account.username)).toEqual(["cluster-pull"]);
    expect(again.pull.password).not.toBe(first.pull.password);
    const users = await loadHtpasswd(first.htpasswdFile);
    expect(await bcrypt.compare(again.pull.password, users.get("cluster-pull")!)).toBe(true);
    const admin = first.created.find((account) => account.username === "admin")!;
    expect(await bcrypt.compare(admin.password, users.get("admin")!)).toBe(true);
  });
});

describe("the site daemon's unit", () => {
  it("runs airlock serve with the data dir, the three listeners, TLS and accounts, quoting what systemd would split", () => {
    const unit = siteUnit({
      airlockCommand: ["/usr/bin/node", "/opt/air lock/main.js"],
      dataDir: "/var/lib/airlock",
      listen: "0.0.0.0:5443",
      tls: { certFile: "/var/lib/airlock/pki/registry.crt", keyFile: "/var/lib/airlock/pki/registry.key" },
      htpasswdFile: "/var/lib/airlock/registry/htpasswd",
      pushUser: "admin",
      consoleListen: "0.0.0.0:8443",
      healthListen: "127.0.0.1:8442",
    });
    expect(unit).toContain(
      'ExecStart=/usr/bin/node "/opt/air lock/main.js" --data-dir /var/lib/airlock --log-format json serve --registry-listen 0.0.0.0:5443 --tls-cert /var/lib/airlock/pki/registry.crt --tls-key /var/lib/airlock/pki/registry.key --auth htpasswd:/var/lib/airlock/registry/htpasswd --push-user admin --console-listen 0.0.0.0:8443 --health-listen 127.0.0.1:8442\n',
    );
    expect(unit).toContain("ExecReload=/bin/kill -HUP $MAINPID");
    expect(unit).toMatch(/^\[Install\]\nWantedBy=multi-user.target$/m);
    expect(unit).toContain("Restart=on-failure");
  });
});

describe("plane values", () => {
  it("merges maps key by key, the later layer winning; lists replaced whole", () => {
    expect(
      mergeValues(
        { registry: "r:1", msgbroker: { replicas: 2, extraSans: ["a"], ports: { client: 1 } } },
        { msgbroker: { replicas: 3, extraSans: ["b"] } },
      ),
    ).toEqual({ registry: "r:1", msgbroker: { replicas: 3, extraSans: ["b"], ports: { client: 1 } } });
  });

  it("refuses an operator values file with a bad field, naming the file and the field", async () => {
    const file = join(dir, "values.yaml");
    await writeFile(file, "msgbroker:\n  replicas: zero\n");
    const error = await expectAirlockError(readOperatorValues(file), "VALUES_INVALID", "msgbroker.replicas");
    expect(error.where).toContain(file);
    expect(error.exitCode).toBe(2);
    await writeFile(file, "msgbroker:\n  replica: 2\n");
    await expectAirlockError(readOperatorValues(file), "VALUES_INVALID", file);
    await expectAirlockError(
      readOperatorValues(join(dir, "missing.yaml")),
      "VALUES_UNREADABLE",
      "missing.yaml",
    );
  });
});

describe("node configuration for an existing cluster", () => {
  it("writes registries.yaml with the pull account and CA, and a hosts.toml per registry name", async () => {
    const caFile = join(dir, "ca.crt");
    await writeFile(caFile, "-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n");
    const access = { endpoint: "10.0.0.5:5443", caFile, username: "cluster-pull", password: "secret" };
    const config = await writeNodeConfig(dir, access, "registry.airlock.local:5443");
    expect(config.files).toEqual([
      "registries.yaml",
      "airlock-registry-ca.pem",
      "certs.d/registry.airlock.local:5443/hosts.toml",
      "certs.d/registry.airlock.local:5443/ca.crt",
      "certs.d/10.0.0.5:5443/hosts.toml",
      "certs.d/10.0.0.5:5443/ca.crt",
    ]);
    const registries = parse(await readFile(join(config.dir, "registries.yaml"), "utf8")) as unknown;
    expect(registries).toEqual({
      mirrors: {
        "registry.airlock.local:5443": { endpoint: ["https://10.0.0.5:5443"] },
        "10.0.0.5:5443": { endpoint: ["https://10.0.0.5:5443"] },
      },
      configs: {
        "10.0.0.5:5443": {
          auth: { username: "cluster-pull", password: "secret" },
          tls: { ca_file: "/etc/rancher/k3s/airlock-registry-ca.pem" },
        },
      },
    });
    expect((await stat(join(config.dir, "registries.yaml"))).mode & 0o777).toBe(0o600);
    expect(await readFile(join(config.dir, "certs.d/registry.airlock.local:5443/hosts.toml"), "utf8")).toBe(
      [
        'server = "https://10.0.0.5:5443"',
        "",
        '[host."https://10.0.0.5:5443"]',
        '  capabilities = ["pull", "resolve"]',
        '  ca = "/etc/containerd/certs.d/registry.airlock.local:5443/ca.crt"',
        "",
      ].join("\n"),
    );
    expect(config.instructions).toContain("/etc/rancher/k3s/registries.yaml");
  });
});
