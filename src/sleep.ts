/** An abortable wait, for the broker and the clients alike (neither may import the other's modules). */

/** Waits `ms`, or less if `signal` aborts first; never rejects. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/**
 * Whole milliseconds left until `deadline` (a `performance.now()` time: a wall clock set back would stretch it), 0
 * once it has passed: what timers and `AbortSignal.timeout` (which refuses a fraction) take.
 */
export function msUntil(deadline: number): number {
  return Math.max(0, Math.ceil(deadline - performance.now()));
}
