/** Runs a test's cleanup steps so that one that throws does not leave the others undone. */

/**
 * Runs every step in order, each after the one before it ended, even after one threw; then throws the first error
 * (all of them, in an AggregateError, when several threw). A test's after-hooks stop at the first that throws (Node
 * 24 and Deno 2.9 run none after it), and a broker's `cleanup()` throws by design when its log holds a token or a
 * message body: a process or server stopped after it, in the same hook or a later one, would keep running, and on
 * Node the test file would then never end.
 */
export async function cleanUpAll(...steps: ((() => unknown) | undefined)[]): Promise<void> {
  const errors: unknown[] = [];
  for (const step of steps) {
    try {
      await step?.();
    } catch (error) {
      errors.push(error);
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, `${errors.length} cleanup steps failed`);
}

/**
 * A test's stops, run by one after-hook registered now, before anything starts: add each stop right after what it
 * stops has started. They run newest first (a client before its broker, a broker before its data dir), each even
 * after one threw, as `cleanUpAll` runs them. Separate hooks would not: a broker's `cleanup()` that throws (its
 * log held a token) would leave every process, server or client stopped by a later hook running.
 */
export function testStops(t: { after(fn: () => Promise<void>): void }): (stop: () => unknown) => void {
  const stops: Array<() => unknown> = [];
  t.after(() => cleanUpAll(...stops.toReversed()));
  return (stop) => void stops.push(stop);
}
