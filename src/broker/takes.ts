/**
 * Taking messages out of inboxes: polls, peeks, waits and waits for a reply, and the bookkeeping every delivery
 * shares (the inbox's cursor, messages taken out of order, repeats counted).
 */
import type { AgentName, Envelope } from "../message.ts";
import { type InboxRecord, inboxLeased, isInboxLeased, type MessageStore, type SharedInboxes } from "../store/store.ts";
import type { AgentUse } from "./agent_admission.ts";
import type { AwaitedReplies } from "./awaited_replies.ts";
import type { CommitQueue } from "./commit_queue.ts";
import type { MessageAnswer } from "./message_answer.ts";
import type { Observers } from "./observers.ts";
import { messagesPerRead } from "./read_pages.ts";
import { REPLY_SCAN, settled, SharedWaiters } from "./shared_waiters.ts";
import type { Waiters } from "./waiters.ts";

/** Replies read at a time while looking for the oldest pending one: the first is nearly always it. */
const REPLY_PAGE = 4;

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
  /** The broker's inbox records. */
  records: Map<AgentName, InboxRecord>;
  waiters: Waiters;
  /** Where messages taken out of order are kept until their take commits (`Takes.taken`). */
  taken: Set<number>;
  /** On a broker of its own: the replies waits await, kept from in-order readers (a shared store keeps them itself). */
  awaited: AwaitedReplies;
  observers: Observers;
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
  /** `serve --max-body-bytes` (DEFAULT_MAX_BODY_BYTES when unset): a shared store's read of replies is bounded by it. */
  maxMessageBytes?: number;
}

export class Takes {
  #store: MessageStore;
  #shared: SharedInboxes | undefined;
  #commits: CommitQueue;
  #records: Map<AgentName, InboxRecord>;
  #waiters: Waiters;
  #awaited: AwaitedReplies;
  #observers: Observers;
  #inboxFor: (agent: AgentName, use: AgentUse) => Promise<InboxRecord>;
  #whenLeaseEnds: TakesDeps["whenLeaseEnds"];
  #asTake: TakesDeps["asTake"];
  /** On a shared store: waiters are handed what is taken from the table for them. */
  #sharedWaiters: SharedWaiters | undefined;
  /** Messages taken out of order by a wait, above their inbox's cursor: streams and polls skip them. */
  readonly taken: Set<number>;
  /** Messages written to a stream again (a resume from before them), per agent since the broker started. */
  #redelivered = new Map<AgentName, number>();

