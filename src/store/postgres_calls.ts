/**
 * The PostgreSQL store's calls in flight (its reads and write transactions), each bounded: one that never settles (a
 * server stopped, a partition with no reset, a desynced client) would hold every write of the broker behind it,
 * since they run one at a time, while `/status` said all is well.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Registration } from "./postgres_registry.ts";
import type { StoreSockets } from "./postgres_sockets.ts";

/**
 * How long one call may run before the server is asked whether it is still working on it, in ms (and again each
 * time as long after): one it is not working on is stuck. Past that the broker answers 503 (which clients retry) and
 * says so in `/status`, rather than hang. Generous, so that a slow disk's ordinary calls (a page read of up to a MiB
 * a message, a publish waiting for another broker's commit to the same inboxes) never cost the question.
 */
export const CALL_BOUND_MS = 30_000;

/** How long the check that the pool answers again waits between tries, in ms (the registry's retry does the same). */
const CHECK_GAP_MS = 250;

/** What a stuck call needs of the store. */
export interface StuckCallDeps {
  /** The outage, the question whether the server still works on a call, and the outage's wait for the pool. */
  registry: Pick<Registration, "fail" | "working" | "awaiting">;
  /** The pool's sockets, cut when a call is stuck. */
  sockets: StoreSockets;
  /** A statement on the pool: the check that it answers again. */
  check(): Promise<unknown>;
}

export class BoundedCalls {
  readonly boundMs: number;
  /** When each call in flight started (`performance.now()`). */
  #started = new Set<{ at: number }>();
  #deps: StuckCallDeps;
  /** A call got no answer: the outage lasts until the pool answers (`#untilAnswering`). */
  #answering = false;
  #closing = false;

  constructor(boundMs: number, deps: StuckCallDeps) {
    this.boundMs = boundMs;
    this.#deps = deps;
  }

  /** The store is closing: the check that the pool answers stops. */
  close(): void {
    this.#closing = true;
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
          const working = await this.#deps.registry.working(backend(), this.boundMs).catch(() => false);
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

  /**
   * A call got no answer within the bound: the store is stuck, which counts as an outage (calls fail fast, `/status`
   * says so), ended once the pool answers a check and the registry's retry passes. Every connection is cut, not the
   * stuck one alone (the client does not say which it is): what the others had in flight fails as in any outage, and
   * the pool connects again afterwards.
   */
  #stuck(what: string): Error {
    const { registry, sockets } = this.#deps;
    const outage = registry.fail(new Error(`no answer to "${what}" within ${this.boundMs / 1000} s; its connections were cut`));
    sockets.destroyAll();
    if (!this.#answering) {
      this.#answering = true;
      void registry.awaiting(this.#untilAnswering()).finally(() => (this.#answering = false));
    }
    return outage;
  }

  /**
   * Asks the pool until it answers (or the store closes): the registry's connection answering says nothing of the
   * pool's, and an outage ended while the pool is stuck would hold each call for the bound again. A check past the
   * bound cuts the connections again (`#stuck`).
   */
  async #untilAnswering(): Promise<void> {
    while (!this.#closing) {
      try {
        await this.run("check that the server answers", this.#deps.check);
        return;
      } catch {
        // Not yet.
      }
      await sleep(CHECK_GAP_MS);
    }
  }

  /** How long the oldest call in flight has run, in ms; 0 when none is. */
  oldestMs(): number {
    let oldest = Infinity;
    for (const started of this.#started) oldest = Math.min(oldest, started.at);
    return oldest === Infinity ? 0 : performance.now() - oldest;
  }
}
