/** Reconnect delays: exponential, capped, with jitter so many clients do not return in step. */

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 500, maxMs: 30_000 };

/**
 * The delay before retry number `attempt` (0-based): half the capped exponential step plus a random half.
 *
 * @example
 * ```ts
 * backoffDelay(0, { initialMs: 500, maxMs: 30_000 }); // 250-500
 * backoffDelay(10, { initialMs: 500, maxMs: 30_000 }); // 15000-30000
 * ```
 */
export function backoffDelay(attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  const step = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + random() * (step / 2));
}
