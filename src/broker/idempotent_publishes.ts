/** Publishes with an Idempotency-Key: a retry returns the first attempt's messages instead of storing them again. */
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";
import type { MessageStore } from "../store/store.ts";
import type { Published } from "./publishes.ts";

export class IdempotentPublishes {
  #store: MessageStore;
  /** Attempts still committing, by sender and key. */
  #inFlight = new Map<string, Promise<Published>>();

  constructor(store: MessageStore) {
    this.#store = store;
  }

  /**
   * Runs `publish` once per sender and key: a retry while the first attempt is still committing shares its
   * result, a later one finds the stored messages (the key is stored with them, in the same transaction). On a
   * store other brokers share, a retry there may commit first: the store refuses this one with `duplicate_key`,
   * and it finds that one's messages.
   */
  async once(from: AgentName, key: string, publish: () => Promise<Published>): Promise<Published> {
    const flightKey = `${from}\n${key}`;
    const inFlight = this.#inFlight.get(flightKey);
    if (inFlight) return await inFlight;
    const attempt = (async () => {
      const earlier = await this.#store.findByKey(from, key);
      // The first attempt's refusals are not kept: a retry reports only what was stored.
      if (earlier.length > 0) return { envelopes: earlier, refused: [] };
      try {
        return await publish();
      } catch (error) {
        if (!(error instanceof InteropError) || error.code !== "duplicate_key") throw error;
        return { envelopes: await this.#store.findByKey(from, key), refused: [] };
      }
    })();
    this.#inFlight.set(flightKey, attempt);
    try {
      return await attempt;
    } finally {
      this.#inFlight.delete(flightKey);
    }
  }
}
