import assert from "node:assert/strict";
import { test } from "node:test";
import { formatAgo, formatSpan } from "../src/cli/relative_time.ts";

test("formatSpan() prints the two largest units, rounded down", () => {
  assert.equal(formatSpan(0), "0 s");
  assert.equal(formatSpan(4.9), "4 s");
  assert.equal(formatSpan(62), "1 m 2 s");
  assert.equal(formatSpan(3 * 3600 + 2 * 60 + 9), "3 h 2 m");
  assert.equal(formatSpan(3600), "1 h 0 m");
  assert.equal(formatSpan(2 * 86400 + 5 * 3600 + 7), "2 d 5 h");
});

test("formatAgo() counts from the given clock, never into the future, and says never for no time", () => {
  const now = Date.parse("2026-11-29T12:00:00Z");
  assert.equal(formatAgo("2026-11-29T11:59:56.400Z", now), "3 s ago");
  assert.equal(formatAgo("2026-11-29T12:00:02Z", now), "0 s ago");
  assert.equal(formatAgo(null, now), "never");
});
