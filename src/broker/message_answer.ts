/**
 * An answer that takes messages (`/poll`, ntfy `poll=1`): what fits in it is chosen, and encoded, before the take commits.
 * Lists that take nothing (`/history`, `/dead-letters`) are held to the same budget.
 */
import { Buffer } from "node:buffer";
import type { Envelope } from "../message.ts";
import { readsOn } from "../store/store.ts";
import type { AnswerHold } from "./answer_memory.ts";
import { EventLoopSlices } from "./event_loop_slices.ts";

/**
 * The most characters of encoded messages one answer holds (16 Mi; UTF-8 sends at most 3 bytes a character). Far
 * below the longest string V8 builds (2^29 - 24 characters), so an answer within it is always built; and small enough
 * for a client's 10 s request timeout. One message always goes, however large: a message is at most
 * MAX_MESSAGE_BYTES, which JSON escapes to at most 6 characters a byte, so it too can be built.
 */
export const DEFAULT_ANSWER_BUDGET = 16 * 1024 * 1024;

/** Set on an answer the budget cut: more messages are pending than it holds. */
export const MORE_PENDING_HEADER = "interop-more-pending";

/**
 * The most characters of messages an answer reads and encodes, or turns into bytes, between two turns of the event
 * loop. Read from SQLite (synchronous) and encoded in one go, a 16 Mi-character answer held the event loop for
 * ~0.5 s of CPU: twelve at once held /status for up to 2.9 s (3 agents x 4 peeks of 16 Mi characters).
 */
export const SLICE_CHARS = 1024 * 1024;

/** `Item`: what the answer lists, each named by a unique `id` (a message, or a dead letter by its message's id). */
export class MessageAnswer<Item extends { id: number } = Envelope> {
  readonly #encode: (item: Item) => string;
  readonly #budget: number;
  /** What the answer holds of the broker's memory for answers (none: not bounded there). */
  readonly #hold: AnswerHold | undefined;
  /** Each message's text, by id: encoded once, when chosen (a take on a shared store may return one not seen). */
  readonly #encoded = new Map<number, string>();
  readonly #slices = new EventLoopSlices(SLICE_CHARS);
  #chosen = 0;
  #used = 0;
  #cut = false;

  constructor(encode: (item: Item) => string, budget: number, hold?: AnswerHold) {
    this.#encode = encode;
    this.#budget = budget;
    this.#hold = hold;
  }

  /** Whether `fit` left messages out for the budget: more are pending than the answer holds. */
  get cut(): boolean {
    return this.#cut;
  }

