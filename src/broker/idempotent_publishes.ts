/** Publishes with an Idempotency-Key: a retry returns the first attempt's messages instead of storing them again. */
import type { AgentName } from "../message.ts";
import type { MessageStore } from "../store/store.ts";
import type { Published } from "./broker.ts";

export class IdempotentPublishes {
  #store: MessageStore;
  /** Attempts still committing, by sender and key. */
  #inFlight = new Map<string, Promise<Published>>();

  constructor(store: MessageStore) {
    this.#store = store;
  }

  /**
   * Runs `publish` once per sender and key: a retry while the first attempt is still committing shares its
   * result, a later one finds the stored messages (the key is stored with them, in the same transaction).
   */
  async once(from: AgentName, key: string, publish: () => Promise<Published>): Promise<Published> {
    const flightKey = `${from}\n${key}`;
    const inFlight = this.#inFlight.get(flightKey);
    if (inFlight) return await inFlight;
    const attempt = (async () => {
      const earlier = await this.#store.findByKey(from, key);
      // The first attempt's refusals are not kept: a retry reports only what was stored.
      return earlier.length > 0 ? { envelopes: earlier, refused: [] } : await publish();
    })();
    this.#inFlight.set(flightKey, attempt);
    try {
      return await attempt;
    } finally {
      this.#inFlight.delete(flightKey);
    }
  }
}
