/** A stray PostgreSQL connection failure no query awaits does not take the broker down; any other stray still does. */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";

const FIXTURE = join(import.meta.dirname!, "fixtures", "stray_rejections.ts");

test("an unhandled rejection that is a lost PostgreSQL connection is logged and the process goes on; another ends it", async () => {
  const args = "Deno" in globalThis ? ["run", "-A", FIXTURE] : [FIXTURE];
  const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
    const child = execFile(process.execPath, args, (error, stdout) => resolve({ code: error ? (error as { code?: number }).code ?? 1 : 0, stdout }));
    child.stdin?.end();
  });
  assert.match(stdout, /^warn: a PostgreSQL connection failed with no query waiting on it \(read ECONNRESET\): serving on\nstill serving\n$/);
  assert.notEqual(code, 0, "a rejection of another kind still ends the process");
});
