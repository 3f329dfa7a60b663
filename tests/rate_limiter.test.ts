/** The per-sender token buckets behind --rate-limit. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RateLimiter } from "../src/broker/rate_limiter.ts";

/** A clock that stands still: no bucket refills. */
const still = () => 1_800_000_000_000;

test("RateLimiter.giveBack() returns tokens a refused publish took, never past the burst", () => {
  const limiter = new RateLimiter(1, 2, still);
  limiter.admit("hermes", 2);
  assert.throws(() => limiter.admit("hermes"), { code: "rate_limited" });
  limiter.giveBack("hermes", 1);
  limiter.admit("hermes");
  assert.throws(() => limiter.admit("hermes"), { code: "rate_limited" });
  limiter.giveBack("hermes", 5);
  assert.throws(() => limiter.admit("hermes", 3), { code: "rate_limited", message: /^Batch too big/ });
  limiter.admit("hermes", 2);
  assert.throws(() => limiter.admit("hermes"), { code: "rate_limited", message: /^Too many messages/ });
});

test("RateLimiter drops refilled buckets: 100,000 senders one message each leave a bounded number", () => {
  let now = 1_800_000_000_000;
  const limiter = new RateLimiter(1000, 2000, () => now);
  for (let i = 0; i < 100_000; i++) {
    limiter.admit(`sender-${i}`);
    now += 1;
  }
  assert.ok(limiter.size <= 2048, `${limiter.size} buckets held`);
});

test("RateLimiter keeps a bucket that has not refilled: the sweep never lets a sender past its limit", () => {
  let now = 1_800_000_000_000;
  const limiter = new RateLimiter(1, 2, () => now);
  limiter.admit("hermes", 2);
  for (let i = 0; i < 10_000; i++) limiter.admit(`sender-${i}`);
  assert.throws(() => limiter.admit("hermes"), { code: "rate_limited" });
  now += 2000;
  limiter.admit("hermes", 2);
});

test("RateLimiter refills from where the clock stands after it was set back an hour, taking no tokens for the step", () => {
  let now = 1_800_000_000_000;
  const limiter = new RateLimiter(1, 2, () => now);
  limiter.admit("hermes", 2);
  // An NTP step or `date -s`: the bucket's last look is an hour ahead of the clock (it took an hour's tokens).
  now -= 3_600_000;
  assert.throws(() => limiter.admit("hermes"), { code: "rate_limited", message: /retry in 1 s/ });
  now += 1000;
  limiter.admit("hermes");
});
