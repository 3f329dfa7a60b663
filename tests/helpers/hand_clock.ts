import type { TestContext } from "node:test";

/** A clock a test moves by hand (a broker's `now`): what expires is then what the test says, however loaded the machine. */
export function handClock(): { now: () => number; advance: (ms: number) => void } {
  let time = Date.now();
  return { now: () => time, advance: (ms: number) => void (time += ms) };
}

/**
 * Steps the process's wall clock (`Date.now`) by `ms` (an hour back: -3_600_000) for the rest of test `t`, as an NTP
 * step or `date -s` does; the monotonic clock (`performance.now`, the timers) runs on. A duration measured on the
 * wall clock then lasts that much longer, or shorter.
 */
export function stepWallClock(t: TestContext, ms: number): void {
  const now = Date.now;
  t.after(() => void (Date.now = now));
  Date.now = () => now() + ms;
}

/** `promise`, or a rejection saying what was still awaited if it has not settled within 5 s. */
export function withinSeconds<T>(t: TestContext, promise: Promise<T>, what: string): Promise<T> {
  const late = Promise.withResolvers<never>();
  const timer = setTimeout(() => late.reject(new Error(`${what} after 5 s`)), 5_000);
  t.after(() => clearTimeout(timer));
  return Promise.race([promise, late.promise]);
}
