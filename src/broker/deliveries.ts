/**
 * The bookkeeping every delivery shares (streams, polls, replays, waits): the inbox's cursor, messages taken out of
 * order, repeats counted.
 */
import type { AgentName, Envelope } from "../message.ts";
import type { InboxRecord } from "../store/store.ts";
import type { CommitQueue } from "./commit_queue.ts";
import { Holds } from "./holds.ts";
import { tryUntilLanded } from "./store_retry.ts";
import type { Observers } from "./observers.ts";

export interface DeliveriesDeps {
  commits: CommitQueue;
  /** The broker's inbox records. */
  records: Map<AgentName, InboxRecord>;
  observers: Observers;
  /** Other brokers share the store: its cursors are moved by the take or claim itself. */
  shared: boolean;
  /** Aborted as the broker stops: a take's mark that has not landed by then is tried once more, then left (`take`). */
  stopping: AbortSignal;
}

/** How a take's mark is tried again while the store refuses it (a full disk, PostgreSQL away), in ms. */
const MARK_RETRY = { firstMs: 1000, maxMs: 30_000 };

export class Deliveries {
  #deps: DeliveriesDeps;
  /** Messages taken out of order by a wait, above their inbox's cursor: streams and polls skip them. */
  readonly taken = new Set<number>();
  /**
   * Messages a reader has (a poll's read, a wait's take) or a cancel withdraws, whose take has not committed yet (two
   * polls may read one message: held until both let go): retention does not expire them (`committing`), or it would
   * count as expired a message its reader is handed.
   */
  #held = new Holds<number>();
  /** Messages written to a stream again (a resume from before them), per agent since the broker started. */
  #redelivered = new Map<AgentName, number>();

  constructor(deps: DeliveriesDeps) {
    this.#deps = deps;
  }

  /** Messages written again to `agent`'s streams since the broker started. */
  redelivered(agent: AgentName): number {
    return this.#redelivered.get(agent) ?? 0;
  }

  /** Forgets a removed agent's count of repeats. */
  forget(agent: AgentName): void {
    this.#redelivered.delete(agent);
  }

  /** The messages held while their take commits (`hold`): what retention leaves (`ExpiryOptions.taking`). */
  committing(): number[] {
    return this.#held.held();
  }

  /** Holds `ids` from expiry until the returned function is called, once their take has committed (or failed). */
  hold(ids: readonly number[]): () => void {
    return this.#held.hold(ids);
  }

  /** Whether `agent`'s message `id` is still undelivered (above the inbox's cursor, not taken out of order). */
  isPending(agent: AgentName, id: number): boolean {
    const inbox = this.#deps.records.get(agent);
    return inbox !== undefined && this.#undelivered(inbox, id);
  }

  /** Whether a message is still undelivered in `inbox` (and not above `shownUpTo`), as of now. */
  pendingIn(inbox: InboxRecord, shownUpTo = Infinity): (envelope: Envelope) => boolean {
    return (envelope) => envelope.id <= shownUpTo && this.#undelivered(inbox, envelope.id);
  }

  #undelivered(inbox: InboxRecord, id: number): boolean {
    return id > inbox.deliveredId && !this.taken.has(id);
  }

  /** Counts a message taken out of order (by a wait for a reply) as delivered. */
  tookOutOfOrder(inbox: InboxRecord, envelope: Envelope): void {
    if (inbox.pending > 0) inbox.pending--;
    this.#deps.observers.delivered(envelope);
  }

  /** Marks a message handed to a waiter as delivered, out of order if need be. */
  take(envelope: Envelope): void {
    const inbox = this.#deps.records.get(envelope.to)!;
    this.taken.add(envelope.id);
    const release = this.hold([envelope.id]);
    this.tookOutOfOrder(inbox, envelope);
    // Once committed, the store leaves it out of every read; until then, memory does, and the mark is tried again
    // while the store refuses it (red team 54: an ask's reply taken on a full disk came back after a restart), and
    // once more as the broker stops, in its last commit. Not landed then (or at a crash), it is delivered once more
    // to the inbox's reader: until then it is handed out, so it stays held from expiry as it stays taken.
    const mark = () => this.#deps.commits.update({ agent: envelope.to, polled: [{ after: envelope.id - 1, upTo: envelope.id }] });
    const landed = () => {
      this.taken.delete(envelope.id);
      release();
    };
    void tryUntilLanded(() => mark().then(landed), () => true, this.#deps.stopping, MARK_RETRY).then(() => {
      if (this.taken.has(envelope.id) && this.#deps.stopping.aborted) mark().then(landed, () => {});
    });
  }

  /** Counts messages handed out in order (streams, polls, replays) as delivered; one already delivered counts as repeated. */
  markDelivered(inbox: InboxRecord, envelopes: Envelope[]): void {
    let advanced = false;
    let repeated = 0;
    for (const envelope of envelopes) {
      if (envelope.id <= inbox.deliveredId) {
        repeated++;
        continue;
      }
      inbox.deliveredId = envelope.id;
      // Not below 0: another broker's publishes are not counted here.
      if (inbox.pending > 0) inbox.pending--;
      this.#deps.observers.delivered(envelope);
      advanced = true;
    }
    // A lost cursor update only means a client without Last-Event-ID may see these again after a crash. A shared
    // store's cursor was moved by the take or claim itself.
    if (advanced && !this.#deps.shared) this.#deps.commits.note({ agent: inbox.agent, deliveredId: inbox.deliveredId });
    if (repeated > 0) {
      this.#redelivered.set(inbox.agent, (this.#redelivered.get(inbox.agent) ?? 0) + repeated);
      this.#deps.observers.redelivered(inbox.agent, repeated);
    }
  }
}
