// The test ledger's reader of a consumer's output file, which tests read while `interop listen` writes it.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { tempDir } from "./helpers/cli.ts";
import { readDeliveriesFile } from "./helpers/ledger.ts";

test("readDeliveriesFile() leaves a last line still being written for the next read", (t) => {
  // Parsed, it failed tests/e2e/postgres_outages with "Unterminated string in JSON" (binary run, load 12).
  const dir = tempDir();
  t.after(dir.cleanup);
  const path = join(dir.path, "out.jsonl");
  writeFileSync(path, '{"key":"a","interop":{"id":1}}\n{"key":"b","inter');
  assert.deepEqual(readDeliveriesFile(path), [{ key: "a", id: 1 }]);
  writeFileSync(path, '{"key":"a","interop":{"id":1}}\n{"key":"b","interop":{"id":2}}\n');
  assert.deepEqual(readDeliveriesFile(path), [{ key: "a", id: 1 }, { key: "b", id: 2 }]);
});
