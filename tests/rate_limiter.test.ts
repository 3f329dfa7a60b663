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
