// Whether the process a file names is gone: not running, of another boot, or its pid given to another process since.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { processGone, processMark } from "../src/process_runs.ts";

test("a process is gone once it exited, in another boot, or when its pid names a process started at another moment", async (t) => {
  const child = spawn("sleep", ["30"]);
  t.after(() => child.kill());
  const mark = processMark(child.pid!);
  assert.deepEqual(mark.boot, readFileSync("/proc/sys/kernel/random/boot_id", "utf8").trim());
  assert.match(mark.started ?? "", /^\d+$/);
  assert.equal(processGone(mark), false);
  assert.equal(processGone(processMark()), false, "this process");
  assert.equal(processGone({ pid: child.pid! }), false, "a mark of a version that kept no start: its pid alone");
  assert.equal(processGone({ ...mark, started: String(Number(mark.started) + 1) }), true, "the pid given to another process");
  assert.equal(processGone({ ...mark, boot: "an earlier boot" }), true);
  child.kill();
  await new Promise((resolve) => child.once("exit", resolve));
  assert.equal(processGone({ pid: child.pid! }), true);
});
