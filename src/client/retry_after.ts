/** A server's `Retry-After`, read as the seconds to wait before asking again. */

/**
 * The longest wait a `Retry-After` is taken for: a receiver that says a day would hold an inbox behind one message
 * for a day, and a timer past 2^31 ms fires at once (Node's TimeoutOverflowWarning) instead.
 */
export const RETRY_AFTER_MAX_S = 300;

/**
 * The seconds a `Retry-After` value asks for (RFC 9110: delay-seconds, or an HTTP-date), at most RETRY_AFTER_MAX_S;
 * undefined for none, a malformed value, zero, or a date already past.
 */
export function retryAfterSeconds(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  // Digits first: Date.parse("5") is a date (May 2001).
  const seconds = /^\d+(\.\d+)?$/.test(text) ? Number(text) : (Date.parse(text) - now) / 1000;
  return seconds > 0 ? Math.min(seconds, RETRY_AFTER_MAX_S) : undefined;
}
