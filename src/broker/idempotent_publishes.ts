/** Publishes with an Idempotency-Key: a retry returns the first attempt's messages instead of storing them again. */
import { InteropError } from "../errors.ts";
import type { AgentName } from "../message.ts";
import type { MessageStore } from "../store/store.ts";
import type { Published, RefusedRecipient } from "./publishes.ts";

/**
 * How many keyed broadcasts' refusals are remembered (in memory: at most a few MB). A retry of an older one, one
 * from before a restart or one first published on another broker sharing the store says its refusals are unknown.
 */
const REMEMBERED_BROADCASTS = 10_000;

export class IdempotentPublishes {
  #store: MessageStore;
  /** Attempts still committing, by sender and key. */
  #inFlight = new Map<string, Promise<Published>>();
  /** Whom each recent keyed broadcast left out (full inboxes), by sender and key, oldest first. */
  #refusals = new Map<string, RefusedRecipient[]>();

  constructor(store: MessageStore) {
    this.#store = store;
  }

  /**
   * Runs `publish` once per sender and key: a retry while the first attempt is still committing shares its
   * result, a later one finds the stored messages (the key is stored with them, in the same transaction). On a
   * store other brokers share, a retry there may commit first: the store refuses this one with `duplicate_key`,
   * and it finds that one's messages. `broadcast`: the publish names no recipient, so it may leave some out; a
   * retry answers the first attempt's refusals, or `refusalsUnknown` when they were not kept here.
   */
  async once(from: AgentName, key: string, broadcast: boolean, publish: () => Promise<Published>): Promise<Published> {
    const flightKey = `${from}\n${key}`;
    const inFlight = this.#inFlight.get(flightKey);
    if (inFlight) return await inFlight;
    const attempt = (async () => {
      const earlier = await this.#store.findByKey(from, key);
      if (earlier.length > 0) return this.#again(earlier, flightKey, broadcast);
      try {
        const published = await publish();
        if (broadcast) this.#remember(flightKey, published.refused);
        return published;
      } catch (error) {
        if (!(error instanceof InteropError) || error.code !== "duplicate_key") throw error;
        return this.#again(await this.#store.findByKey(from, key), flightKey, broadcast);
      }
    })();
    this.#inFlight.set(flightKey, attempt);
    try {
      return await attempt;
    } finally {
      this.#inFlight.delete(flightKey);
    }
  }

  /** A retry's answer: the stored messages, and whom the first attempt left out as far as this broker knows. */
  #again(envelopes: Published["envelopes"], flightKey: string, broadcast: boolean): Published {
    const refused = this.#refusals.get(flightKey);
    if (refused !== undefined) return { envelopes, refused };
    return broadcast ? { envelopes, refused: [], refusalsUnknown: true } : { envelopes, refused: [] };
  }

  #remember(flightKey: string, refused: RefusedRecipient[]): void {
    this.#refusals.set(flightKey, refused);
    if (this.#refusals.size > REMEMBERED_BROADCASTS) this.#refusals.delete(this.#refusals.keys().next().value!);
  }
}
