/**
 * Inbox leases kept by a store other brokers share (SharedInboxes): a reader's lease holds on every broker of the
 * store, and the store's take checks and ends it in the transaction that takes, so no broker's take slips between.
 */
import { isStorageUnavailable } from "../errors.ts";
import type { AgentName } from "../message.ts";
import { sleep } from "../sleep.ts";
import { inboxLeased, type SharedInboxes } from "../store/store.ts";
import { type Leases, MAX_LEASE_SECONDS } from "./inbox_leases.ts";
import { tryUntilLanded } from "./store_retry.ts";

/**
 * How often a long poll waiting for another reader's lease asks the store again, in ms: the lease may end by a take
 * on another broker, which tells no one.
 */
const LEASE_RECHECK_MS = 200;
/** How long an end of a lease that met an outage waits before it tries again, in ms, doubling up to the max. */
const END_RETRY = { firstMs: 250, maxMs: 5000 };

export class StoreLeases implements Leases {
  #shared: SharedInboxes;
  #inboxFor: (agent: AgentName) => Promise<unknown>;
  #stopping: AbortSignal;

  /**
   * `inboxFor` makes sure the agent's inbox exists (the lease lives on it), as the peek after the lease would.
   * `stopping` aborts when the broker stops: an end that met an outage is not tried again after that.
   */
  constructor(shared: SharedInboxes, inboxFor: (agent: AgentName) => Promise<unknown>, stopping: AbortSignal) {
    this.#shared = shared;
    this.#inboxFor = inboxFor;
    this.#stopping = stopping;
  }

  async acquire(agent: AgentName, seconds: number, renewing?: string): Promise<string> {
    await this.#inboxFor(agent);
    const granted = crypto.randomUUID();
    try {
      return await this.#shared.lease(agent, seconds, renewing, granted);
    } catch (error) {
      // An outage's 503 may be a grant that committed with its answer lost (the connection broke in between): its
      // lease would hold the inbox for its length though no client knows its id. Ended once PostgreSQL is back (see
      // `end`), by that id alone, which only a grant of this call can have: a lease renewed keeps its holder's id,
      // and another reader's lease is not touched.
      if (isStorageUnavailable(error)) this.end(agent, granted);
      throw error;
    }
  }

  /** `lost` is not told here: the store's take judges the lease in its transaction (`PollOptions.leaseLost`). */
  async take<T>(agent: AgentName, id: string | undefined, work: (lease: string | undefined) => Promise<T>, _lost?: () => void): Promise<T> {
    try {
      return await work(id);
    } catch (error) {
      // A take that failed still lets the next reader in (one that was refused had no lease of its own to end): one
      // that met an outage once PostgreSQL is back (see `end`). A client that takes again under it takes what is
      // left, told its lease was lost; one that does not (a cancelled `interop mcp` call) holds no one off.
      if (id !== undefined) this.end(agent, id);
      throw error;
    }
  }

  /**
   * Asks the store first: its take checks the lease too, but after `work` may have written (a park's letter). A lease
   * granted between the two is that take's refusal, as before.
   */
  async unleased<T>(agent: AgentName, work: () => Promise<T>): Promise<T> {
    const left = await this.#shared.leaseLeft(agent);
    if (left !== undefined) throw inboxLeased(agent, Math.ceil(left / 1000));
    return await work();
  }

  /**
   * Ends lease `id`. One that meets an outage (PostgreSQL down) is ended once it is back: given up, it held the
   * inbox for its whole length (up to 300 s) after a take under it, or the leased wait it was granted for (its
   * client never told its id), failed with 503: every other reader's take refused (409), every wait held off.
   */
  end(agent: AgentName, id: string): void {
    // No longer than the lease could last (by then it ended by itself), nor than the broker runs (its store closed
    // fails every try as an outage would, and the retries' timers would hold a process that stopped). Any other
    // failure is not tried again: the lease was not this broker's to end (another took over, the inbox was removed).
    const expired = AbortSignal.any([AbortSignal.timeout(MAX_LEASE_SECONDS * 1000), this.#stopping]);
    void tryUntilLanded(() => this.#shared.endLease(agent, id), isStorageUnavailable, expired, END_RETRY);
  }

  forget(_agent: AgentName): void {
    // The lease lived on the inbox's row, deleted with it.
  }

  async whenFree(agent: AgentName, until: AbortSignal): Promise<void> {
    while (!until.aborted) {
      const left = await this.#shared.leaseLeft(agent);
      if (left === undefined) return;
      await sleep(Math.min(left, LEASE_RECHECK_MS), until);
    }
  }
}
