/**
 * On a broker of its own: the replies that waits await (`/ask`, `/wait?reply_to=`, a leased reply wait), kept from the
 * inbox's in-order readers as a shared store keeps them (`SharedInboxes.awaitReply`): a stream, a poll or peek, a plain
 * wait, an ntfy reader stops before such a reply while it is pending, and reads on once its wait took it or ended.
 */
import type { AgentName, Envelope } from "../message.ts";
import { cutShort, type MessageStore, readsOn } from "../store/store.ts";

export interface AwaitedRepliesDeps {
  store: MessageStore;
  /** Messages taken out of order whose take has not committed yet: the store still reads them. */
  taken: ReadonlySet<number>;
  /** Whether `agent`'s message `id` is still undelivered (above the inbox's cursor, not taken out of order). */
  pending(agent: AgentName, id: number): boolean;
  /**
   * `agent`'s in-order readers may read on from where they stopped (a reply they stopped before was taken, or no wait
   * awaits it any more).
   */
  released(agent: AgentName): void;
}

export class AwaitedReplies {
  #deps: AwaitedRepliesDeps;
  /** Per agent, the questions whose replies are awaited, with how many waits await each. */
  #questions = new Map<AgentName, Map<number, number>>();
  /**
   * Per agent, the awaited replies known to be in the inbox (by id, with their question): its readers stopped before
   * the first. Kept so that a commit is held back without reading the store; one no longer pending is dropped.
   */
  #stops = new Map<AgentName, Map<number, number>>();

  constructor(deps: AwaitedRepliesDeps) {
    this.#deps = deps;
  }