  constructor(deps: TakesDeps) {
    this.#store = deps.store;
    this.#shared = deps.shared;
    this.#commits = deps.commits;
    this.#records = deps.records;
    this.#waiters = deps.waiters;
    this.taken = deps.taken;
    this.#awaited = deps.awaited;
    this.#observers = deps.observers;
    this.#inboxFor = deps.inboxFor;
    this.#whenLeaseEnds = deps.whenLeaseEnds;
    this.#asTake = deps.asTake;
    if (deps.shared !== undefined) {
      this.#sharedWaiters = new SharedWaiters({
        waiters: deps.waiters,
        shared: deps.shared,
        inboxFor: (agent) => deps.inboxFor(agent, "send"),
        take: (agent, limit) => this.poll(agent, limit),
        tookOutOfOrder: (inbox, envelope) => this.#tookOutOfOrder(inbox, envelope),
        whenLeaseEnds: deps.whenLeaseEnds,
        repliesPerRead: messagesPerRead(REPLY_SCAN, deps.maxMessageBytes),
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

  /** Messages written again to `agent`'s streams since the broker started. */
  redelivered(agent: AgentName): number {
    return this.#redelivered.get(agent) ?? 0;
  }

  /** Forgets a removed agent's count of repeats. */
  forget(agent: AgentName): void {
    this.#redelivered.delete(agent);
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
      this.markDelivered(inbox, taken);
      return taken;
    }
    const after = inbox.deliveredId;
    // Asked again in the turn that marks them delivered: another poll may have taken some while this one read (a
    // paged read awaits more than once, and even a single read's filter runs a turn before this).
    const taken = (await this.#readPending(inbox, limit, shownUpTo, answer)).filter(this.#pendingIn(inbox, shownUpTo));
    if (taken.length === 0 || clientGone?.aborted) return [];
    const upTo = taken[taken.length - 1].id;
    const before = { deliveredId: inbox.deliveredId, pending: inbox.pending };
    this.markDelivered(inbox, taken);
    try {
      await this.#commits.update({ agent, deliveredId: upTo, polled: [{ after, upTo }] });
    } catch (error) {
      Object.assign(inbox, before);
      throw error;
    }
    // After the commit: a stream woken before it would read the taken messages again.
    this.#awaited.passed(agent);
    return taken;
  }

  /** What a take of nothing answers on a shared store: no messages, or 409 `inbox_leased` while a lease is held. */
  async #unlessLeased(agent: AgentName): Promise<Envelope[]> {
    const left = await this.#shared!.leaseLeft(agent);
    if (left !== undefined) throw inboxLeased(agent, Math.max(1, Math.ceil(left / 1000)));
    return [];
  }

  /** Up to `limit` undelivered messages for `agent`, oldest first, taking none of them; with `answer`, what fits in it. */
  async peek(agent: AgentName, limit: number, answer?: MessageAnswer): Promise<Envelope[]> {
    return this.#readPending(await this.#inboxFor(agent, "read"), limit, Infinity, answer);
  }

  /**
   * The reply to `agent`'s message `questionId` if it is pending, taking nothing; with `answer`, encoded into it (and
   * held to its memory for answers, as a peek's messages are). What a leased reply wait shows.
   */
  async peekReply(agent: AgentName, questionId: number, answer?: MessageAnswer): Promise<Envelope | undefined> {
    const inbox = await this.#inboxFor(agent, "read");
    const reply = this.#shared !== undefined
      ? (await this.#shared.pendingReplies(agent, new Map([[questionId, 1]]), 1))[0]
      : await this.#oldestReply(inbox, questionId);
    if (reply !== undefined) answer?.fit([reply]);
    return reply;
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
      this.#tookOutOfOrder(inbox, found);
      return found;
    }
    // From the store itself, not through `AwaitedReplies`: this is the take of the reply a wait awaited.
    const [message] = await this.#store.readAfter(agent, id - 1, 1);
    if (message?.id !== id) return undefined;
    answer?.fit([message]);
    // Looked at in the turn that marks it taken: a stream may have delivered it while the store read.
    if (!this.#pendingIn(inbox, Infinity)(message) || clientGone?.aborted) return undefined;
    this.taken.add(id);
    try {
      await this.#commits.update({ agent, polled: [{ after: id - 1, upTo: id }] });
    } catch (error) {
      this.taken.delete(id);
      throw error;
    }
    this.#tookOutOfOrder(inbox, message);
    this.taken.delete(id);
    this.#awaited.took(agent, id);
    return message;
  }

  /**
   * Runs `work` (a leased wait for the reply to `questionId`) with the reply recorded as awaited, so that no in-order
   * reader takes it before `work` shows it: on a shared store, on any broker (see `#waitForSharedReply`). The hold
   * lasts until what `keep` returns for `work`'s result resolves (the lease the reply was shown under ended: its
   * client took it, or left it), or with `work` when it returns none; a reply left untaken is then an ordinary
   * message. A shared store's record holds for `holdMs` at most (the wait's timeout and its lease's length).
   */
  async awaitingReply<T>(
    agent: AgentName,
    questionId: number,
    holdMs: number,
    work: () => Promise<T>,
    keep?: (result: T) => Promise<void> | undefined,
  ): Promise<T> {
    const release = await this.#holdAwaited(agent, questionId, holdMs);
    let kept: Promise<void> | undefined;
    try {
      const result = await work();
      kept = keep?.(result);
      return result;
    } finally {
      if (kept === undefined) release();
      else void kept.then(release, release);
    }
  }

  /**
   * Holds the reply to `agent`'s message `questionId` from in-order readers until the returned function is called:
   * here (`AwaitedReplies`), or on a shared store by a record for `holdMs` at most.
   */
  async #holdAwaited(agent: AgentName, questionId: number, holdMs: number): Promise<() => void> {
    if (this.#shared === undefined) return this.#awaited.hold(agent, questionId);
    const shared = this.#shared;
    const record = await this.recordAwait(agent, questionId, holdMs);
    return () => {
      if (record !== undefined) void shared.endAwait(agent, record).catch(() => {});
    };
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
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        // A take as the lease sees it: a peek under a lease granted while this one read showed what it took.
        const [pending] = await this.#asTake(agent, () => this.poll(agent, 1, { clientGone }));
        return pending ?? await this.#waiters.wait(agent, undefined, Math.max(0, deadline - Date.now()), clientGone);
      } catch (error) {
        if (!isInboxLeased(error)) throw error;
      }
      // Leased since the caller waited for the inbox to be free: what its reader shows is its to take first.
      const until = AbortSignal.any([AbortSignal.timeout(Math.max(0, deadline - Date.now())), ...(clientGone ? [clientGone] : [])]);
      await this.#whenLeaseEnds(agent, until);
      if (until.aborted) return undefined;
    }
  }

