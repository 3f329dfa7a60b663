/** Taking messages out of inboxes in order: polls, peeks and waits, and the take of one message a leased wait showed. */
import type { AgentName, Envelope } from "../message.ts";
import { type InboxRecord, inboxLeased, isInboxLeased, type MessageStore, type SharedInboxes } from "../store/store.ts";
import type { AgentUse } from "./agent_admission.ts";
import type { AwaitedReplies } from "./awaited_replies.ts";
import type { CommitQueue } from "./commit_queue.ts";
import type { Deliveries } from "./deliveries.ts";
import type { MessageAnswer } from "./message_answer.ts";
import { settled, SharedWaiters } from "./shared_waiters.ts";
import type { Waiters } from "./waiters.ts";
import { msUntil } from "../sleep.ts";

/** What a take of `Takes.poll` is held to. */
export interface PollOptions {
  /** No message above this id: what a client already showed from a peek. */
  shownUpTo?: number;
  /** The answer the messages go into: only what fits is taken, encoded before the commit. */
  answer?: MessageAnswer;
  /** Aborts once the client left: a read it aborted by then takes nothing. */
  clientGone?: AbortSignal;
  /** The caller's lease, for a shared store's take to check and end (`Leases.take` hands it over). */
  lease?: string;
  /** Told when a shared store's take finds `lease` no longer held (see `Leases.take`). */
  leaseLost?: () => void;
}

export interface TakesDeps {
  store: MessageStore;
  /** Set when other brokers share the store: takes are then the store's, with compare-and-set. */
  shared: SharedInboxes | undefined;
  commits: CommitQueue;
  waiters: Waiters;
  /** On a broker of its own: the replies waits await, kept from in-order readers (a shared store keeps them itself). */
  awaited: AwaitedReplies;
  deliveries: Deliveries;
  inboxFor(agent: AgentName, use: AgentUse): Promise<InboxRecord>;
  /**
   * Resolves once no reader holds a lease on `agent`'s inbox (or `until` aborts): a shared store's waiters are served
   * again then.
   */
  whenLeaseEnds(agent: AgentName, until?: AbortSignal): Promise<void>;
  /**
   * Runs `work` as a take of `agent`'s messages (`Leases.take`): refused (`inbox_leased`) while a reader leases the
   * inbox, and a lease asked for meanwhile is granted after it.
   */
  asTake<T>(agent: AgentName, work: () => Promise<T>): Promise<T>;
}

export class Takes {
  #store: MessageStore;
  #shared: SharedInboxes | undefined;
  #commits: CommitQueue;
  #waiters: Waiters;
  #awaited: AwaitedReplies;
  #deliveries: Deliveries;
  #inboxFor: (agent: AgentName, use: AgentUse) => Promise<InboxRecord>;
  #whenLeaseEnds: TakesDeps["whenLeaseEnds"];
  #asTake: TakesDeps["asTake"];
  /** On a shared store: waiters are handed what is taken from the table for them. */
  #sharedWaiters: SharedWaiters | undefined;

