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

/**
 * Appended to the key a broadcast is stored under, so a keyed publish's messages say whether it named its recipient
 * (the store keeps only the key): otherwise a broadcast under the key of a direct send found that send's one message
 * and answered with it, storing nothing. An Idempotency-Key header cannot hold a line break, so no client's key reads
 * as a broadcast's (and PostgreSQL's text, unlike a NUL, stores it); a search by key prefix still finds a broadcast.
 */
const BROADCAST_MARK = "\nbroadcast";

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
   * and it finds that one's messages. A request with another recipient (or none: a broadcast), reply or body than
   * the key's first one is refused (`idempotency_key_reused`): answering it with the first one's messages would
   * acknowledge a message that is never stored. A broadcast (no recipient, no reply) may leave some out; a retry
   * answers the first attempt's refusals, or `refusalsUnknown` when they were not kept here. `publish` stores its
   * messages under the key it is given (a broadcast's is marked).
   */
  async once(from: AgentName, key: string, request: KeyedRequest, publish: (storedKey: string) => Promise<Published>): Promise<Published> {
    const flightKey = `${from}\n${key}`;
    const broadcast = isBroadcast(request);
    const inFlight = this.#inFlight.get(flightKey);
    if (inFlight) {
      if (!sameMessage(inFlight.request, request)) throw reused(key);
      return await inFlight.attempt;
    }
    const attempt = (async () => {
      const earlier = await this.#earlier(from, key);
      if (earlier !== undefined) return this.#again(earlier, request, key, flightKey, broadcast);
      try {
        const published = await publish(broadcast ? key + BROADCAST_MARK : key);
        if (broadcast) this.#remember(flightKey, published.refused);
        return published;
      } catch (error) {
        if (!(error instanceof InteropError) || error.code !== "duplicate_key") throw error;
        return this.#again((await this.#earlier(from, key))!, request, key, flightKey, broadcast);
      }
    })();
    this.#inFlight.set(flightKey, { request, attempt });
    try {
      return await attempt;
    } finally {
      this.#inFlight.delete(flightKey);
    }
  }

  /**
   * What `from` published under `key`, in the shape of its request: a broadcast's messages are stored under the key
   * marked, a named recipient's under the key itself. Messages to several recipients under the key itself were a
   * broadcast stored before the mark. Undefined when none is stored (or retention removed them).
   */
  async #earlier(from: AgentName, key: string): Promise<{ envelopes: Envelope[]; request: KeyedRequest } | undefined> {
    const [broadcast, named] = await Promise.all([this.#store.findByKey(from, key + BROADCAST_MARK), this.#store.findByKey(from, key)]);
    // Both only after brokers sharing a store stored a broadcast and a direct send under one key at the same time.
    const envelopes = broadcast.length > 0 ? broadcast : named;
    if (envelopes.length === 0) return undefined;
    const sentToAll = broadcast.length > 0 || new Set(named.map((envelope) => envelope.to)).size > 1;
    const request = {
      to: sentToAll ? undefined : envelopes[0].to,
      replyTo: envelopes[0].thread?.replyTo,
      payloads: envelopes.map((envelope) => envelope.payload),
    };
    return { envelopes, request };
  }

  /** A retry's answer: the stored messages, and whom the first attempt left out as far as this broker knows. */
  #again(earlier: { envelopes: Envelope[]; request: KeyedRequest }, request: KeyedRequest, key: string, flightKey: string, broadcast: boolean): Published {
    if (!sameMessage(earlier.request, request)) throw reused(key);
    const { envelopes } = earlier;
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
    `Idempotency-Key ${JSON.stringify(key)} was used for another message (another recipient, or a broadcast, reply or body); nothing was stored: send a new message with a new key`,
  );
}

/** A publish to every other agent: no recipient named, no message answered. */
function isBroadcast(request: KeyedRequest): boolean {
  return request.to === undefined && request.replyTo === undefined;
}

/**
 * Whether two keyed publishes (two requests, or the stored messages and a request) are the same message: both
 * broadcasts or both not, answering the same message, to the same recipient (a reply that names none goes to the
 * other party), with the same bodies (unless the key alone names the message).
 */
function sameMessage(first: KeyedRequest, again: KeyedRequest): boolean {
  if (isBroadcast(first) !== isBroadcast(again) || first.replyTo !== again.replyTo) return false;
  if (first.to !== undefined && again.to !== undefined && first.to !== again.to) return false;
  return first.payloads === undefined || again.payloads === undefined || sameBodies(first.payloads, again.payloads);
}

/** The same bodies, each message's copies for several recipients counted once. */
function sameBodies(stored: Payload[], asked: Payload[]): boolean {
  const bodies = (payloads: Payload[]) => [...new Set(payloads.map((payload) => JSON.stringify(payload)))].sort();
  return JSON.stringify(bodies(stored)) === JSON.stringify(bodies(asked));
}
