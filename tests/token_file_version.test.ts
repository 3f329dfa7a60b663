/** tokens.json's version changes with what it holds, not with its mtime, which two quick saves may share. */
import assert from "node:assert/strict";
import { utimesSync } from "node:fs";
import { test } from "node:test";
import { TokenFile } from "../src/auth/token_file.ts";
import type { AgentName } from "../src/message.ts";
import { tempDir } from "./helpers/cli.ts";

test("a revocation saved with tokens.json's mtime unchanged (two saves in one tick of the clock) changes its version", async (t) => {
  const dir = tempDir("interop-token-file-");
  t.after(() => dir.cleanup());
  const file = new TokenFile(dir.path);
  assert.equal(await file.version(), 0);
  await file.create("hermes" as AgentName);
  await file.create("openclaw" as AgentName);
  // The file system's clock moves in ticks (~4 ms): saves within one share an mtime, as both of these now do.
  const tick = new Date("2026-01-01T00:00:00Z");
  utimesSync(file.path, tick, tick);
  const before = await file.version();
  assert.ok(before > 0);
  await file.revoke({ agent: "openclaw" });
  utimesSync(file.path, tick, tick);
  assert.notEqual(await file.version(), before, "the broker would not read the revocation");
  assert.deepEqual((await file.list()).map((record) => record.agent), ["hermes"]);
});
