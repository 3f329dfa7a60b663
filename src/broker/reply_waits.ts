/**
 * Waits for the reply to a given message (`/ask`, `/wait?reply_to=`, a leased reply wait): the reply is found wherever
 * it is in the inbox, held from in-order readers while its wait lasts, and taken out of order.
 */
import type { AgentName, Envelope } from "../message.ts";
import { type InboxRecord, isInboxLeased, type MessageStore, type SharedInboxes } from "../store/store.ts";
import type { AgentUse } from "./agent_admission.ts";
import type { AwaitedReplies } from "./awaited_replies.ts";
import type { Deliveries } from "./deliveries.ts";
import type { MessageAnswer } from "./message_answer.ts";
import { ReplyHolds } from "./reply_holds.ts";
import { REPLY_SCAN } from "./shared_waiters.ts";
import type { Waiters } from "./waiters.ts";

/** Replies read at a time while looking for the oldest pending one: the first is nearly always it. */
const REPLY_PAGE = 4;

export interface ReplyWaitsDeps {
  store: MessageStore;
  /** Set when other brokers share the store: the reply may be published, and read, through any of them. */
  shared: SharedInboxes | undefined;
  waiters: Waiters;
  /** On a broker of its own: the replies waits await, kept from in-order readers (a shared store keeps them itself). */
  awaited: AwaitedReplies;
  deliveries: Deliveries;
  inboxFor(agent: AgentName, use: AgentUse): Promise<InboxRecord>;
  /** On a shared store: hands `agent`'s waiters what the table has for them (`Takes.serveWaiters`). */
  serveWaiters(agent: AgentName): void;
  /** Resolves once no reader holds a lease on `agent`'s inbox. */
  whenLeaseEnds(agent: AgentName): Promise<void>;
  /**
   * Runs `work` as a take of `agent`'s messages (`Leases.take`): refused (`inbox_leased`) while a reader leases the
   * inbox, and a lease asked for meanwhile is granted after it.
   */
  asTake<T>(agent: AgentName, work: () => Promise<T>): Promise<T>;
}

export class ReplyWaits {
  #store: MessageStore;
  #shared: SharedInboxes | undefined;
  #waiters: Waiters;
  #awaited: AwaitedReplies;
  #deliveries: Deliveries;
  #inboxFor: (agent: AgentName, use: AgentUse) => Promise<InboxRecord>;
  #serveWaiters: (agent: AgentName) => void;
  #whenLeaseEnds: (agent: AgentName) => Promise<void>;
  #asTake: ReplyWaitsDeps["asTake"];
  /** Replies held from their question's commit until a leased reply wait takes the hold over (`holdFromCommit`). */
  #holds = new ReplyHolds();

  constructor(deps: ReplyWaitsDeps) {
    this.#store = deps.store;
    this.#shared = deps.shared;
    this.#waiters = deps.waiters;
    this.#awaited = deps.awaited;
    this.#deliveries = deps.deliveries;
    this.#inboxFor = deps.inboxFor;
    this.#serveWaiters = deps.serveWaiters;
    this.#whenLeaseEnds = deps.whenLeaseEnds;
    this.#asTake = deps.asTake;
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
      // Once the wait's own hold is in place, a hold from the question's commit ends: the wait's rules apply.
      this.#holds.end(agent, questionId);
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

  /**
   * Holds the reply to `agent`'s message `questionId` from the inbox's in-order readers from its question's commit,
   * for `holdMs` or until a leased reply wait for it takes the hold over (`awaitingReply`); `recorded` is a shared
   * store's record of the wait (`publishQuestion`), ended with the hold.
   */
  holdFromCommit(agent: AgentName, questionId: number, holdMs: number, recorded: Promise<string | undefined> | undefined): void {
    const release = this.holdReply(agent, questionId);
    this.#holds.add(agent, questionId, holdMs, () => {
      release();
      void recorded?.then((record) => record === undefined ? undefined : this.#shared!.endAwait(agent, record)).catch(() => {});
    });
  }

  /**
   * Calls `ended` once the hold from the commit of `agent`'s question `questionId` ends, however it ends; returns the
   * function that ends it (its token was revoked: the reply, and all after it, then reach the agent's new token's
   * readers), undefined when it is not held (see `ReplyHolds.whenEnded`).
   */
  whenHoldEnds(agent: AgentName, questionId: number, ended: () => void): (() => void) | undefined {
    return this.#holds.whenEnded(agent, questionId, ended);
  }

  /**
   * `agent` was removed: the holds from its questions' commits end. Kept, they held a reply to the inbox made again
   * under the name (and all after it) from every reader for up to `hold_reply`'s hour.
   */
  removed(agent: AgentName): void {
    this.#holds.endAll(agent);
  }

  /** The broker stops: the holds from questions' commits end without a release (see `ReplyHolds.close`). */
  close(): void {
    this.#holds.close();
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
      this.#serveWaiters(agent);
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
    const reply = found !== undefined && this.#deliveries.pendingIn(inbox)(found) ? found : undefined;
    const hand = reply === undefined ? undefined : this.#waiters.reserve(inbox.agent, questionId);
    if (hand === undefined) return;
    this.#deliveries.take(reply!);
    hand(reply);
    this.#awaited.took(inbox.agent, reply!.id);
  }

  /**
   * The oldest pending reply to `agent`'s message `questionId` in the store (a broker of its own), read a few at a
   * time, up to REPLY_SCAN: read at once, 300 replies of 1 MiB to one question were read to show or hand out the
   * first (one leased reply wait: the event loop held 12 s, the broker's RSS from 120 to 738 MB).
   */
  async #oldestReply(inbox: InboxRecord, questionId: number): Promise<Envelope | undefined> {
    const pending = this.#deliveries.pendingIn(inbox);
    for (let after = inbox.deliveredId, scanned = 0; scanned < REPLY_SCAN;) {
      const page = await this.#store.readReplies(inbox.agent, questionId, after, REPLY_PAGE);
      const reply = page.find(pending);
      if (reply !== undefined || page.length < REPLY_PAGE) return reply;
      after = page[page.length - 1].id;
      scanned += page.length;
    }
    return undefined;
  }

}
