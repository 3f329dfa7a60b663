/**
 * Patches the `postgres` client 3.4.9 (the latest release) against a crash, until a release fixes it: a write of
 * under 1 KiB is buffered and flushed by a setImmediate; when the connection closes in between (PostgreSQL killed
 * or restarted) and a query is written to it before it reconnects, `nextWrite` calls `socket.write` on null and
 * throws from the timer, an uncaught TypeError that takes the broker down (porsager/postgres#1154, #1208; the
 * fixes proposed upstream, #1176 and #1209, are unreleased). The patch does what #1209 does: with no socket, drop
 * the buffer and reject the connection's queries with CONNECTION_CLOSED, which the store already answers with 503.
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
const ORIGINAL = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)`;
const PATCHED = `  function nextWrite(fn) {
    // interop: porsager/postgres#1154, #1208 (scripts/patch_postgres.ts)
    if (socket === null) {
      nextWriteTimer !== null && clearImmediate(nextWriteTimer)
      chunk = nextWriteTimer = null
      error(Errors.connection('CONNECTION_CLOSED', options))
      return false
    }
    const x = socket.write(chunk, fn)`;

/** Patches the package in `nodeModules`; returns the files it changed (none when already patched). */
export function patchPostgres(nodeModules = "node_modules"): string[] {
  const root = join(nodeModules, "postgres");
  const { version } = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  if (version !== VERSION) {
    throw new Error(`scripts/patch_postgres.ts is for postgres ${VERSION}, found ${version}: check whether ${VERSION}'s nextWrite crash is fixed there`);
  }
  const changed: string[] = [];
  for (const file of FILES) {
    const path = join(root, file);
    const source = readFileSync(path, "utf8");
    if (source.includes(PATCHED)) continue;
    if (source.split(ORIGINAL).length !== 2) throw new Error(`${path} no longer has the nextWrite that scripts/patch_postgres.ts patches`);
    writeFileSync(path, source.replace(ORIGINAL, PATCHED));
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
