/**
 * Leases on inboxes for readers that show messages before they take them (`interop poll`: peek, print, take up to
 * what was printed). Two such readers of one inbox would both print what neither had taken yet; a lease lets one
 * at a time read, and holds off `/poll` takes meanwhile. A lease expires by itself, so a reader that dies holding
 * one delays the others by its length at most. A broker that is its store's only one keeps them in memory (here);
 * on a store other brokers share, the store keeps them (StoreLeases), so they hold on every broker.
 */
import type { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";
import { inboxLeased } from "../store/store.ts";

/** The answer's header that names the lease a peek was granted, which its take passes back as `lease_id=`. */
export const LEASE_HEADER = "interop-lease";

/** The take's answer header that says its `lease_id` was no longer held (`Leases.take`'s `lost`). */
export const LEASE_LOST_HEADER = "interop-lease-lost";

/** The longest lease a reader may ask for, in seconds. */
export const MAX_LEASE_SECONDS = 300;

/** Leases on inboxes, wherever they are kept: what the routes ask of them. */
export interface Leases {
  /**
   * Grants `agent`'s inbox to the caller for `seconds`, once the takes in progress have ended: what the caller reads
   * next no one else takes. Refused (409 `inbox_leased`) while another lease is held; `renewing` the caller's own
   * (still held), it is extended from now. Resolves with the lease's id.
   */
  acquire(agent: AgentName, seconds: number, renewing?: string): Promise<string>;
  /**
   * Runs a take of `agent`'s messages (`work`): refused while another caller holds a lease on the inbox, and it ends
   * the caller's own lease (`id`) once it is done, which lets the next reader in (a take that failed leaves it for
   * the caller's next try). `work` is handed the lease for the store's take to check and end, or undefined when
   * that was done here. A take whose `id` is not the lease held (it expired, or a broker of its own restarted) still
   * runs, taking what is left, and `lost` is told: what the caller was shown may have been taken by another reader
   * meanwhile. A shared store's take judges that in its
   * transaction, and tells it through the take's `PollOptions.leaseLost`.
   */
  take<T>(agent: AgentName, id: string | undefined, work: (lease: string | undefined) => Promise<T>, lost?: () => void): Promise<T>;
  /**
   * Runs `work`, a write that takes a message it does not read (a dead letter's park), unless another caller holds a
   * lease on `agent`'s inbox: refused (409 `inbox_leased`) before it does anything, as that reader may have shown
   * the message, and takes it with its page.
   */
  unleased<T>(agent: AgentName, work: () => Promise<T>): Promise<T>;
  /** Ends the lease `id` on `agent`'s inbox, if it is the one held (one that cannot be ended expires). */
  end(agent: AgentName, id: string): void;
  /** Ends any lease on `agent`'s inbox: the operator removed it, and an inbox created again starts free. */
  forget(agent: AgentName): void;
  /**
   * Resolves once no lease is held on `agent`'s inbox (ended, or expired), or `until` aborts: a long poll waits so
   * rather than take what a leased reader may have shown already.
   */
  whenFree(agent: AgentName, until: AbortSignal): Promise<void>;
}

interface Lease {
  id: string;
  expiresAt: number;
}

/** The leases of a broker that is its store's only one: in its memory. */
export class InboxLeases implements Leases {
  #leases = new Map<AgentName, Lease>();
  /** Takes in progress per agent, and what waits for them to end (a lease granted meanwhile). */
  #takes = new Map<AgentName, { count: number; ended: PromiseWithResolvers<void> }>();
  /** What waits for a lease to end (`whenFree`), told when it does. */
  #freed = new Map<AgentName, Array<() => void>>();
  /** A clock in ms that the wall clock's steps do not move: a lease lasts its seconds, whatever `date -s` does. */
  #now: () => number;

  constructor(monotonic: () => number = () => performance.now()) {
    this.#now = monotonic;
  }

  async acquire(agent: AgentName, seconds: number, renewing?: string): Promise<string> {
    const held = this.#live(agent);
    if (held !== undefined && held.id !== renewing) throw this.#leased(agent, held);
    const lease = { id: held?.id ?? crypto.randomUUID(), expiresAt: this.#now() + seconds * 1000 };
    this.#leases.set(agent, lease);
    await this.#takes.get(agent)?.ended.promise;
    return lease.id;
  }

  async take<T>(agent: AgentName, id: string | undefined, work: (lease: undefined) => Promise<T>, lost?: () => void): Promise<T> {
    const held = this.#live(agent);
    if (held !== undefined && held.id !== id) throw this.#leased(agent, held);
    if (id !== undefined && held === undefined) lost?.();
    const takes = this.#takes.get(agent) ?? { count: 0, ended: Promise.withResolvers<void>() };
    this.#takes.set(agent, takes);
    takes.count++;
    let took = false;
    try {
      const taken = await work(undefined);
      took = true;
      return taken;
    } finally {
      if (--takes.count === 0) {
        this.#takes.delete(agent);
        takes.ended.resolve();
      }
      // A take that failed (a full disk, a client gone) leaves the lease to its client's next try, or to its end:
      // ended, the inbox was the next reader's while what it showed was still not taken (red team 54: a second
      // `interop poll` printed the same messages while the first one's take waited for room).
      if (id !== undefined && took) this.end(agent, id);
    }
  }

  /** A take's: checked first, and a lease asked for meanwhile waits for it to end. */
  unleased<T>(agent: AgentName, work: () => Promise<T>): Promise<T> {
    return this.take(agent, undefined, work);
  }

  end(agent: AgentName, id: string): void {
    if (this.#leases.get(agent)?.id === id) this.forget(agent);
  }

  forget(agent: AgentName): void {
    this.#leases.delete(agent);
    for (const free of this.#freed.get(agent) ?? []) free();
    this.#freed.delete(agent);
  }

  /** Whether a lease on `agent`'s inbox is held now (granted, neither ended nor expired). */
  held(agent: AgentName): boolean {
    return this.#live(agent) !== undefined;
  }

  async whenFree(agent: AgentName, until: AbortSignal): Promise<void> {
    for (let lease = this.#live(agent); lease !== undefined && !until.aborted; lease = this.#live(agent)) {
      const { promise, resolve } = Promise.withResolvers<void>();
      const timer = setTimeout(resolve, lease.expiresAt - this.#now());
      const aborted = () => resolve();
      until.addEventListener("abort", aborted, { once: true });
      this.#freed.set(agent, [...(this.#freed.get(agent) ?? []), resolve]);
      await promise;
      clearTimeout(timer);
      until.removeEventListener("abort", aborted);
      const left = this.#freed.get(agent)?.filter((free) => free !== resolve) ?? [];
      if (left.length > 0) this.#freed.set(agent, left);
      else this.#freed.delete(agent);
    }
  }

  /** The lease on `agent`'s inbox that has not expired, if any (an expired one is forgotten here). */
  #live(agent: AgentName): Lease | undefined {
    const lease = this.#leases.get(agent);
    if (lease === undefined || lease.expiresAt > this.#now()) return lease;
    this.#leases.delete(agent);
    return undefined;
  }

  #leased(agent: AgentName, lease: Lease): InteropError {
    return inboxLeased(agent, Math.max(1, Math.ceil((lease.expiresAt - this.#now()) / 1000)));
  }
}
