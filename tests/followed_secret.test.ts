// A push receiver's secret read again when its file changes; the last good one kept while the file holds none.
import assert from "node:assert/strict";
import { renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { followedSecret } from "../src/cli/followed_secret.ts";
import { tempDir } from "./helpers/cli.ts";

test("followedSecret() reads the file again once it changed, and keeps the last good token while it holds none", (t) => {
  const dir = tempDir();
  t.after(dir.cleanup);
  const file = join(dir.path, "token");
  writeFileSync(file, "first\n");
  const secret = followedSecret(file, undefined, "$TOKEN")!;
  assert.equal(secret(), "first");
  writeFileSync(file, "");
  assert.equal(secret(), "first", "written half-way: empty");
  writeFileSync(file, "two words\n");
  assert.equal(secret(), "first", "not one token");
  writeFileSync(file, "second-token\n");
  assert.equal(secret(), "second-token");
  // Replaced by a rename, as editors and `install` write: a new file at the name.
  writeFileSync(join(dir.path, "next"), "third\n");
  renameSync(join(dir.path, "next"), file);
  assert.equal(secret(), "third");
  rmSync(file);
  assert.equal(secret(), "third", "removed: the last good one");
});

test("followedSecret() refuses at start what readSecret refuses, and takes the environment's secret as it is", () => {
  assert.equal(followedSecret(undefined, undefined, "$TOKEN"), undefined);
  assert.equal(followedSecret(undefined, " from-env\n", "$TOKEN")!(), "from-env");
  assert.throws(() => followedSecret(undefined, "two words", "$TOKEN"), /\$TOKEN does not hold one token/);
  assert.throws(() => followedSecret("/nonexistent/token", undefined, "$TOKEN"), /Cannot read \/nonexistent\/token/);
});
