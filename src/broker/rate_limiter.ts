/** Per-sender publish rate limits: a token bucket each, so bursts pass and a runaway sender is slowed, never dropped. */
import { InteropError } from "../errors.ts";

/** Buckets held before the first sweep: below it, sweeping costs more than the memory it frees. */
const FIRST_SWEEP = 1024;

export class RateLimiter {
  #perSecond: number;
  #burst: number;
  #buckets = new Map<string, { tokens: number; at: number }>();
  /** How many buckets start the next sweep (twice those left by the last): each admit pays O(1) on average. */
  #sweepAt = FIRST_SWEEP;
  #now: () => number;

  /** `perSecond` 0 turns limiting off. */
  constructor(perSecond: number, burst: number, now: () => number = Date.now) {
    this.#perSecond = perSecond;
    this.#burst = Math.max(burst, 1);
    this.#now = now;
  }

  /** Lets `count` messages from `sender` through, or refuses them all with `rate_limited` and when to retry. */
  admit(sender: string, count = 1): void {
    if (this.#perSecond > 0 && count > this.#burst) {
      throw new InteropError(
        "rate_limited",
        `Batch too big for the rate limit: ${count} messages from ${sender} (each recipient's copy counts), at most ${this.#burst} at once (serve --rate-limit ${this.#perSecond}); send smaller batches or to fewer agents`,
      );
    }
    const retryAfter = this.#take(sender, count);
    if (retryAfter === undefined) return;
    throw new InteropError(
      "rate_limited",
      `Too many messages from ${sender}: the limit is ${this.#perSecond} per second (serve --rate-limit); retry in ${retryAfter} s`,
      { retryAfter },
    );
  }

  /** Gives back `count` tokens `admit` took for `sender`: the messages they were for were not sent after all. */
  giveBack(sender: string, count: number): void {
    const bucket = this.#buckets.get(sender);
    if (bucket !== undefined) bucket.tokens = Math.min(this.#burst, bucket.tokens + count);
  }

  /** Takes `count` tokens for `sender`; returns undefined if allowed, else the seconds to wait before retrying. */
  #take(sender: string, count: number): number | undefined {
    if (this.#perSecond === 0) return undefined;
    const now = this.#now();
    // Before this sender's bucket is taken from: the sweep would drop it while still full.
    if (this.#buckets.size >= this.#sweepAt) this.#sweep(now);
    const bucket = this.#buckets.get(sender) ?? { tokens: this.#burst, at: now };
    // Never less for time gone backwards: the clock is the wall's (a test's), and a step back of an hour (NTP, `date
    // -s`) took an hour's tokens, refusing the sender for that long.
    bucket.tokens = Math.min(this.#burst, bucket.tokens + (Math.max(0, now - bucket.at) / 1000) * this.#perSecond);
    bucket.at = now;
    this.#buckets.set(sender, bucket);
    if (bucket.tokens >= count) {
      bucket.tokens -= count;
      return undefined;
    }
    return Math.max(1, Math.ceil((count - bucket.tokens) / this.#perSecond));
  }

  /** How many buckets are held: those of senders that sent within the time a bucket takes to refill. */
  get size(): number {
    return this.#buckets.size;
  }

  /**
   * Drops the buckets that have refilled: a full bucket is the same as none. Without tokens every `from=` name is
   * a sender, so without this each new name would hold a bucket for as long as the broker runs.
   */
  #sweep(now: number): void {
    for (const [sender, bucket] of this.#buckets) {
      if (bucket.tokens + ((now - bucket.at) / 1000) * this.#perSecond >= this.#burst) this.#buckets.delete(sender);
    }
    this.#sweepAt = Math.max(FIRST_SWEEP, this.#buckets.size * 2);
  }
}
