import assert from "node:assert/strict";
import { test } from "node:test";
import { RETRY_AFTER_MAX_S, retryAfterSeconds } from "../src/client/retry_after.ts";

test("retryAfterSeconds() reads seconds and HTTP dates, at most RETRY_AFTER_MAX_S", () => {
  const now = Date.parse("2026-12-06T10:00:00Z");
  assert.equal(retryAfterSeconds("5", now), 5);
  assert.equal(retryAfterSeconds(" 120 ", now), 120);
  assert.equal(retryAfterSeconds("1.5", now), 1.5);
  // An HTTP-date was read as NaN and dropped.
  assert.equal(retryAfterSeconds("Sun, 06 Dec 2026 10:00:30 GMT", now), 30);
  // A day held an inbox for a day; 3,000,000 s overflowed the timer, which then fired at once.
  assert.equal(retryAfterSeconds("86400", now), RETRY_AFTER_MAX_S);
  assert.equal(retryAfterSeconds("3000000", now), RETRY_AFTER_MAX_S);
  assert.equal(retryAfterSeconds("Mon, 07 Dec 2026 10:00:00 GMT", now), RETRY_AFTER_MAX_S);
});

test("retryAfterSeconds() has nothing for no header, zero, a date past, or anything else", () => {
  const now = Date.parse("2026-12-06T10:00:00Z");
  for (const value of [null, "", "0", "-5", "soon", "Sun, 06 Dec 2026 09:00:00 GMT", "5s"]) {
    assert.equal(retryAfterSeconds(value, now), undefined, String(value));
  }
});
