// A stand-in for systemctl, for tests: records every call, and for a unit under the host root runs
// its ExecStart for real (start/restart), ends it (stop) and reports it (is-active), so a unit file
// an install writes is proven to start the service it names.
//   AIRLOCK_FAKE_SYSTEMCTL_ROOT  the host root the units are under (etc/systemd/system/<unit>)
//   AIRLOCK_FAKE_SYSTEMCTL_DIR   where calls.log, <unit>.pid and <unit>.log go
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
import { setTimeout as sleep } from "node:timers/promises";

const root = process.env.AIRLOCK_FAKE_SYSTEMCTL_ROOT;
const dir = process.env.AIRLOCK_FAKE_SYSTEMCTL_DIR;
if (root === undefined || dir === undefined) {
  process.stderr.write("fake systemctl: set AIRLOCK_FAKE_SYSTEMCTL_ROOT and AIRLOCK_FAKE_SYSTEMCTL_DIR\n");
  process.exit(1);
}
mkdirSync(dir, { recursive: true });
const [verb, unit] = process.argv.slice(2);
appendFileSync(join(dir, "calls.log"), `${process.argv.slice(2).join(" ")}\n`);

/** systemd's ExecStart words: split on blanks, double quotes group, backslash escapes. */
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

function pidOf(name) {
  const file = join(dir, `${name}.pid`);
  return existsSync(file) ? Number(readFileSync(file, "utf8")) : undefined;
}

/** Alive and not a zombie waiting for a parent that never reaps it. */
function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

function start(name) {
  const running = pidOf(name);
  if (running !== undefined && alive(running)) return;
  const text = readFileSync(join(root, "etc/systemd/system", name), "utf8");
  const line = text.split("\n").find((l) => l.startsWith("ExecStart="));
  if (line === undefined) throw new Error(`${name} has no ExecStart`);
  const [command, ...args] = words(line.slice("ExecStart=".length));
  const log = openSync(join(dir, `${name}.log`), "a");
  const child = spawn(command, args, { detached: true, stdio: ["ignore", log, log] });
  writeFileSync(join(dir, `${name}.pid`), String(child.pid));
  child.unref();
}

async function stop(name) {
  const pid = pidOf(name);
  if (pid === undefined) return;
  if (alive(pid)) process.kill(pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (alive(pid) && Date.now() < deadline) await sleep(20);
  if (alive(pid)) process.kill(pid, "SIGKILL");
  rmSync(join(dir, `${name}.pid`), { force: true });
}

switch (verb) {
  case "daemon-reload":
  case "enable":
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
  case "is-active": {
    const pid = pidOf(unit);
    const active = pid !== undefined && alive(pid);
    process.stdout.write(active ? "active\n" : "inactive\n");
    process.exit(active ? 0 : 3);
    break;
  }
  default:
    process.stderr.write(`fake systemctl: ${verb} is not known\n`);
    process.exit(1);
}
