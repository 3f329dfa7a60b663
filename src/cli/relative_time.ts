/** Durations for people: the two largest units, as `interop status` prints uptimes and last-seen times. */

const UNITS: Array<[string, number]> = [["d", 86_400], ["h", 3_600], ["m", 60], ["s", 1]];

/**
 * `seconds` as its two largest non-zero units, rounded down.
 *
 * @example
 * ```ts
 * formatSpan(4); // "4 s"
 * formatSpan(3 * 3600 + 2 * 60 + 9); // "3 h 2 m"
 * ```
 */
export function formatSpan(seconds: number): string {
  let rest = Math.max(0, Math.floor(seconds));
  const parts: string[] = [];
  for (const [unit, size] of UNITS) {
    if (parts.length === 2) break;
    const count = Math.floor(rest / size);
    rest -= count * size;
    // Once a unit is printed the next one is too, so "1 h 0 m" is never read as "1 h" rounded.
    if (count > 0 || parts.length > 0) parts.push(`${count} ${unit}`);
  }
  return parts.length === 0 ? "0 s" : parts.join(" ");
}

/**
 * An ISO time as "4 s ago" against `now` (ms), or "never". `now` should be the broker's clock, not this
 * machine's: a client on another host with a skewed clock would otherwise print times in the future.
 */
export function formatAgo(iso: string | null, now: number): string {
  if (iso === null) return "never";
  return `${formatSpan((now - Date.parse(iso)) / 1000)} ago`;
}
