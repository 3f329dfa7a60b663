/** Publishes with an Idempotency-Key: a retry returns the first attempt's messages instead of storing them again. */
import { InteropError } from "../errors.ts";
import type { AgentName, Envelope, Payload } from "../message.ts";
import type { MessageStore } from "../store/store.ts";
import type { Published, RefusedRecipient } from "./publishes.ts";

/**
 * How many keyed broadcasts' refusals are remembered (in memory: at most a few MB). A retry of an older one, one
 * from before a restart or one first published on another broker sharing the store says its refusals are unknown.
 */
const REMEMBERED_BROADCASTS = 10_000;

/** What a keyed publish asks for: a retry asks for the same, anything else is another message under a used key. */
export interface KeyedRequest {
  /** The recipient named (undefined: every other agent). */
  to: AgentName | undefined;
  replyTo: number | undefined;
  /** The bodies; undefined when the key alone names the message (`PublishOptions.keyNamesMessage`). */
  payloads: Payload[] | undefined;
}

export class IdempotentPublishes {
  #store: MessageStore;
  /** Attempts still committing, by sender and key, with what each asked for. */
  #inFlight = new Map<string, { request: KeyedRequest; attempt: Promise<Published> }>();
  /** Whom each recent keyed broadcast left out (full inboxes), by sender and key, oldest first. */
  #refusals = new Map<string, RefusedRecipient[]>();

  constructor(store: MessageStore) {
    this.#store = store;
  }

  /**
   * Runs `publish` once per sender and key: a retry while the first attempt is still committing shares its
   * result, a later one finds the stored messages (the key is stored with them, in the same transaction). On a
   * store other brokers share, a retry there may commit first: the store refuses this one with `duplicate_key`,
   * and it finds that one's messages. A request with another recipient, reply or body than the key's first one is
   * refused (`idempotency_key_reused`): answering it with the first one's messages would acknowledge a message that
   * is never stored. A broadcast (no recipient, no reply) may leave some out; a retry answers the first attempt's
   * refusals, or `refusalsUnknown` when they were not kept here.
   */
  async once(from: AgentName, key: string, request: KeyedRequest, publish: () => Promise<Published>): Promise<Published> {
    const flightKey = `${from}\n${key}`;
    const broadcast = request.to === undefined && request.replyTo === undefined;
    const inFlight = this.#inFlight.get(flightKey);
    if (inFlight) {
      if (!sameRequest(inFlight.request, request)) throw reused(key);
      return await inFlight.attempt;
    }
    const attempt = (async () => {
      const earlier = await this.#store.findByKey(from, key);
      if (earlier.length > 0) return this.#again(earlier, request, key, flightKey, broadcast);
      try {
        const published = await publish();
        if (broadcast) this.#remember(flightKey, published.refused);
        return published;
      } catch (error) {
        if (!(error instanceof InteropError) || error.code !== "duplicate_key") throw error;
        return this.#again(await this.#store.findByKey(from, key), request, key, flightKey, broadcast);
      }
    })();
    this.#inFlight.set(flightKey, { request, attempt });
    try {
      return await attempt;
    } finally {
      this.#inFlight.delete(flightKey);
    }
  }

  /** A retry's answer: the stored messages, and whom the first attempt left out as far as this broker knows. */
  #again(envelopes: Envelope[], request: KeyedRequest, key: string, flightKey: string, broadcast: boolean): Published {
    if (!storedFor(envelopes, request)) throw reused(key);
    const refused = this.#refusals.get(flightKey);
    if (refused !== undefined) return { envelopes, refused };
    return broadcast ? { envelopes, refused: [], refusalsUnknown: true } : { envelopes, refused: [] };
  }

  #remember(flightKey: string, refused: RefusedRecipient[]): void {
    this.#refusals.set(flightKey, refused);
    if (this.#refusals.size > REMEMBERED_BROADCASTS) this.#refusals.delete(this.#refusals.keys().next().value!);
  }
}

function reused(key: string): InteropError {
  return new InteropError(
    "idempotency_key_reused",
    `Idempotency-Key ${JSON.stringify(key)} was used for another message (another recipient, reply or body); nothing was stored: send a new message with a new key`,
  );
}

function sameRequest(first: KeyedRequest, again: KeyedRequest): boolean {
  if (first.to !== again.to || first.replyTo !== again.replyTo) return false;
  return first.payloads === undefined || again.payloads === undefined || sameBodies(first.payloads, again.payloads);
}

/**
 * Whether the stored messages are what the request asks for: to its recipient (a broadcast's recipients may have
 * changed since), answering the same message, with the same bodies.
 */
function storedFor(envelopes: Envelope[], request: KeyedRequest): boolean {
  if (request.to !== undefined && envelopes.some((envelope) => envelope.to !== request.to)) return false;
  if (envelopes.some((envelope) => envelope.thread?.replyTo !== request.replyTo)) return false;
  return request.payloads === undefined || sameBodies(envelopes.map((envelope) => envelope.payload), request.payloads);
}

/** The same bodies, each message's copies for several recipients counted once. */
function sameBodies(stored: Payload[], asked: Payload[]): boolean {
  const bodies = (payloads: Payload[]) => [...new Set(payloads.map((payload) => JSON.stringify(payload)))].sort();
  return JSON.stringify(bodies(stored)) === JSON.stringify(bodies(asked));
}
