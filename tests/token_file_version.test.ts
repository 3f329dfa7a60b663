/** tokens.json's version changes with what it holds, not with its mtime, which two quick saves may share. */
import assert from "node:assert/strict";
import { readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
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

test("a change of tokens.json in place, its size and mtime kept, is seen after its hash was reused for a settled file", async (t) => {
  const dir = tempDir("interop-token-file-");
  t.after(() => dir.cleanup());
  const file = new TokenFile(dir.path);
  await file.create("hermes" as AgentName);
  await file.create("openclaw" as AgentName);
  // A round time, kept exactly when set again (a file's own, to the nanosecond, would not be).
  const mtime = new Date("2026-01-01T00:00:00Z");
  utimesSync(file.path, mtime, mtime);
  // Past the coarsest tick of a file system's clock: from now on the hash is reused while the file's stat is the same.
  await new Promise((resolve) => setTimeout(resolve, 5_200));
  const before = await file.version();
  assert.equal(await file.version(), before);
  // An editor's change in place: the same length, and the mtime set back. Only its ctime tells.
  const text = readFileSync(file.path, "utf8");
  writeFileSync(file.path, text.replace('"openclaw"', '"opencla_"'));
  utimesSync(file.path, mtime, mtime);
  assert.notEqual(await file.version(), before, "the broker would not read the change");
});

test("changedSinceVersion tells at once of every save since version() looked, the file's first and a revocation's", async (t) => {
  const dir = tempDir("interop-token-file-");
  t.after(() => dir.cleanup());
  const file = new TokenFile(dir.path);
  assert.equal(await file.version(), 0);
  assert.equal(file.changedSinceVersion(), false, "no file, as version() saw");
  await file.create("hermes" as AgentName);
  assert.equal(file.changedSinceVersion(), true, "the first token");
  await file.version();
  assert.equal(file.changedSinceVersion(), false);
  // Saved with the same times: a save replaces the file, so its new inode tells.
  const { mtime } = statSync(file.path);
  await file.revoke({ agent: "hermes" });
  utimesSync(file.path, mtime, mtime);
  assert.equal(file.changedSinceVersion(), true, "the revocation");
  await file.version();
  assert.equal(file.changedSinceVersion(), false);
  rmSync(file.path);
  assert.equal(file.changedSinceVersion(), true, "the file removed");
});