  /**
   * The reply to `agent`'s message `questionId`: taken out of order if it is already pending, else the next to
   * arrive within `timeoutMs` (undefined if none; once `clientGone` aborts, nothing is taken). An ask in long polls
   * of its own, for a client that must never hang one up: `interop mcp`, whose ask a cancel would otherwise cut in
   * the moment its reply was handed over.
   */
  async waitForReply(
    agent: AgentName,
    questionId: number,
    timeoutMs: number,
    clientGone?: AbortSignal,
    recorded?: Promise<string | undefined>,
  ): Promise<Envelope | undefined> {
    if (this.#shared !== undefined) return await this.#waitForSharedReply(agent, questionId, timeoutMs, clientGone, recorded);
    if (clientGone?.aborted) return undefined;
    const release = this.holdReply(agent, questionId);
    try {
      return await this.#waitForOwnReply(agent, questionId, timeoutMs, clientGone);
    } finally {
      release();
    }
  }

  /**
   * Holds the reply to `agent`'s message `questionId` from the inbox's in-order readers until the returned function
   * is called, on a broker of its own (`AwaitedReplies`); a shared store's waits record it there instead (`recordAwait`).
   */
  holdReply(agent: AgentName, questionId: number): () => void {
    return this.#shared === undefined ? this.#awaited.hold(agent, questionId) : () => {};
  }

  async #waitForOwnReply(agent: AgentName, questionId: number, timeoutMs: number, clientGone?: AbortSignal): Promise<Envelope | undefined> {
    const inbox = await this.#inboxFor(agent, "read");
    // A hand-off that failed ends the wait with its error: a waiter left behind would take a reply no one reads.
    const failure = new AbortController();
    let failed: { error: unknown } | undefined;
    const ended = clientGone === undefined ? failure.signal : AbortSignal.any([clientGone, failure.signal]);
    // Waiting first: a reply committed while the inbox is looked through is handed to the waiter, not missed.
    const waiting = this.#waiters.wait(agent, questionId, timeoutMs, ended);
    await this.#handPendingReply(inbox, questionId, (error) => {
      failed = { error };
      failure.abort();
    });
    const reply = await waiting;
    if (reply === undefined && failed !== undefined) throw failed.error;
    return reply;
  }

  /**
   * On a shared store, records at once that `agent` awaits the reply to `questionId` for `timeoutMs` (see
   * `#waitForSharedReply`), for a `waitForReply` that begins later and ends the record; undefined on a store of its own.
   */
  recordAwait(agent: AgentName, questionId: number, timeoutMs: number): Promise<string | undefined> | undefined {
    if (this.#shared === undefined) return undefined;
    // Named here, and ended with the wait even when its write failed: a write whose answer was lost with its
    // connection may have committed, and would hold the reply from the inbox's readers on every broker until
    // `timeoutMs` passed (an /ask's or a /wait's whole timeout, up to an hour), long after its wait.
    const id = crypto.randomUUID();
    return this.#shared.awaitReply(agent, questionId, timeoutMs, id).then(() => id, () => id);
  }

  /**
   * On a shared store, the reply may be published through any broker and read there first: recorded in the store as
   * awaited (`recorded`, made by `recordAwait` before the wait, or here), it is left to this waiter by every in-order
   * reader until the wait ends. Without the record (the store failed to write it) the wait goes on as before, a
   * reader elsewhere perhaps taking the reply first.
   */
  async #waitForSharedReply(
    agent: AgentName,
    questionId: number,
    timeoutMs: number,
    clientGone: AbortSignal | undefined,
    recorded: Promise<string | undefined> | undefined,
  ): Promise<Envelope | undefined> {
    const shared = this.#shared!;
    let record: string | undefined;
    if (recorded !== undefined) record = await recorded;
    else if (!clientGone?.aborted) {
      await this.#inboxFor(agent, "read");
      record = await this.recordAwait(agent, questionId, timeoutMs);
    }
    try {
      if (clientGone?.aborted) return undefined;
      // Waiting before the look through the table: a reply committed meanwhile is woken for, not missed.
      const waiting = this.#waiters.wait(agent, questionId, timeoutMs, clientGone);
      this.serveWaiters(agent);
      return await waiting;
    } finally {
      if (record !== undefined) void shared.endAwait(agent, record).catch(() => {});
    }
  }

  /**
   * A reply to `questionId` already in the inbox (it came between two waits for it), handed to its waiter; not
   * from under another reader's lease (that reader may have shown it, and takes it with its page): tried again
   * once the lease ends, as a shared store's waiters are served again. A store error, now or on the try after the
   * lease, goes to `fail`: the waiter is answered it (503) rather than waiting out its timeout.
   */
  async #handPendingReply(inbox: InboxRecord, questionId: number, fail: (error: unknown) => void): Promise<void> {
    try {
      await this.#asTake(inbox.agent, () => this.#handPending(inbox, questionId));
    } catch (error) {
      if (!isInboxLeased(error)) return fail(error);
      void this.#whenLeaseEnds(inbox.agent).then(() => this.#handPendingReply(inbox, questionId, fail), fail);
    }
  }

  async #handPending(inbox: InboxRecord, questionId: number): Promise<void> {
    const found = await this.#oldestReply(inbox, questionId);
    // Looked at again in the turn that takes it: a poll or a stream may have delivered it meanwhile.
    const reply = found !== undefined && this.#pendingIn(inbox, Infinity)(found) ? found : undefined;
    const hand = reply === undefined ? undefined : this.#waiters.reserve(inbox.agent, questionId);
    if (hand === undefined) return;
    this.take(reply!);
    hand(reply);
    this.#awaited.took(inbox.agent, reply!.id);
  }

  /**
   * The oldest pending reply to `agent`'s message `questionId` in the store (a broker of its own), read a few at a
   * time, up to REPLY_SCAN: read at once, 300 replies of 1 MiB to one question were read to show or hand out the
   * first (one leased reply wait: the event loop held 12 s, the broker's RSS from 120 to 738 MB).
   */
  async #oldestReply(inbox: InboxRecord, questionId: number): Promise<Envelope | undefined> {
    const pending = this.#pendingIn(inbox, Infinity);
    for (let after = inbox.deliveredId, scanned = 0; scanned < REPLY_SCAN;) {
      const page = await this.#store.readReplies(inbox.agent, questionId, after, REPLY_PAGE);
      const reply = page.find(pending);
      if (reply !== undefined || page.length < REPLY_PAGE) return reply;
      after = page[page.length - 1].id;
      scanned += page.length;
    }
    return undefined;
  }

  /** Counts a message taken out of order (by a wait for a reply) as delivered. */
  #tookOutOfOrder(inbox: InboxRecord, envelope: Envelope): void {
    if (inbox.pending > 0) inbox.pending--;
    this.#observers.delivered(envelope);
  }

  /** Marks a message handed to a waiter as delivered, out of order if need be. */
  take(envelope: Envelope): void {
    const inbox = this.#records.get(envelope.to)!;
    this.taken.add(envelope.id);
    this.#tookOutOfOrder(inbox, envelope);
    // Once committed, the store leaves it out of every read; until then, memory does.
    this.#commits.update({ agent: envelope.to, polled: [{ after: envelope.id - 1, upTo: envelope.id }] }).then(
      () => this.taken.delete(envelope.id),
      () => {
        // Not committed: after a crash it would be delivered once more to the inbox's reader.
      },
    );
  }

  /** Up to `limit` of the inbox's undelivered messages, none above `shownUpTo`; with `answer`, what fits in it. */
  #readPending(inbox: InboxRecord, limit: number, shownUpTo: number, answer: MessageAnswer | undefined): Promise<Envelope[]> {
    const after = inbox.deliveredId;
    const keep = this.#pendingIn(inbox, shownUpTo);
    // A take up to what its client showed takes what it showed (`interop poll`'s peek, perhaps from before a wait
    // awaited a reply among it), as a lease holder's take on a shared store does; every other read stops before it.
    const readAfter = (afterId: number, count: number) =>
      shownUpTo === Infinity ? this.#awaited.readAfter(inbox.agent, afterId, count) : this.#store.readAfter(inbox.agent, afterId, count);
    return answer === undefined ? readAfter(after, limit).then((read) => read.filter(keep)) : answer.read(readAfter, after, limit, keep);
  }

  /** Whether a message is still undelivered in `inbox` (and not above `shownUpTo`), as of now. */
  #pendingIn(inbox: InboxRecord, shownUpTo: number): (envelope: Envelope) => boolean {
    return (envelope) => envelope.id > inbox.deliveredId && envelope.id <= shownUpTo && !this.taken.has(envelope.id);
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
      this.#observers.delivered(envelope);
      advanced = true;
    }
    // A lost cursor update only means a client without Last-Event-ID may see these again after a crash. A shared
    // store's cursor was moved by the take or claim itself.
    if (advanced && this.#shared === undefined) this.#commits.note({ agent: inbox.agent, deliveredId: inbox.deliveredId });
    if (repeated > 0) {
      this.#redelivered.set(inbox.agent, (this.#redelivered.get(inbox.agent) ?? 0) + repeated);
      this.#observers.redelivered(inbox.agent, repeated);
    }
  }
}
