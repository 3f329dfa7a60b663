/**
 * The PostgreSQL store's calls in flight (its reads and write transactions), each bounded: one that never settles (a
 * server stopped, a partition with no reset, a desynced client) would hold every write of the broker behind it,
 * since they run one at a time, while `/status` said all is well.
 */

/**
 * How long one call may take before the store counts as stuck, in ms. Generous: the longest legitimate calls are a
 * retention sweep (one transaction deleting what was delivered since the last, a minute before; after a broker was
 * down, all it missed: 100,000 messages of 1 KiB took 0.9 s on a loaded 2-core VM), a page read (up to a MiB a
 * message) and a publish waiting for another broker's commit to the same inboxes. A disk 30 times slower still fits.
 * Past it the broker answers 503 (which clients retry) and says so in `/status`, rather than hang.
 */
export const CALL_BOUND_MS = 30_000;

export class BoundedCalls {
  readonly boundMs: number;
  /** When each call in flight started (`performance.now()`). */
  #started = new Set<{ at: number }>();
  #stuck: (what: string) => Error;

  /** `stuck` is called once per call past the bound, with what it was doing; the call rejects with what it returns. */
  constructor(boundMs: number, stuck: (what: string) => Error) {
    this.boundMs = boundMs;
    this.#stuck = stuck;
  }

  async run<T>(what: string, call: () => Promise<T>): Promise<T> {
    const started = { at: performance.now() };
    this.#started.add(started);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(this.#stuck(what)), this.boundMs)));
    const running = call();
    try {
      return await Promise.race([running, late]);
    } finally {
      clearTimeout(timer);
      this.#started.delete(started);
      // Given up at the bound: what it ends with later has no one to tell.
      running.catch(() => {});
    }
  }

  /** How long the oldest call in flight has run, in ms; 0 when none is. */
  oldestMs(): number {
    let oldest = Infinity;
    for (const started of this.#started) oldest = Math.min(oldest, started.at);
    return oldest === Infinity ? 0 : performance.now() - oldest;
  }
}
