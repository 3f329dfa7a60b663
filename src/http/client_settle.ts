/**
 * The one rule for a take made for a client that may hang up with its request: it waits until the close could be
 * seen. A client that writes its request and closes in the same tick is usually seen closing one read later, after
 * a take made at once has already taken its message for a dead socket (red26a F9: 150 of 150 lost).
 */
import { READING_PAUSED } from "../runtime/types.ts";

/**
 * How long after its request arrived a take waits to see the client close. Measured on a 2-core machine at load ~4
 * (500 clients closing with their /poll or /wait request, per runtime): the close was seen within 1 ms for 95 %
 * (Node) and 92 % (Deno), within 5 ms for 99 %, the slowest after 11 ms (Node) and 7 ms (Deno). 20 ms is that
 * tail with room; a client that closes later than this after its request is the race HTTP cannot close.
 */
export const SETTLE_MS = 20;

/**
 * What a take awaits before it is made: undefined once the request has settled (a long poll that already waited
 * pays nothing), else a promise that resolves when it has or `gone` aborts (then the take takes nothing: the
 * message stays in the inbox).
 */
export type Settled = () => Promise<void> | undefined;

/**
 * Starts the clock of a request that arrived now (call it where the route starts). It has settled once `SETTLE_MS`
 * have passed and the runtime has read its sockets after that: time alone is not enough, as a broker busy for
 * longer (code compiled on first use, a loaded machine) runs the take before the close it has not read yet.
 */
export function settling(gone: AbortSignal): Settled {
  let settled = false;
  const clock = new Promise<void>((resolve) => {
    // On Node, setImmediate runs after the I/O phase that follows the timer; Deno: without it, a broker busy for
    // more than SETTLE_MS after its first requests took them for clients that had closed (tests/e2e/abandoned_waits).
    setTimeout(() =>
      setImmediate(() => {
        settled = true;
        resolve();
      }), SETTLE_MS);
  });
  return () => {
    if (settled || gone.aborted) return undefined;
    return new Promise((resolve) => {
      const done = () => {
        gone.removeEventListener("abort", done);
        resolve();
      };
      void clock.then(done);
      gone.addEventListener("abort", done, { once: true });
    });
  };
}

/**
 * `gone` without its `READING_PAUSED` aborts, for a take answered at once (a poll): a client that pipelined past
 * what is read still reads that answer, and a poll that waited out the settle clock while the broker stopped
 * reading its connection would otherwise answer `[]` with messages pending.
 */
export function leaving(gone: AbortSignal): AbortSignal {
  if (gone.aborted) return gone.reason === READING_PAUSED ? new AbortController().signal : gone;
  const left = new AbortController();
  gone.addEventListener("abort", () => gone.reason === READING_PAUSED || left.abort(gone.reason), { once: true });
  return left.signal;
}

/** Waits, if the request arrived too recently, to see whether its client closed with it. */
export async function untilSettled(settled: Settled | undefined): Promise<void> {
  const wait = settled?.();
  if (wait !== undefined) await wait;
}
