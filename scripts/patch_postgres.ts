/**
 * Patches the `postgres` client 3.4.9 (the latest release) against four faults when a connection closes, until a
 * release fixes them (the first two are porsager/postgres#1154, #1208; fixes proposed upstream, #1176 and #1209,
 * are unreleased).
 * A write of under 1 KiB is buffered and flushed by a setImmediate:
 * - a query written to a connection that closed and has not reconnected yet made `nextWrite` call `write` on a
 *   null socket and throw from the timer, an uncaught TypeError that took the broker down. With no socket, the
 *   patched `nextWrite` drops the buffer and rejects the connection's queries with CONNECTION_CLOSED (as #1209
 *   does), which the store answers with 503;
 * - closing cancelled a pending flush but left its timer set and its bytes buffered, so after the reconnect no
 *   small write was ever flushed (the startup message waited behind the stale bytes): the connection hung for good.
 *   The patch forgets both when it cancels the flush;
 * - an error the server sent during a query whose connection then closed (PostgreSQL stopping: 57P01) was kept, and
 *   failed the first query after the reconnect, once PostgreSQL was back: the broker saw a second outage, logged it,
 *   and answered 503 for it. The patch forgets it when the connection closes (as ReadyForQuery does);
 * - a query sent after the socket's error and before its close (a transaction's rollback, sent as its statement failed
 *   with ECONNRESET: PostgreSQL stopping) was left queued, its bytes lost with the socket: closing fails what is queued
 *   only when the close comes without an error. On the connection made again it took the answer to the next query
 *   and then waited for one the server never sends; a transaction behind it waited for good, and with it every write
 *   of the broker, right after an outage ended. The patch fails what is queued on every close, and forgets the query
 *   in flight (failed by the error already), as a close without an error leaves nothing behind (porsager/postgres#1215,
 *   unreleased, also clears that state and fails a closed transaction's later queries).
 *
 * Run by npm's `postinstall` and by build.ts before it bundles: idempotent, and it fails loudly when the file is
 * not the one it was written for (a new release: check whether it still needs the patch, then update or remove it).
 *
 *   node scripts/patch_postgres.ts [NODE_MODULES]
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import process from "node:process";

const VERSION = "3.4.9";
/** The ESM build (Node, Deno and esbuild import it) and the CommonJS one (a `require`), the same code. */
const FILES = ["src/connection.js", "cjs/src/connection.js"];
const MARK = "interop: porsager/postgres#1154, #1208 (scripts/patch_postgres.ts)";
/** The error kept past its connection's close (added later: an install patched before gets it on its own). */
const STALE_ERROR_MARK = "interop: an error kept past its connection (scripts/patch_postgres.ts)";
/** The queries left queued by a close with an error (added later, as STALE_ERROR_MARK was). */
const QUEUED_MARK = "interop: what a close with an error left queued (scripts/patch_postgres.ts)";
/** Each edit: the code as released, how often it occurs, what replaces it, and what says it is applied. */
const EDITS: Array<[original: string, count: number, patched: string, mark: string]> = [
  [
    `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`,
    1,
    `  function nextWrite(fn) {
    // ${MARK}
    if (socket === null) {
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)`,
    MARK,
  ],
  // In terminate() and closed(): the connection object is reused by the next connect.
  [
    `    clearImmediate(nextWriteTimer)
`,
    2,
    `    clearImmediate(nextWriteTimer)
    chunk = nextWriteTimer = null // ${MARK}
`,
    MARK,
  ],
  [
    `  async function closed(hadError) {
    incoming = Buffer.alloc(0)
`,
    1,
    `  async function closed(hadError) {
    errorResponse = null // ${STALE_ERROR_MARK}
    incoming = Buffer.alloc(0)
`,
    STALE_ERROR_MARK,
  ],
  [
    `    !hadError && (query || sent.length) && error(Errors.connection('CONNECTION_CLOSED', options, socket))
`,
    1,
    `    // ${QUEUED_MARK}
    if (query || sent.length) error(Errors.connection('CONNECTION_CLOSED', options, socket))
    query = null
`,
    QUEUED_MARK,
  ],
];

/** Patches the package in `nodeModules`; returns the files it changed (none when already patched). */
export function patchPostgres(nodeModules = "node_modules"): string[] {
  const root = join(nodeModules, "postgres");
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  if (version !== VERSION) {
    throw new Error(`scripts/patch_postgres.ts is for postgres ${VERSION}, found ${version}: check whether it fixes what scripts/patch_postgres.ts patches, then update or remove the patch`);
  }
  const changed: string[] = [];
  for (const file of FILES) {
    const path = join(root, file);
    const source = readFileSync(path, "utf8");
    let patched = source;
    for (const [original, count, replacement, mark] of EDITS) {
      if (source.includes(mark)) continue;
      if (patched.split(original).length !== count + 1) {
        throw new Error(`${path} no longer has the code scripts/patch_postgres.ts patches:\n${original}`);
      }
      patched = patched.replaceAll(original, replacement);
    }
    if (patched === source) continue;
    writeFileSync(path, patched);
    changed.push(path);
  }
  return changed;
}

if (import.meta.main) {
  try {
    const changed = patchPostgres(process.argv[2]);
    console.error(changed.length === 0 ? "postgres: already patched" : `postgres: patched ${changed.join(", ")}`);
  } catch (error) {
    console.error(`error: ${(error as Error).message}`);
    process.exit(1);
  }
}