  /**
   * Records that a wait awaits the reply to `agent`'s message `questionId`, until the returned function is called
   * (once; calling it again does nothing). Readers of the inbox that stopped before the reply read on once no wait
   * awaits it.
   */
  hold(agent: AgentName, questionId: number): () => void {
    const questions = this.#questions.get(agent) ?? new Map<number, number>();
    this.#questions.set(agent, questions);
    questions.set(questionId, (questions.get(questionId) ?? 0) + 1);
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      const left = questions.get(questionId)! - 1;
      if (left > 0) return void questions.set(questionId, left);
      questions.delete(questionId);
      if (questions.size === 0 && this.#questions.get(agent) === questions) this.#questions.delete(agent);
      if (this.#unstop(agent, questionId)) this.#deps.released(agent);
    };
  }

  /**
   * Up to `limit` messages for `agent` above `afterId`, oldest first, as `MessageStore.readAfter` reads them, but
   * none taken out of order (a reply its wait took), nor any from the first awaited reply still pending: what every
   * in-order read of an inbox goes through. Fewer than `limit` only at the end of the inbox or at such a reply, or
   * cut short by `maxChars` (`MessageStore.readAfter`). A store other brokers share stops there itself (this broker
   * then records no waits here).
   */
  async readAfter(agent: AgentName, afterId: number, limit: number, maxChars?: number): Promise<Envelope[]> {
    const page = await this.#untaken(agent, afterId, limit, maxChars);
    const questions = this.#questions.get(agent);
    if (questions === undefined) return page;
    for (let index = 0; index < page.length; index++) {
      if (!this.#awaits(page[index], questions)) continue;
      this.stop(page[index]);
      return page.slice(0, index);
    }
    return page;
  }

  /**
   * Up to `limit` messages above `afterId` that no take out of order holds, read no more than `limit` at a time. A
   * reply taken as its wait ended is still in the store until its take commits: read past it, or a read of one message
   * (a wait's) would find nothing while what follows the reply is there. Not by asking for one more per taken id: a
   * withdrawn message's id stays taken for good (every agent's), and after 48 A2A cancels a /wait read 49 messages, a
   * stream's page of 1 MiB messages 64 (see read_pages.ts). With `maxChars`, no more is read once something is kept
   * and more may follow: the page is cut short (`cutShort`), as a second read would let it hold twice `maxChars`.
   */
  async #untaken(agent: AgentName, afterId: number, limit: number, maxChars?: number): Promise<Envelope[]> {
    const { store, taken } = this.#deps;
    const kept: Envelope[] = [];
    for (let after = afterId; kept.length < limit;) {
      const wanted = limit - kept.length;
      const read = await store.readAfter(agent, after, wanted, maxChars);
      kept.push(...read.filter((envelope) => !taken.has(envelope.id)));
      if (!readsOn(read, wanted)) break;
      if (maxChars !== undefined && kept.length > 0) return cutShort(kept);
      after = read[read.length - 1].id;
    }
    return kept;
  }

  /**
   * Whether a message just committed is held back from the inbox's in-order readers (a stream's offer, a wait that
   * takes any message): it is an awaited reply, or an awaited reply before it is still pending. A reply waiter for it
   * may still take it; if none does, `stop` records it.
   */
  heldBack(envelope: Envelope): boolean {
    const questions = this.#questions.get(envelope.to);
    return questions !== undefined && (this.#awaits(envelope, questions) || this.#stopped(envelope.to));
  }

  /** Records an awaited reply left pending as where its inbox's in-order readers stop (anything else: no-op). */
  stop(envelope: Envelope): void {
    const questionId = envelope.thread?.replyTo;
    const questions = this.#questions.get(envelope.to);
    if (questionId === undefined || questions === undefined || !this.#awaits(envelope, questions)) return;
    const stops = this.#stops.get(envelope.to) ?? new Map<number, number>();
    this.#stops.set(envelope.to, stops.set(envelope.id, questionId));
  }

  /**
   * A wait took `agent`'s message `id` out of order: if its readers stopped before it, they read on now (its wait may
   * hold on a while: a leased reply wait holds until its lease ends), and it no longer stops them.
   */
  took(agent: AgentName, id: number): void {
    const stops = this.#stops.get(agent);
    if (stops === undefined || !stops.delete(id)) return;
    if (stops.size === 0) this.#stops.delete(agent);
    this.#deps.released(agent);
  }

  /**
   * `--pending-ttl` expired some of `agent`'s messages: an awaited reply among them is gone, and no longer stops the
   * inbox's readers. Its cursor never passed it, so it read as pending, and a stream took nothing more until its wait
   * ended (a leased reply wait's lasts as long as its lease, renewed at will).
   */
  async expired(agent: AgentName): Promise<void> {
    const stops = this.#stops.get(agent);
    if (stops === undefined) return;
    let gone = false;
    for (const id of [...stops.keys()]) {
      if (await this.#deps.store.find(id) === undefined) gone = stops.delete(id) || gone;
    }
    if (stops.size === 0 && this.#stops.get(agent) === stops) this.#stops.delete(agent);
    if (gone) this.#deps.released(agent);
  }

  /**
   * `agent`'s cursor moved past messages a take committed: one up to what its client showed takes an awaited reply
   * among them (`Takes.poll`), and the readers stopped before it read on, rather than wait for a commit to the inbox or
   * the end of the reply's wait (a /wait?reply_to= or /ask: up to its timeout).
   */
  passed(agent: AgentName): void {
    if (this.#stops.has(agent)) this.#stopped(agent);
  }

  /** Whether `envelope` is a reply to one of `questions` still pending. */
  #awaits(envelope: Envelope, questions: Map<number, number>): boolean {
    const questionId = envelope.thread?.replyTo;
    return questionId !== undefined && questions.has(questionId) && this.#deps.pending(envelope.to, envelope.id);
  }

  /**
   * Whether an awaited reply recorded for `agent` is still pending. Those no longer pending (a resume past it counted
   * it delivered) are forgotten, and the readers that stopped before them read on; one whose take committed reads as
   * pending until `took` or its wait's end forgets it.
   */
  #stopped(agent: AgentName): boolean {
    const stops = this.#stops.get(agent);
    if (stops === undefined) return false;
    for (const id of stops.keys()) {
      if (this.#deps.pending(agent, id)) return true;
      stops.delete(id);
    }
    this.#stops.delete(agent);
    // What was held back meanwhile is in the store only: a live stream reads it from there.
    this.#deps.released(agent);
    return false;
  }

  /** Forgets the stops at replies to `questionId` (no wait awaits them any more); true if there was one. */
  #unstop(agent: AgentName, questionId: number): boolean {
    const stops = this.#stops.get(agent);
    if (stops === undefined) return false;
    let stopped = false;
    for (const [id, question] of stops) {
      if (question !== questionId) continue;
      stops.delete(id);
      stopped = true;
    }
    if (stops.size === 0) this.#stops.delete(agent);
    return stopped;
  }
}
