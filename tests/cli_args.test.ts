import assert from "node:assert/strict";
import { test } from "node:test";
import { parseByteSize, parseCount, parseDuration } from "../src/cli/args.ts";
import { backoffDelay } from "../src/client/backoff.ts";

test("parseDuration() reads ms, s, m, h and d, and bare numbers as seconds", () => {
  assert.equal(parseDuration("serve", "--x", "500ms"), 500);
  assert.equal(parseDuration("serve", "--x", "15s"), 15_000);
  assert.equal(parseDuration("serve", "--x", "10m"), 600_000);
  assert.equal(parseDuration("serve", "--x", "24h"), 86_400_000);
  assert.equal(parseDuration("serve", "--x", "2"), 2000);
  assert.throws(() => parseDuration("serve", "--retention", "soon"), /Invalid --retention: "soon".*interop serve --help/);
});

test("parseByteSize() reads bytes, KiB, MiB and GiB", () => {
  assert.equal(parseByteSize("serve", "--x", "4096"), 4096);
  assert.equal(parseByteSize("serve", "--x", "512KiB"), 524_288);
  assert.equal(parseByteSize("serve", "--x", "1MiB"), 1_048_576);
  assert.throws(() => parseByteSize("serve", "--max-body-bytes", "1 MB"), /Invalid --max-body-bytes/);
});

test("parseCount() rejects non-numbers and values out of range", () => {
  assert.equal(parseCount("serve", "--port", "18900", 0, 65535), 18900);
  assert.throws(() => parseCount("serve", "--port", "70000", 0, 65535), /from 0 to 65535/);
  assert.throws(() => parseCount("serve", "--port", "-1", 0, 65535), /Invalid --port/);
});

test("backoffDelay() grows exponentially with jitter and stays under the cap", () => {
  const options = { initialMs: 500, maxMs: 30_000 };
  assert.equal(backoffDelay(0, options, () => 0), 250);
  assert.equal(backoffDelay(0, options, () => 1), 500);
  assert.equal(backoffDelay(3, options, () => 1), 4000);
  assert.equal(backoffDelay(50, options, () => 1), 30_000);
  assert.equal(backoffDelay(50, options, () => 0), 15_000);
});
