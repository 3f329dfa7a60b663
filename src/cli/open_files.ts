/**
 * Fitting `--max-connections` to the process's open-file limit (`ulimit -n`): a broker that runs out of file
 * descriptors cannot accept a connection, and Deno's `node:net` then stops accepting for good until the broker
 * listens anew (src/runtime/listener_watch.ts), while Node's retries. Within the limit, the connection cap is what
 * turns a flood away.
 */
import { readFileSync } from "node:fs";
import { InteropError } from "../errors.ts";
import { OPERATOR_PLACES } from "../http/request_limits.ts";
import type { LogMethod } from "./logger.ts";

/** What the broker holds open besides connections: its store and WAL, logs, PostgreSQL clients, outbound pushes. */
const RESERVED_FILES = 64;

/** The soft limit on open files, from Linux's /proc; undefined where it cannot be read or is unlimited. */
function openFileLimit(): number | undefined {
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync("/proc/self/limits", "utf8"));
    return line === null ? undefined : Number(line[1]);
  } catch {
    return undefined;
  }
}

/**
 * The open files `connections` (--max-connections) may take: each request in progress holds one (up to the cap,
 * and the operator's places), and so may as many connections again that wait or are sending (their own cap).
 */
function filesFor(connections: number): number {
  return 2 * connections + OPERATOR_PLACES + RESERVED_FILES;
}

/**
 * `requested` (--max-connections), lowered with a warning to what the open-file limit allows; a limit too low to
 * serve at all is refused.
 */
export function fitToOpenFiles(requested: number, warn: LogMethod): number {
  const limit = openFileLimit();
  if (limit === undefined) return requested;
  const allowed = Math.floor((limit - OPERATOR_PLACES - RESERVED_FILES) / 2);
  if (allowed >= requested) return requested;
  if (allowed < 1) {
    throw new InteropError("usage", `The open-file limit (ulimit -n) is ${limit}: too low to serve; raise it to at least ${filesFor(64)}`);
  }
  warn(
    `--max-connections ${requested} needs ~${filesFor(requested)} open files but the limit (ulimit -n) is ${limit}: ` +
      `serving at most ${allowed} connections, so that the broker never runs out; raise the limit for more ` +
      "(LimitNOFILE= in a systemd unit)",
    { maxConnections: allowed, openFileLimit: limit },
  );
  return allowed;
}
