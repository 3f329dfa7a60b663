/** On a store several brokers share: `/wait` and `/ask` requests are handed what is taken from the table for them. */
import type { AgentName, Envelope } from "../message.ts";
import { CommitInDoubt, type InboxRecord, isInboxLeased, readsOn, type SharedInboxes } from "../store/store.ts";
import { READ_CHARS } from "./read_pages.ts";
import type { Waiters } from "./waiters.ts";

/**
 * Messages looked through for an awaited reply already in the inbox (a broker of its own); on a shared store, the
 * most replies one read hands to waiters, fewer when they hold more than READ_CHARS.
 */
export const REPLY_SCAN = 500;

export interface SharedWaitersDeps {
  waiters: Waiters;
  shared: SharedInboxes;
  inboxFor(agent: AgentName): Promise<InboxRecord>;
  /** Takes the oldest messages in order, as a poll. */
  take(agent: AgentName, limit: number): Promise<Envelope[]>;
  /** Counts a reply taken out of order as delivered. */
  tookOutOfOrder(inbox: InboxRecord, envelope: Envelope): void;
  /** Resolves once no reader holds a lease on `agent`'s inbox (`Leases.whenFree`). */
  whenLeaseEnds(agent: AgentName): Promise<void>;
}

export class SharedWaiters {
  #deps: SharedWaitersDeps;
  /** Agents whose waiters are being served, and whether a wake-up came meanwhile (then they are served again). */
  #serving = new Map<AgentName, boolean>();
  /** Agents whose waiters wait for a reader's lease to end, to be served again when it does. */
  #leased = new Set<AgentName>();

  constructor(deps: SharedWaitersDeps) {
    this.#deps = deps;
  }

  /**
   * Hands `agent`'s waiters what the store has for them (the message may have been published on another broker):
   * each awaited reply, taken out of order, then the oldest messages in order, one per waiter. Each waiter is
   * reserved while its message is taken, so a timeout meanwhile cannot drop a message taken for it.
   */
  async serve(agent: AgentName): Promise<void> {
    if (this.#serving.has(agent)) {
      this.#serving.set(agent, true);
      return;
    }
    const { waiters, shared } = this.#deps;
    try {
      do {
        this.#serving.set(agent, false);
        const inbox = await this.#deps.inboxFor(agent);
        await this.#handReplies(inbox);
        for (let hand = waiters.reserve(agent, undefined); hand !== undefined; hand = waiters.reserve(agent, undefined)) {
          const [next] = await this.#deps.take(agent, 1).catch((error) => {
            if (isInboxLeased(error)) this.#serveWhenLeaseEnds(agent);
            return [];
          });
          hand(next);
          if (next === undefined) break;
        }
      } while (this.#serving.get(agent));
    } catch {
      // The store failed (an outage): the waiters stay; the next wake-up or the idle re-read serves them.
    } finally {
      this.#serving.delete(agent);
    }
  }

  /**
   * Hands each of the inbox's reply waiters the oldest pending reply to its question, taken out of order. The store
   * is asked for no more replies than there are waiters for each question, REPLY_SCAN and READ_CHARS at a time: asked
   * for up to 500 replies to the questions, it read 300 of 1 MiB to one question to hand its waiter the first.
   */
  async #handReplies(inbox: InboxRecord): Promise<void> {
    const { waiters, shared } = this.#deps;
    const { agent } = inbox;
    for (;;) {
      const awaited = waiters.awaitedReplies(agent);
      const most = Math.min(REPLY_SCAN, [...awaited.values()].reduce((sum, count) => sum + count, 0));
      if (most === 0) return;
      const replies = await shared.pendingReplies(agent, awaited, most, READ_CHARS);
      let handed = 0;
      for (const envelope of replies) {
        const replyTo = envelope.thread?.replyTo;
        const hand = replyTo !== undefined && awaited.has(replyTo) ? waiters.reserve(agent, replyTo) : undefined;
        if (hand === undefined) continue;
        // Not from under another reader's lease: it may have shown the reply, and takes it with its page.
        const taken = await settled(shared.takeOne(agent, envelope.id)).catch((error) => {
          if (isInboxLeased(error)) this.#serveWhenLeaseEnds(agent);
          return false;
        });
        if (taken) {
          this.#deps.tookOutOfOrder(inbox, envelope);
          handed++;
        }
        hand(taken ? envelope : undefined);
      }
      // Read again only after a full read whose every reply went to its waiter: each such read leaves fewer waiters.
      if (!readsOn(replies, most) || handed < replies.length) return;
    }
  }

  /**
   * Serves `agent`'s waiters again once the lease that refused their take ends: the holder's take on another broker
   * wakes no one, and the idle re-read would answer a wait up to 5 s late.
   */
  #serveWhenLeaseEnds(agent: AgentName): void {
    if (this.#leased.has(agent)) return;
    this.#leased.add(agent);
    void this.#deps.whenLeaseEnds(agent).catch(() => {}).finally(() => {
      this.#leased.delete(agent);
      void this.serve(agent);
    });
  }
}

/**
 * What a take resolves with, also when its COMMIT lost its answer: it waits for the store to know (a take that
 * committed moved the cursor, so its messages must reach the caller).
 */
export async function settled<T>(take: Promise<T>): Promise<T> {
  try {
    return await take;
  } catch (error) {
    if (!(error instanceof CommitInDoubt)) throw error;
    const kept = await (error as CommitInDoubt<T>).outcome;
    if (kept === undefined) throw error;
    return kept;
  }
}
