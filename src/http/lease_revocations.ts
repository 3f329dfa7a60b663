/**
 * Ends a lease on an inbox once the token it was granted to is revoked, as the token's streams and waits end: a
 * revoked token's lease held the agent's inbox from its new token (409 `inbox_leased`, waits holding off) for as long
 * as the lease had left, up to 300 s.
 */
import type { Authenticator, Caller } from "../auth/authenticator.ts";
import type { Leases } from "../broker/inbox_leases.ts";
import type { AgentName } from "../message.ts";

export class LeaseRevocations {
  #auth: Authenticator;
  #leases: Leases;
  /** What stops watching each lease, by its id: one watch a lease, however often it is renewed. */
  #watches = new Map<string, () => void>();

  constructor(auth: Authenticator, leases: Leases) {
    this.#auth = auth;
    this.#leases = leases;
  }

  /** Ends `agent`'s lease `lease` if `caller`'s token is revoked within the `seconds` it was granted (or renewed) for. */
  watch(caller: Caller, agent: AgentName, lease: string, seconds: number): void {
    this.forget(lease);
    const stop = () => {
      clearTimeout(timer);
      unwatch();
      if (this.#watches.get(lease) === stop) this.#watches.delete(lease);
    };
    const unwatch = this.#auth.watchRevocation(caller, () => {
      stop();
      this.#leases.end(agent, lease);
    });
    // Past its seconds the lease has expired, unless renewed (which watches it anew).
    const timer = setTimeout(stop, seconds * 1000);
    (timer as { unref?: () => void }).unref?.();
    this.#watches.set(lease, stop);
  }

  /** Stops watching `lease`: its holder's take ended it. */
  forget(lease: string): void {
    this.#watches.get(lease)?.();
  }
}
