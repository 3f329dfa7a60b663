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

/** Adds a stop to a test's stops. */
export type AddStop = (stop: () => unknown) => void;

/** The stops of each test that asked, by its context: one hook a test, whoever adds to it. */
const stopsByTest = new WeakMap<object, AddStop>();

/**
 * A test's stops, run by one after-hook registered at the test's first call, before anything starts: add each stop
 * right after what it stops has started. Every call for the same test adds to that one hook, so the helpers that
 * start things (brokerPool, startPostgres, twoBrokersOn) and the test itself share it. They run newest first (a
 * client before its broker, a broker before its PostgreSQL or its data dir), each even after one threw, as
 * `cleanUpAll` runs them. Separate hooks would not: Node 24 and Deno 2.9 run a test's after-hooks in the order they
 * were added and none after one that throws, so a broker's `cleanup()` that throws (its log held a token), or a
 * PostgreSQL stop that timed out, would leave every process, server or client stopped by a later hook running.
 */
export function testStops(t: { after(fn: () => Promise<void>): void }): AddStop {
  let add = stopsByTest.get(t);
  if (add === undefined) {
    const stops: Array<() => unknown> = [];
    t.after(() => cleanUpAll(...stops.toReversed()));
    add = (stop) => void stops.push(stop);
    stopsByTest.set(t, add);
  }
  return add;
}
