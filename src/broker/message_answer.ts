/** An answer that takes messages (`/poll`, ntfy `poll=1`): what fits in it is chosen, and encoded, before the take commits. */
import type { Envelope } from "../message.ts";

/**
 * The most characters of encoded messages one answer holds (16 Mi; UTF-8 sends at most 3 bytes a character). Far
 * below the longest string V8 builds (2^29 - 24 characters), so an answer within it is always built; and small enough
 * for a client's 10 s request timeout. One message always goes, however large: a message is at most
 * MAX_MESSAGE_BYTES, which JSON escapes to at most 6 characters a byte, so it too can be built.
 */
export const DEFAULT_ANSWER_BUDGET = 16 * 1024 * 1024;

/** Set on an answer the budget cut: more messages are pending than it holds. */
export const MORE_PENDING_HEADER = "interop-more-pending";

export class MessageAnswer {
  readonly #encode: (envelope: Envelope) => string;
  readonly #budget: number;
  /** Each message's text, by id: encoded once, when chosen (a take on a shared store may return one not seen). */
  readonly #encoded = new Map<number, string>();
  #cut = false;

  constructor(encode: (envelope: Envelope) => string, budget: number) {
    this.#encode = encode;
    this.#budget = budget;
  }

  /** Whether `fit` left messages out for the budget: more are pending than the answer holds. */
  get cut(): boolean {
    return this.#cut;
  }

  /**
   * The oldest of `envelopes` whose texts fit in the budget together, always the first. Each is encoded here, so a
   * message that cannot be encoded throws before anything is taken.
   */
  fit(envelopes: Envelope[]): Envelope[] {
    let used = 0;
    for (let index = 0; index < envelopes.length; index++) {
      used += this.#text(envelopes[index]).length;
      if (used > this.#budget && index > 0) {
        this.#cut = true;
        return envelopes.slice(0, index);
      }
    }
    return envelopes;
  }

  /** The texts of `envelopes`, in order. */
  texts(envelopes: Envelope[]): string[] {
    return envelopes.map((envelope) => this.#text(envelope));
  }

  /** Headers that say whether the answer was cut. */
  headers(): Record<string, string> {
    return this.#cut ? { [MORE_PENDING_HEADER]: "true" } : {};
  }

  #text(envelope: Envelope): string {
    let text = this.#encoded.get(envelope.id);
    if (text === undefined) {
      text = this.#encode(envelope);
      this.#encoded.set(envelope.id, text);
    }
    return text;
  }
}
