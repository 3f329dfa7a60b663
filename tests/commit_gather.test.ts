/** The turns a commit waits for company, per runtime: only turns that poll I/O can bring a publish. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { commitGatherTurns } from "../src/runtime/commit_gather.ts";

test("commitGatherTurns() is one turn on Deno, whose turns of immediates poll no I/O, and three on Node", () => {
  assert.equal(commitGatherTurns(), "Deno" in globalThis ? 1 : 3);
});
