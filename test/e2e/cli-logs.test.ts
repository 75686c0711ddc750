/**
 * Issue 11, point 3, as a user runs the built CLI: `registry serve --log-format json` writes one
 * parseable JSON line per request on stderr and nothing else there; `--log-format text` (the
 * default) writes the text form; a failed command with --log-format json is one JSON error line
 * (its stack only with --debug), and progress in a pipe is JSON lines too.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, MiB, runCli, sampleBundle, useFixtures, waitFor, type Fixtures } from "../helpers/fixtures.js";

let dataDir: string;
let fx: Fixtures;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), "airlock-cli-logs-"));
  fx = await useFixtures({ size: MiB });
});

afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
  await fx?.cleanup();
});

interface Served {
  child: ChildProcess;
  url: string;
  stderr: () => string;
  exited: Promise<number | null>;
}

async function serve(logFormat: "text" | "json"): Promise<Served> {
  const child = spawn(
    process.execPath,
    [CLI, "--data-dir", dataDir, "--json", "--log-format", logFormat, "registry", "serve"].concat([
      "--listen",
      "127.0.0.1:0",
      "--insecure-http",
      "--anonymous-pull",
    ]),
    { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const parsed = (): { url: string } | undefined => {
    try {
      return JSON.parse(stdout) as { url: string };
    } catch {
      return undefined;
    }
  };
  await waitFor(() => parsed() !== undefined || child.exitCode !== null, 20_000, "serve to listen");
  expect(parsed(), stderr).toBeDefined();
  return { child, url: parsed()!.url, stderr: () => stderr, exited };
}

/** Three requests: the base, an unknown manifest, a tag list with a query. */
async function requests(url: string): Promise<string[]> {
  const ids: string[] = [];
  for (const path of ["/v2/", "/v2/hubble/none/manifests/latest", "/v2/hubble/none/tags/list?n=5"]) {
    const answer = await fetch(`${url}${path}`);
    await answer.arrayBuffer();
    ids.push(answer.headers.get("x-request-id")!);
  }
  return ids;
}

const requestCount = (served: Served): number =>
  served
    .stderr()
    .split("\n")
    .filter((line) => line.includes("request")).length;

describe("airlock --log-format", () => {
  it("json: registry serve writes one parseable JSON line per request, with its fields", async () => {
    const served = await serve("json");
    try {
      await requests(served.url);
      await waitFor(() => requestCount(served) >= 3, 10_000, "three request lines");
    } finally {
      served.child.kill("SIGTERM");
    }
    expect(await served.exited).toBe(0);
    const lines = served.stderr().trimEnd().split("\n");
    const records = lines.map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(
      records.map((record) => [record.level, record.msg, record.method, record.path, record.status]),
    ).toEqual([
      ["info", "request", "GET", "/v2/", 200],
      ["info", "request", "GET", "/v2/hubble/none/manifests/latest", 404],
      ["info", "request", "GET", "/v2/hubble/none/tags/list", 404],
    ]);
    for (const record of records) {
      expect(record).toMatchObject({ user: "anonymous", pid: served.child.pid });
      expect(record.requestId).toMatch(/^[0-9a-f-]{36}$/);
      expect(typeof record.bytes).toBe("number");
      expect(typeof record.durationMs).toBe("number");
    }
  });

  it("text: registry serve writes time, level, message and key=value per request", async () => {
    const served = await serve("text");
    let ids: string[] | undefined;
    try {
      ids = await requests(served.url);
      await waitFor(() => requestCount(served) >= 3, 10_000, "three request lines");
    } finally {
      served.child.kill("SIGTERM");
    }
    expect(await served.exited).toBe(0);
    const lines = served.stderr().trimEnd().split("\n");
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatch(
      new RegExp(
        `^\\d{4}-\\d\\d-\\d\\dT[\\d:.]+Z INFO {2}request requestId=${ids?.[0]} method=GET path=/v2/ status=200 bytes=\\d+ durationMs=[\\d.]+ user=anonymous$`,
      ),
    );
    expect(lines[2]).toContain(`requestId=${ids?.[2]} method=GET path=/v2/hubble/none/tags/list status=404`);
  });

  it("json: a failed command is one JSON error line with its code, the text form unchanged", async () => {
    const args = ["--data-dir", dataDir, "registry", "serve", "--insecure-http"];
    const json = await runCli(["--log-format", "json", ...args]);
    expect(json.code).toBe(2);
    const lines = json.stderr.trimEnd().split("\n");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0]!)).toMatchObject({
      level: "error",
      code: "USAGE",
      msg: "say who may pull: --auth htpasswd:FILE, --auth token:FILE, or --anonymous-pull",
      hint: "make accounts with `htpasswd -Bc FILE USER`",
    });
    const text = await runCli(args);
    expect(text.code).toBe(2);
    expect(text.stderr).toBe(
      "error USAGE: say who may pull: --auth htpasswd:FILE, --auth token:FILE, or --anonymous-pull\n" +
        "  hint:  make accounts with `htpasswd -Bc FILE USER`\n",
    );
  });

  it("json with --debug: the error line carries the stack", async () => {
    const args = ["--data-dir", dataDir, "registry", "serve", "--insecure-http"];
    const result = await runCli(["--log-format", "json", "--debug", ...args]);
    expect(result.code).toBe(2);
    const record = JSON.parse(result.stderr.trimEnd()) as { code: string; err: { stack: string } };
    expect(record.code).toBe("USAGE");
    expect(record.err.stack).toMatch(/^AirlockError: say who may pull.*\n\s+at /);
  });

  it("json: a long command's progress in a pipe is JSON lines", async () => {
    const { bundle } = await sampleBundle(fx);
    const result = await runCli(["--log-format", "json", "bundle", "verify", bundle]);
    expect(result.code, result.stderr).toBe(0);
    const records = result.stderr
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(records.length).toBeGreaterThan(0);
    expect(records.every((record) => record.msg === "verify" && record.level === "info")).toBe(true);
    expect(records.at(-1)).toMatchObject({ percent: 100 });
    expect(records.at(-1)!.done).toBe(records.at(-1)!.total);
  });
});
