/** scripts/patch_postgres.ts: patches the client's released code once, and refuses code it was not written for. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { patchPostgres } from "../scripts/patch_postgres.ts";

/** The parts of 3.4.9's connection.js the patch edits, as released. */
const RELEASED = `  function nextWrite(fn) {
    const x = socket.write(chunk, fn)
    nextWriteTimer !== null && clearImmediate(nextWriteTimer)
  }
  function terminate() {
    clearImmediate(nextWriteTimer)
  }
  async function closed(hadError) {
    incoming = Buffer.alloc(0)
    clearImmediate(nextWriteTimer)
    socket = null
    !hadError && (query || sent.length) && error(Errors.connection('CONNECTION_CLOSED', options, socket))
  }
`;

/** A node_modules holding a fake `postgres` package: its version and its connection.js (both builds). */
function fakeNodeModules(t: { after(fn: () => void): void }, version: string, source: string): string {
  const root = mkdtempSync(join(tmpdir(), "interop-patch-"));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const pkg = join(root, "postgres");
  for (const dir of ["src", "cjs/src"]) {
    mkdirSync(join(pkg, dir), { recursive: true });
    writeFileSync(join(pkg, dir, "connection.js"), source);
  }
  writeFileSync(join(pkg, "package.json"), JSON.stringify({ name: "postgres", version }));
  return root;
}

test("patchPostgres() guards nextWrite, forgets a cancelled flush and fails what a close left queued in both builds, and a second run changes nothing", (t) => {
  const nodeModules = fakeNodeModules(t, "3.4.9", RELEASED);
  assert.equal(patchPostgres(nodeModules).length, 2);
  const patched = readFileSync(join(nodeModules, "postgres/src/connection.js"), "utf8");
  assert.match(patched, /function nextWrite\(fn\) \{\n.*\n    if \(socket === null\) \{/);
  assert.equal(patched.split("chunk = nextWriteTimer = null //").length, 3, "terminate() and closed() forget the flush");
  assert.match(patched, /async function closed\(hadError\) \{\n    errorResponse = null \/\//, "closed() forgets a kept error");
  assert.match(patched, /\n    if \(query \|\| sent\.length\) error\(.*\)\n    query = null\n/, "closed() fails what is queued, error or not");
  assert.ok(!patched.includes("!hadError && (query"), "closed() fails what is queued, error or not");
  assert.equal(readFileSync(join(nodeModules, "postgres/cjs/src/connection.js"), "utf8"), patched);
  assert.deepEqual(patchPostgres(nodeModules), []);
  assert.equal(readFileSync(join(nodeModules, "postgres/src/connection.js"), "utf8"), patched);
});

test("patchPostgres() adds what a client patched before lacks, once", (t) => {
  const first = fakeNodeModules(t, "3.4.9", RELEASED);
  patchPostgres(first);
  const patched = readFileSync(join(first, "postgres/src/connection.js"), "utf8");
  const before = patched.replace(/    errorResponse = null \/\/.*\n/, "");
  const nodeModules = fakeNodeModules(t, "3.4.9", before);
  assert.equal(patchPostgres(nodeModules).length, 2);
  assert.equal(readFileSync(join(nodeModules, "postgres/src/connection.js"), "utf8"), patched);
  assert.deepEqual(patchPostgres(nodeModules), []);
});

test("patchPostgres() refuses another version of the client, and code that no longer matches", (t) => {
  assert.throws(() => patchPostgres(fakeNodeModules(t, "3.5.0", RELEASED)), /is for postgres 3\.4\.9, found 3\.5\.0/);
  const changed = RELEASED.replace("    incoming = Buffer.alloc(0)\n", "");
  assert.throws(() => patchPostgres(fakeNodeModules(t, "3.4.9", changed)), /no longer has the code scripts\/patch_postgres\.ts patches/);
});

test("the installed postgres client is patched (npm's postinstall runs scripts/patch_postgres.ts)", () => {
  // Read, not patched here: a test leaves node_modules as it found it.
  const installed = readFileSync(join(import.meta.dirname!, "../node_modules/postgres/src/connection.js"), "utf8");
  assert.ok(installed.includes("#1208 (scripts/patch_postgres.ts)"), "run: node scripts/patch_postgres.ts");
  assert.ok(installed.includes("its connection (scripts/patch_postgres.ts)"), "run: node scripts/patch_postgres.ts");
  assert.ok(installed.includes("left queued (scripts/patch_postgres.ts)"), "run: node scripts/patch_postgres.ts");
});
