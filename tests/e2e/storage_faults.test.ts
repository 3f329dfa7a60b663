import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { runCli, tempDir } from "../helpers/cli.ts";

test("interop serve refuses a corrupt database with a clear error and leaves the file as it was", async () => {
  const dir = tempDir();
  try {
    const garbage = Buffer.from("this is not an SQLite database, it is a test ".repeat(200));
    mkdirSync(join(dir.path, "data"));
    writeFileSync(join(dir.path, "data", "interop.db"), garbage);
    const result = await runCli(["serve", "--port", "0", "--data-dir", join(dir.path, "data")]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: Cannot open database .*interop\.db: file is not a database\n$/);
    assert.deepEqual(readFileSync(join(dir.path, "data", "interop.db")), garbage);
  } finally {
    dir.cleanup();
  }
});

test("interop serve says so when the data dir cannot be created", async () => {
  const dir = tempDir();
  try {
    writeFileSync(join(dir.path, "file"), "");
    const result = await runCli(["serve", "--port", "0", "--data-dir", join(dir.path, "file", "data")]);
    assert.equal(result.code, 1);
    assert.match(result.stderr, /^error: Cannot create data dir .*file\/data: ENOTDIR/);
  } finally {
    dir.cleanup();
  }
});