  constructor(deps: TakesDeps) {
    this.#store = deps.store;
    this.#shared = deps.shared;
    this.#commits = deps.commits;
    this.#waiters = deps.waiters;
    this.#awaited = deps.awaited;
    this.#deliveries = deps.deliveries;
    this.#inboxFor = deps.inboxFor;
    this.#whenLeaseEnds = deps.whenLeaseEnds;
    this.#asTake = deps.asTake;
    if (deps.shared !== undefined) {
      this.#sharedWaiters = new SharedWaiters({
        waiters: deps.waiters,
        shared: deps.shared,
        inboxFor: (agent) => deps.inboxFor(agent, "send"),
        take: (agent, limit) => this.poll(agent, limit),
        tookOutOfOrder: (inbox, envelope) => deps.deliveries.tookOutOfOrder(inbox, envelope),
        whenLeaseEnds: deps.whenLeaseEnds,
      });
    }
  }

  /** On a shared store: hands `agent`'s waiters what the table has for them (see `SharedWaiters.serve`). */
  serveWaiters(agent: AgentName): void {
    void this.#sharedWaiters?.serve(agent);
  }

  /**
   * On a broker of its own, once a held reply is released (`AwaitedReplies`): hands `agent`'s waiters that take any
   * message what is pending, oldest first, one each, as a poll takes it. What was held back from them at its commit
   * is in the inbox, and no commit will hand it over. Each take is a take as the lease sees it (`Leases.take`): a peek
   * under a lease granted while it read would show what the waiter is handed, and while a lease is held what its
   * reader showed is its to take; the waiters are served once it ends.
   */
  async serveInOrder(agent: AgentName): Promise<void> {
    for (let hand = this.#waiters.reserve(agent, undefined); hand !== undefined; hand = this.#waiters.reserve(agent, undefined)) {
      let next: Envelope | undefined;
      try {
        [next] = await this.#asTake(agent, () => this.poll(agent, 1));
      } catch (error) {
        hand(undefined);
        if (isInboxLeased(error)) void this.#whenLeaseEnds(agent).then(() => this.serveInOrder(agent), () => {});
        return;
      }
      hand(next);
      if (next === undefined) return;
    }
  }

  /**
   * Takes up to `limit` undelivered messages for `agent` (the old read-and-clear), committed before returning;
   * with `shownUpTo`, none above that id (what a client already showed from a peek). With `answer`, only what fits
   * in it, encoded before the commit; once `clientGone` aborts, after the read, nothing is taken.
   */
  async poll(agent: AgentName, limit: number, { shownUpTo = Infinity, answer, clientGone, lease, leaseLost }: PollOptions = {}): Promise<Envelope[]> {
    const inbox = await this.#inboxFor(agent, "read");
    if (this.#shared !== undefined) {
      // The take reads and commits in one transaction: what fits is read first, and the take goes no further, in
      // count and in id, cut or not: a stale cursor or a late commit would let it take messages never measured.
      let upTo = shownUpTo;
      let most = limit;
      if (answer !== undefined) {
        const fits = await this.#readPending(inbox, limit, shownUpTo, answer);
        upTo = fits.at(-1)?.id ?? 0;
        most = fits.length;
      }
      if (clientGone?.aborted) most = 0;
      // Taking nothing needs no transaction, unless it ends the caller's lease; but it is refused, as a take would
      // be, while another reader holds one (as InboxLeases refuses it on a broker of its own).
      if (most === 0 && lease === undefined) return await this.#unlessLeased(agent);
      const taken = await settled(this.#shared.take(agent, most, upTo === Infinity ? undefined : upTo, lease, leaseLost));
      this.#deliveries.markDelivered(inbox, taken);
      return taken;
    }
    const after = inbox.deliveredId;
    // What it reads is held from expiry from the turn of each read until its take commits: encoding a large answer
    // gives other work turns, and an expiry step among them counted as expired what this poll then handed out.
    const releases: Array<() => void> = [];
    try {
      const held = (page: Envelope[]) => releases.push(this.#deliveries.hold(page.map((envelope) => envelope.id)));
      // Asked again in the turn that marks them delivered: another poll may have taken some while this one read (a
      // paged read awaits more than once, and even a single read's filter runs a turn before this).
      const taken = (await this.#readPending(inbox, limit, shownUpTo, answer, held)).filter(this.#deliveries.pendingIn(inbox, shownUpTo));
      if (taken.length === 0 || clientGone?.aborted) return [];
      await this.commitTake(inbox, taken, after);
      return taken;
    } finally {
      for (const release of releases) release();
    }
  }

  /**
   * On a broker of its own: records `taken`, read in order after `after` (the inbox's cursor then), as a poll's take:
   * counted delivered and marked taken in one commit, before resolving, so that no stream replays them. A commit that
   * fails leaves them pending.
   */
  async commitTake(inbox: InboxRecord, taken: Envelope[], after: number): Promise<void> {
    const upTo = taken[taken.length - 1].id;
    const before = { deliveredId: inbox.deliveredId, pending: inbox.pending };
    this.#deliveries.markDelivered(inbox, taken);
    try {
      await this.#commits.update({ agent: inbox.agent, deliveredId: upTo, polled: [{ after, upTo }] });
    } catch (error) {
      Object.assign(inbox, before);
      throw error;
    }
    // After the commit: a stream woken before it would read the taken messages again.
    this.#awaited.passed(inbox.agent);
  }

  /** What a take of nothing answers on a shared store: no messages, or 409 `inbox_leased` while a lease is held. */
  async #unlessLeased(agent: AgentName): Promise<Envelope[]> {
    const left = await this.#shared!.leaseLeft(agent);
    if (left !== undefined) throw inboxLeased(agent, Math.max(1, Math.ceil(left / 1000)));
    return [];
  }

  /** Up to `limit` undelivered messages for `agent`, oldest first, taking none of them; with `answer`, what fits in it. */
  async peek(agent: AgentName, limit: number, answer?: MessageAnswer): Promise<Envelope[]> {
    const inbox = await this.#inboxFor(agent, "read");
    // On a shared store this broker's cursor is the cluster view's, up to a second old: a stream on another broker
    // may have taken past it since, and the peek showed those as pending again (red team 57: `interop mcp` showed
    // the model what its listen had handed on). Takes judge by the store's cursor; a peek reads it first.
    if (this.#shared !== undefined) inbox.deliveredId = Math.max(inbox.deliveredId, (await this.#shared.version(agent)).deliveredId);
    return this.#readPending(inbox, limit, Infinity, answer);
  }

  /**
   * Takes message `id` of `agent`'s alone, out of order, committed before returning: what a leased reply wait
   * showed under `lease` (the store's take checks and ends it on a shared store; `Leases.take` does here).
   * Undefined when it is no longer pending (the wait held it from in-order readers until the lease ended: a stream,
   * which heeds no lease, may deliver it once the lease expired). With `answer`,
   * it is encoded into it before the take commits; once `clientGone` aborts, nothing is taken.
   */
  async takeOne(
    agent: AgentName,
    id: number,
    { lease, answer, clientGone, leaseLost }: Omit<PollOptions, "shownUpTo"> = {},
  ): Promise<Envelope | undefined> {
    const inbox = await this.#inboxFor(agent, "read");
    if (this.#shared !== undefined) {
      // Found by id, not read in order: an in-order read stops before a reply another waiter awaits. The store's
      // take judges whether it is still pending; asked even for no message, as it ends the caller's lease (no
      // message has id 0).
      const found = await this.#store.find(id).then((message) => message?.to === agent ? message : undefined);
      if (found !== undefined) answer?.fit([found]);
      const taken = await settled(this.#shared.takeOne(agent, clientGone?.aborted ? 0 : id, lease, leaseLost));
      if (!taken || found === undefined) return undefined;
      this.#deliveries.tookOutOfOrder(inbox, found);
      return found;
    }
    // From the store itself, not through `AwaitedReplies`: this is the take of the reply a wait awaited.
    const [message] = await this.#store.readAfter(agent, id - 1, 1);
    if (message?.id !== id) return undefined;
    answer?.fit([message]);
    // Looked at in the turn that marks it taken: a stream may have delivered it while the store read.
    if (!this.#deliveries.pendingIn(inbox)(message) || clientGone?.aborted) return undefined;
    this.#deliveries.taken.add(id);
    const release = this.#deliveries.hold([id]);
    try {
      await this.#commits.update({ agent, polled: [{ after: id - 1, upTo: id }] });
    } catch (error) {
      this.#deliveries.taken.delete(id);
      throw error;
    } finally {
      release();
    }
    this.#deliveries.tookOutOfOrder(inbox, message);
    this.#deliveries.taken.delete(id);
    this.#awaited.took(agent, id);
    return message;
  }

  /**
   * The oldest undelivered message for `agent`, or the next to arrive within `timeoutMs` (undefined if none).
   * It is taken, as by a poll: no stream or poll delivers it again. Once `clientGone` aborts, nothing is taken:
   * what arrives later stays in the inbox.
   */
  async wait(agent: AgentName, timeoutMs: number, clientGone?: AbortSignal): Promise<Envelope | undefined> {
    if (clientGone?.aborted) return undefined;
    if (this.#shared !== undefined) {
      // Waiting first: a message committed on another broker while this one looks is then woken for.
      await this.#inboxFor(agent, "read");
      const waiting = this.#waiters.wait(agent, undefined, timeoutMs, clientGone);
      this.serveWaiters(agent);
      return await waiting;
    }
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      try {
        // A take as the lease sees it: a peek under a lease granted while this one read showed what it took.
        const [pending] = await this.#asTake(agent, () => this.poll(agent, 1, { clientGone }));
        return pending ?? await this.#waiters.wait(agent, undefined, msUntil(deadline), clientGone);
      } catch (error) {
        if (!isInboxLeased(error)) throw error;
      }
      // Leased since the caller waited for the inbox to be free: what its reader shows is its to take first.
      const until = AbortSignal.any([AbortSignal.timeout(msUntil(deadline)), ...(clientGone ? [clientGone] : [])]);
      await this.#whenLeaseEnds(agent, until);
      if (until.aborted) return undefined;
    }
  }

  /**
   * Up to `limit` of the inbox's undelivered messages, none above `shownUpTo`; with `answer`, what fits in it.
   * `onRead` hears each read of the store in the turn it was made.
   */
  #readPending(
    inbox: InboxRecord,
    limit: number,
    shownUpTo: number,
    answer: MessageAnswer | undefined,
    onRead: (page: Envelope[]) => void = () => {},
  ): Promise<Envelope[]> {
    const after = inbox.deliveredId;
    const keep = this.#deliveries.pendingIn(inbox, shownUpTo);
    // A take up to what its client showed takes what it showed (`interop poll`'s peek, perhaps from before a wait
    // awaited a reply among it), as a lease holder's take on a shared store does; every other read stops before it.
    const readAfter = async (afterId: number, count: number, maxChars?: number) => {
      const page = shownUpTo === Infinity
        ? await this.#awaited.readAfter(inbox.agent, afterId, count, maxChars)
        : await this.#store.readAfter(inbox.agent, afterId, count, maxChars);
      onRead(page);
      return page;
    };
    return answer === undefined ? readAfter(after, limit).then((read) => read.filter(keep)) : answer.read(readAfter, after, limit, keep);
  }
}

