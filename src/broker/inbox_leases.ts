/**
 * Leases on inboxes for readers that show messages before they take them (`interop poll`: peek, print, take up to
 * what was printed). Two such readers of one inbox would both print what neither had taken yet; a lease lets one
 * at a time read, and holds off `/poll` takes meanwhile. Kept by each broker in memory: a lease expires by itself,
 * so a reader that dies holding one delays the others by its length at most.
 */
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";

/** The answer's header that names the lease a peek was granted, which its take passes back as `lease_id=`. */
export const LEASE_HEADER = "interop-lease";

/** The longest lease a reader may ask for, in seconds. */
export const MAX_LEASE_SECONDS = 300;

interface Lease {
  id: string;
  expiresAt: number;
}

export class InboxLeases {
  #leases = new Map<AgentName, Lease>();
  /** Takes in progress per agent, and what waits for them to end (a lease granted meanwhile). */
  #takes = new Map<AgentName, { count: number; ended: PromiseWithResolvers<void> }>();
  #now: () => number;

  constructor(now: () => number) {
    this.#now = now;
  }

  /**
   * Grants `agent`'s inbox to the caller for `seconds`, once the takes in progress have ended: what the caller reads
   * next no one else takes. Refused (409 `inbox_leased`) while a lease is held. Resolves with the lease's id.
   */
  async acquire(agent: AgentName, seconds: number): Promise<string> {
    const held = this.#live(agent);
    if (held !== undefined) throw this.#leased(agent, held);
    const lease = { id: crypto.randomUUID(), expiresAt: this.#now() + seconds * 1000 };
    this.#leases.set(agent, lease);
    await this.#takes.get(agent)?.ended.promise;
    return lease.id;
  }

  /**
   * Runs a take of `agent`'s messages: refused while another caller holds a lease on the inbox, and it ends the
   * caller's own lease (`id`) once it is done, which lets the next reader in.
   */
  async take<T>(agent: AgentName, id: string | undefined, work: () => Promise<T>): Promise<T> {
    const held = this.#live(agent);
    if (held !== undefined && held.id !== id) throw this.#leased(agent, held);
    const takes = this.#takes.get(agent) ?? { count: 0, ended: Promise.withResolvers<void>() };
    this.#takes.set(agent, takes);
    takes.count++;
    try {
      return await work();
    } finally {
      if (--takes.count === 0) {
        this.#takes.delete(agent);
        takes.ended.resolve();
      }
      if (id !== undefined) this.end(agent, id);
    }
  }

  /** Ends the lease `id` on `agent`'s inbox, if it is the one held. */
  end(agent: AgentName, id: string): void {
    if (this.#leases.get(agent)?.id === id) this.#leases.delete(agent);
  }

  /** The lease on `agent`'s inbox that has not expired, if any (an expired one is forgotten here). */
  #live(agent: AgentName): Lease | undefined {
    const lease = this.#leases.get(agent);
    if (lease === undefined || lease.expiresAt > this.#now()) return lease;
    this.#leases.delete(agent);
    return undefined;
  }

  #leased(agent: AgentName, lease: Lease): InteropError {
    const seconds = Math.max(1, Math.ceil((lease.expiresAt - this.#now()) / 1000));
    return new InteropError(
      "inbox_leased",
      `Another reader is polling ${agent}'s inbox (it holds it for ${seconds} s more at most); try again then`,
      { retryAfter: seconds },
    );
  }
}
