/**
 * Ends what a token was granted for a time once the token is revoked, as its streams and waits end: a revoked token's
 * inbox lease held the agent's inbox from its new token (409 `inbox_leased`, waits holding off) for as long as the
 * lease had left, up to 300 s, and its `hold_reply` hid the reply, and all after it, from the new token's readers for
 * up to the hold's hour.
 */
import type { Authenticator, Caller } from "../auth/authenticator.ts";

export class GrantRevocations {
  #auth: Authenticator;
  /** What stops watching each grant, by its key: one watch a grant, however often it is renewed. */
  #watches = new Map<string, () => void>();

  constructor(auth: Authenticator) {
    this.#auth = auth;
  }

  /**
   * Calls `end` if `caller`'s token is revoked within the `ms` the grant `key` was made (or renewed) for; watching it
   * again replaces the watch.
   */
  watch(caller: Caller, key: string, ms: number, end: () => void): void {
    this.forget(key);
    const stop = () => {
      clearTimeout(timer);
      unwatch();
      if (this.#watches.get(key) === stop) this.#watches.delete(key);
    };
    const unwatch = this.#auth.watchRevocation(caller, () => {
      stop();
      end();
    });
    // Past its time the grant has ended by itself, unless renewed (which watches it anew).
    const timer = setTimeout(stop, ms);
    (timer as { unref?: () => void }).unref?.();
    this.#watches.set(key, stop);
  }

  /** Stops watching grant `key`: its holder ended it. */
  forget(key: string): void {
    this.#watches.get(key)?.();
  }
}
