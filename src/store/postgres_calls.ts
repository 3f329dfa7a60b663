/**
 * The PostgreSQL store's calls in flight (its reads and write transactions), each bounded: one that never settles (a
 * server stopped, a partition with no reset, a desynced client) would hold every write of the broker behind it,
 * since they run one at a time, while `/status` said all is well.
 */

/**
 * How long one call may run before the server is asked whether it is still working on it, in ms (and again each
 * time as long after): one it is not working on is stuck. Past that the broker answers 503 (which clients retry) and
 * says so in `/status`, rather than hang. Generous, so that a slow disk's ordinary calls (a page read of up to a MiB
 * a message, a publish waiting for another broker's commit to the same inboxes) never cost the question.
 */
export const CALL_BOUND_MS = 30_000;

/** Whether the server is working on a call: its backend (`pid`, when known) or any of the store's runs a statement. */
export type ServerWorking = (pid: number | undefined) => Promise<boolean>;

export class BoundedCalls {
  readonly boundMs: number;
  /** When each call in flight started (`performance.now()`). */
  #started = new Set<{ at: number }>();
  #stuck: (what: string) => Error;
  #working: ServerWorking;

  /**
   * `stuck` is called once per call past the bound that the server is not working on, with what it was doing; the
   * call rejects with what it returns. `working` is asked at each bound.
   */
  constructor(boundMs: number, stuck: (what: string) => Error, working: ServerWorking) {
    this.boundMs = boundMs;
    this.#stuck = stuck;
    this.#working = working;
  }

  /**
   * Runs `call`; past each bound, the call is given up unless the server says it is still working on it. A call is
   * stuck when the server has nothing left to do for it, not when it is long: a retention sweep after a long
   * downtime (100,000 messages took 0.9 s; millions take minutes) or a wait for another broker's lock runs on, where
   * cutting it would roll it back to be run and cut again at the next sweep, an outage each time. `backend` is the
   * call's connection's backend pid once it is known (a write transaction's fence says it).
   */
  async run<T>(what: string, call: () => Promise<T>, backend: () => number | undefined = () => undefined): Promise<T> {
    const started = { at: performance.now() };
    this.#started.add(started);
    let settled = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      const look = () => {
        timer = setTimeout(async () => {
          // A server that cannot be asked is not working on it: a partition, a stopped server.
          const working = await this.#working(backend()).catch(() => false);
          if (settled) return;
          if (working) return look();
          reject(this.#stuck(what));
        }, this.boundMs);
      };
      look();
    });
    const running = call();
    try {
      return await Promise.race([running, late]);
    } finally {
      settled = true;
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