  /**
   * Those of `envelopes` (the next oldest) that fit in what the budget has left, always the answer's first. Each is
   * encoded here, so a message that cannot be encoded throws before anything is taken. Each is claimed from the
   * memory for answers too: one that does not fit there cuts the answer, or refuses it if it is the first.
   */
  fit(envelopes: Item[]): Item[] {
    for (let index = 0; index < envelopes.length; index++) {
      const length = this.#text(envelopes[index]).length;
      const overBudget = this.#used + length > this.#budget && this.#chosen > 0;
      const refusal = overBudget ? undefined : this.#hold?.claim(length);
      if (refusal !== undefined && this.#chosen === 0) throw refusal;
      if (overBudget || refusal !== undefined) {
        this.#cut = true;
        return envelopes.slice(0, index);
      }
      this.#chosen++;
      this.#used += length;
    }
    return envelopes;
  }

  /**
   * Up to `limit` messages after `afterId`, read through `readAfter` and filtered by `keep`, as many as fit: a page at
   * a time, each asked for all that is left of `limit` but bounded by the characters of stored payload it may hold
   * (`maxChars`, `MessageStore.readAfter`): what the budget has left, and no more than a slice, so a read holds no
   * more than the answer can take (and one message more, which the store always returns: the message that shows
   * whether the answer is cut), whatever --max-body-bytes was when the messages were stored. Sized by a count at
   * --max-body-bytes each, a PostgreSQL /poll?limit=500 of small messages read them in ~33 round trips, and a broker
   * restarted with a smaller --max-body-bytes read 30 stored messages of 7 MB at once. `keep` is asked again at the
   * end, as a single read would ask it once the read is done.
   */
  async read(
    readAfter: (afterId: number, limit: number, maxChars: number) => Promise<Item[]>,
    afterId: number,
    limit: number,
    keep: (envelope: Item) => boolean,
  ): Promise<Item[]> {
    return await this.reserved(async () => {
      const chosen: Item[] = [];
      let rows = 0;
      for (;;) {
        const page = limit - rows;
        const got = await readAfter(afterId, page, this.#charsLeft());
        rows += got.length;
        chosen.push(...await this.fitSliced(got.filter(keep)));
        // Filtered again: while later pages were read, another reader may have taken some of the earlier ones.
        if (this.#cut || !readsOn(got, page) || rows >= limit) return chosen.filter(keep);
        afterId = got[got.length - 1].id;
      }
    });
  }

  /**
   * Runs `read` with a full answer's memory reserved (`AnswerHold.reserve`): refused at once when there is none. What
   * `read` holds of the store while it reads is bounded so too (by the answers that may read at once, four per agent).
   */
  async reserved<T>(read: () => Promise<T>): Promise<T> {
    this.#hold?.reserve(this.#budget);
    try {
      return await read();
    } finally {
      this.#hold?.settle();
    }
  }

  /**
   * The newest of up to `limit` items that fit, oldest first: what a list that takes nothing (`/history`,
   * `/dead-letters`) answers. Read through `readBefore` (the last `limit` items below an id, oldest first, bounded by
   * `maxChars` as `MessageStore.readLatest` is) from the newest, a page at a time as `read` reads, and filtered by
   * `keep`: reading all `limit` first held every big message asked for in memory at once (300 of 1 MiB took a 512 MiB
   * heap down), and pages sized by a count at --max-body-bytes each read a PostgreSQL /history of 500 small messages
   * in 33 round trips.
   */
  async readNewest(
    readBefore: (beforeId: number, limit: number, maxChars: number) => Promise<Item[]>,
    limit: number,
    keep: (item: Item) => boolean = () => true,
  ): Promise<Item[]> {
    return await this.reserved(async () => {
      const pages: Item[][] = [];
      let rows = 0;
      let beforeId = Number.MAX_SAFE_INTEGER;
      for (;;) {
        const page = limit - rows;
        const got = await readBefore(beforeId, page, this.#charsLeft());
        rows += got.length;
        pages.push((await this.fitSliced(got.filter(keep).toReversed())).reverse());
        if (this.#cut || !readsOn(got, page) || rows >= limit) return pages.reverse().flat();
        beforeId = got[0].id;
      }
    });
  }

  /** The texts of `envelopes`, in order. */
  texts(envelopes: Item[]): string[] {
    return envelopes.map((envelope) => this.#text(envelope));
  }

  /**
   * The texts of `items` between `open` and `close`, `separator` between two: an answer's body (by default a JSON
   * array). One of more than `SLICE_CHARS` characters is made UTF-8 bytes a slice at a time, with a
   * turn of the event loop between two (joined, measured and encoded at once, 16 Mi characters took ~0.2 s), and its
   * texts are let go: the bytes are what the answer holds from here.
   */
  async body(items: Item[], open = "[", separator = ",", close = "]"): Promise<string | Uint8Array<ArrayBuffer>> {
    const texts = this.texts(items);
    const chars = texts.reduce((sum, text) => sum + text.length, 0);
    if (chars <= SLICE_CHARS) return open + texts.join(separator) + close;
    const parts = texts.flatMap((text, index) => index === 0 ? [text] : [separator, text]);
    parts.unshift(open);
    parts.push(close);
    let length = 0;
    for (const part of parts) {
      length += Buffer.byteLength(part);
      await this.#slices.after(part.length);
    }
    const bytes = new Uint8Array(length);
    const encoder = new TextEncoder();
    let at = 0;
    for (const part of parts) {
      at += encoder.encodeInto(part, bytes.subarray(at)).written;
      await this.#slices.after(part.length);
    }
    this.#encoded.clear();
    return bytes;
  }

  /** Gives back the memory the answer holds: once its client has taken it, or left, or it failed. */
  release(): void {
    this.#hold?.release();
  }

  /** Headers that say whether the answer was cut. */
  headers(): Record<string, string> {
    return this.#cut ? { [MORE_PENDING_HEADER]: "true" } : {};
  }

  /**
   * The characters of stored payload the next page may hold (`maxChars`): what the budget has left, and no more than
   * a slice.
   */
  #charsLeft(): number {
    return Math.max(0, Math.min(this.#budget - this.#used, SLICE_CHARS));
  }

  /**
   * `fit`, then a turn of the event loop once a slice's worth of characters has been read and encoded: for a caller
   * that reads items itself (A2A ListTasks), as `read` and `readNewest` do.
   */
  async fitSliced(items: Item[]): Promise<Item[]> {
    const used = this.#used;
    const fitting = this.fit(items);
    await this.#slices.after(this.#used - used);
    return fitting;
  }

  #text(envelope: Item): string {
    let text = this.#encoded.get(envelope.id);
    if (text === undefined) {
      text = this.#encode(envelope);
      this.#encoded.set(envelope.id, text);
    }
    return text;
  }
}
