/**
 * Fitting `--max-connections` to the process's open-file limit (`ulimit -n`): a broker that runs out of file
 * descriptors cannot accept a connection, and Deno's `node:net` then stops accepting for good (the process lives
 * on and serves nothing), while Node's retries. Within the limit, the connection cap is what turns a flood away.
 */
import { readFileSync } from "node:fs";
import { OPERATOR_PLACES } from "../http/request_limits.ts";

/** What the broker holds open besides connections: its store and WAL, logs, PostgreSQL clients, outbound pushes. */
const RESERVED_FILES = 64;

/** The soft limit on open files, from Linux's /proc; undefined where it cannot be read or is unlimited. */
export function openFileLimit(): number | undefined {
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
export function filesFor(connections: number): number {
  return 2 * connections + OPERATOR_PLACES + RESERVED_FILES;
}

/** The most connections `files` open files allow (see `filesFor`). */
export function connectionsWithin(files: number): number {
  return Math.floor((files - OPERATOR_PLACES - RESERVED_FILES) / 2);
}
