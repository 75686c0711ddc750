#!/usr/bin/env node
/**
 * A stand-in `systemctl` for tests that install under a temporary host root. Every call is recorded
 * as one JSON line in $STANDIN_LOG; units are read from $STANDIN_HOST_ROOT/etc/systemd/system.
 * `start`/`restart` run the unit's ExecStart for real (split as systemd splits it; its binary taken
 * from under the host root when it is there — k3s — else from the host — node —; its
 * EnvironmentFile loaded), detached, with the PID kept under the host root's /run; `stop` ends it;
 * `is-active` answers from that PID; `enable`, `disable` and `daemon-reload` are only recorded. ExecStartPre
 * lines (modprobe) are not run: they act on the real kernel.
 */
import { spawn } from "node:child_process";
import {
  appendFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { setTimeout as delay } from "node:timers/promises";

const hostRoot = process.env.STANDIN_HOST_ROOT;
const log = process.env.STANDIN_LOG;
if (hostRoot === undefined || log === undefined) {
  process.stderr.write("stand-in systemctl: set STANDIN_HOST_ROOT and STANDIN_LOG\n");
  process.exit(2);
}
const [verb, unit] = process.argv.slice(2);
appendFileSync(log, JSON.stringify({ program: "systemctl", args: process.argv.slice(2) }) + "\n");

const stateDir = join(hostRoot, "run/systemd/standin");
const pidFile = (name) => join(stateDir, `${name}.pid`);

function unitLines(name) {
  const path = join(hostRoot, "etc/systemd/system", name);
  if (!existsSync(path)) fail(5, `Unit ${name} not found.`);
  return readFileSync(path, "utf8")
    .split("\n")
    .filter((line) => /^[A-Za-z]+=/.test(line))
    .map((line) => [line.slice(0, line.indexOf("=")), line.slice(line.indexOf("=") + 1)]);
}

/** `KEY=value` lines; a double-quoted value unquoted as systemd does for plain escapes. */
function environmentOf(lines) {
  const env = {};
  for (const [key, value] of lines) {
    if (key !== "EnvironmentFile") continue;
    const optional = value.startsWith("-");
    const path = join(hostRoot, optional ? value.slice(1) : value);
    if (!existsSync(path)) {
      if (optional) continue;
      fail(1, `environment file ${value} missing`);
    }
    for (const line of readFileSync(path, "utf8").split("\n")) {
      const match = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
      if (match === null) continue;
      env[match[1]] = match[2].startsWith('"') ? JSON.parse(match[2]) : match[2];
    }
  }
  return env;
}

/** systemd's ExecStart words: split on blanks, double quotes group, backslash escapes inside them. */
function words(line) {
  const out = [];
  let current = "";
  let quoted = false;
  let started = false;
  for (let i = 0; i < line.length; i++) {
    const char = line[i];
    if (char === "\\" && quoted) {
      current += line[++i];
    } else if (char === '"') {
      quoted = !quoted;
      started = true;
    } else if (/\s/.test(char) && !quoted) {
      if (started) out.push(current);
      current = "";
      started = false;
    } else {
      current += char;
      started = true;
    }
  }
  if (started) out.push(current);
  return out;
}

function runningPid(name) {
  if (!existsSync(pidFile(name))) return undefined;
  const pid = Number(readFileSync(pidFile(name), "utf8"));
  return alive(pid) ? pid : undefined;
}

/** Running, and not a zombie its parent has yet to reap. */
function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

function start(name) {
  if (runningPid(name) !== undefined) return;
  const lines = unitLines(name);
  const execStart = lines.find(([key]) => key === "ExecStart");
  if (execStart === undefined) fail(1, `${name} has no ExecStart`);
  const [binary, ...args] = words(execStart[1]);
  const installed = join(hostRoot, binary);
  mkdirSync(stateDir, { recursive: true });
  const output = openSync(join(stateDir, `${name}.log`), "a");
  const child = spawn(existsSync(installed) ? installed : binary, args, {
    detached: true,
    stdio: ["ignore", output, output],
    env: { ...process.env, ...environmentOf(lines) },
  });
  child.on("error", (error) => fail(1, `${name}: cannot run ${binary}: ${error.message}`));
  child.on("spawn", () => {
    writeFileSync(pidFile(name), String(child.pid));
    child.unref();
    process.exit(0);
  });
}

async function stop(name) {
  const pid = runningPid(name);
  rmSync(pidFile(name), { force: true });
  if (pid === undefined) return;
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (!alive(pid)) return;
    await delay(50);
  }
  process.kill(pid, "SIGKILL");
}

function fail(code, message) {
  process.stderr.write(`${message}\n`);
  process.exit(code);
}

switch (verb) {
  case "daemon-reload":
  case "enable":
  case "disable":
    break;
  case "start":
    start(unit);
    break;
  case "restart":
    await stop(unit);
    start(unit);
    break;
  case "stop":
    await stop(unit);
    break;
  case "is-active":
    // Real systemctl prints the state and exits 3 for anything but active.
    if (runningPid(unit) !== undefined) process.stdout.write("active\n");
    else {
      process.stdout.write("inactive\n");
      process.exit(3);
    }
    break;
  default:
    fail(1, `stand-in systemctl: unknown verb ${verb}`);
}
