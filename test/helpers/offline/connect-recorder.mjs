// Preloaded (`node --import`) into every Node process of an install under test, through
// NODE_OPTIONS: records, as JSON lines in $AIRLOCK_CONNECT_LOG, its start (argv), every outgoing TCP/TLS connect
// (host, port, or a socket path), every UDP send, every name lookup, and every error event a
// connecting socket emits — without changing what the process does (no listener is added).
import dgram from "node:dgram";
import dns from "node:dns";
import { appendFileSync } from "node:fs";
import net from "node:net";
import { syncBuiltinESMExports } from "node:module";

const log = process.env.AIRLOCK_CONNECT_LOG;
const record = (entry) => appendFileSync(log, `${JSON.stringify({ pid: process.pid, ...entry })}\n`);
record({ event: "start", argv: process.argv.slice(1) });

/** What Socket#connect was asked for: its options, a port (and host), or a path; net passes its arguments normalized as an array. */
function targetOf(args) {
  const given = Array.isArray(args[0]) ? args[0] : args;
  const [first, second] = given;
  if (typeof first === "object" && first !== null)
    return first.path != null
      ? { path: first.path }
      : { host: first.host ?? "localhost", port: Number(first.port) };
  if (typeof first === "string" && !/^\d+$/.test(first)) return { path: first };
  return { host: typeof second === "string" ? second : "localhost", port: Number(first) };
}

const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  const target = targetOf(args);
  record({ event: "connect", ...target });
  const emit = this.emit;
  this.emit = function (name, ...rest) {
    if (name === "error")
      record({ event: "error", ...target, code: rest[0]?.code, message: rest[0]?.message });
    return emit.call(this, name, ...rest);
  };
  return connect.apply(this, args);
};

const send = dgram.Socket.prototype.send;
dgram.Socket.prototype.send = function (...args) {
  record({
    event: "udp",
    args: args.filter((arg) => typeof arg !== "function" && !Buffer.isBuffer(arg)).map(String),
  });
  return send.apply(this, args);
};

const lookup = dns.lookup;
dns.lookup = function (hostname, ...rest) {
  record({ event: "lookup", hostname });
  return lookup.call(this, hostname, ...rest);
};
const lookupPromise = dns.promises.lookup;
dns.promises.lookup = function (hostname, ...rest) {
  record({ event: "lookup", hostname });
  return lookupPromise.call(this, hostname, ...rest);
};
syncBuiltinESMExports();
