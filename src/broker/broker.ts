/** The broker: publish, poll, stream and status over one durable inbox per agent. Knows the store only by its interface. */
import type { AgentUse } from "./agent_admission.ts";
import { AgentInboxes } from "./agent_inboxes.ts";
import { AnswerMemory } from "./answer_memory.ts";
import { AwaitedReplies } from "./awaited_replies.ts";
import { BrokerStatus } from "./broker_status.ts";
import { watchCluster } from "./cluster_watch.ts";
import { ask, type AskDeps, type Asked, publishHoldingReply, publishQuestion, type Question } from "./asks.ts";
import type { BrokerOptions } from "./broker_options.ts";
import { DeadLetters } from "./dead_letters.ts";
import { type HistoryEntry, readHistory } from "./history.ts";
import { Deliveries } from "./deliveries.ts";
import type { AgentName, Envelope, Payload } from "../message.ts";
import type { StatusReport } from "../status_report.ts";
import type { InboxRecord, MessageStore, SharedInboxes } from "../store/store.ts";
import { CommitQueue } from "./commit_queue.ts";
import type { StreamFormat } from "./stream_format.ts";
import { IdempotentPublishes } from "./idempotent_publishes.ts";
import { InboxLeases, type Leases, MAX_LEASE_SECONDS } from "./inbox_leases.ts";
import { DEFAULT_ANSWER_BUDGET, MessageAnswer } from "./message_answer.ts";
import { MessageTasks } from "./message_tasks.ts";
import { type BrokerObserver, Observers } from "./observers.ts";
import { type PublishOptions, type Published, Publishes } from "./publishes.ts";
import { RateLimiter } from "./rate_limiter.ts";
import { ReplyWaits } from "./reply_waits.ts";
import { replay } from "./replay.ts";
import { refuseUnanswerable } from "./replies.ts";
import { ScheduledRetention } from "./scheduled_retention.ts";
import { StoreLeases } from "./store_leases.ts";
import type { StreamStart } from "./stream_start.ts";
import { type PreparedStream, Streams } from "./streams.ts";
import { type PollOptions, Takes } from "./takes.ts";
import { Waiters } from "./waiters.ts";

export type { HistoryEntry } from "./history.ts";
export type { PublishOptions, Published, RefusedRecipient } from "./publishes.ts";
export type { PreparedStream, StreamStarter } from "./streams.ts";
export type { PollOptions } from "./takes.ts";

export class Broker {
  #options: BrokerOptions;
  #store: MessageStore;
  #commits: CommitQueue;
  #inboxes = new Map<AgentName, InboxRecord>();
  #streams: Streams;
  #waiters = new Waiters();
  /** On a broker of its own: the replies waits await, held from the inboxes' in-order readers. */
  #awaited: AwaitedReplies;
  #observers = new Observers();
  /** What /status reports, gathered from the parts. */
  #status: BrokerStatus;
  #stopping = new AbortController();
  #answerMemory = new AnswerMemory();
  /** What the A2A layer asks of the messages it shows as tasks. */
  readonly tasks: MessageTasks;
  /** Messages push receivers refused for good. */
  readonly deadLetters: DeadLetters;
  /** Leases on inboxes for readers that show messages before they take them (`interop poll`). */
  readonly leases: Leases;
  /** The same leases when this broker keeps them (its store's only one), for retention to ask. */
  readonly #ownLeases: InboxLeases | undefined;
  #idempotent: IdempotentPublishes;
  #retention: ScheduledRetention;
  #publishes: Publishes;
  #askDeps: AskDeps;
  /** The delivery bookkeeping polls, waits, streams and replays share. */
  #deliveries: Deliveries;
  /** Polls, peeks and waits. */
  #takes: Takes;
  /** Waits for the reply to a given message. */
  #replyWaits: ReplyWaits;
  #lastId: number;
  #timers: ReturnType<typeof setInterval>[] = [];
  #now: () => number;
  /**
   * Other brokers write to the store too: cursors are the store's, taken with compare-and-set, and streams and
   * waiters read the table when woken instead of taking what this broker's commits offer.
   */
  #shared: SharedInboxes | undefined;
  /** The inbox records and what creates, touches and removes them. */
  #agents: AgentInboxes;

  private constructor(options: BrokerOptions, inboxes: InboxRecord[], lastId: number) {
    this.#options = options;
    this.#store = options.store;
    this.#commits = new CommitQueue(options.store, (stored) => this.#committed(stored), (agent) => this.#inboxes.has(agent));
    this.#idempotent = new IdempotentPublishes(options.store);
    this.#now = options.now ?? Date.now;
    this.#shared = options.store.shared;
    this.#deliveries = new Deliveries({
      commits: this.#commits,
      records: this.#inboxes,
      observers: this.#observers,
      shared: this.#shared !== undefined,
      stopping: this.#stopping.signal,
    });
    this.#awaited = new AwaitedReplies({
      store: options.store,
      taken: this.#deliveries.taken,
      pending: (agent, id) => this.#deliveries.isPending(agent, id),
      released: (agent) => {
        this.#streams.wake([agent]);
        void this.#takes.serveInOrder(agent);
        // Leased waits that found nothing before the reply look again.
        this.#observers.woken([agent]);
      },
    });
    // What polls, waits and waits for a reply read inboxes with.
    const reads = {
      store: options.store,
      shared: this.#shared,
      waiters: this.#waiters,
      awaited: this.#awaited,
      deliveries: this.#deliveries,
      inboxFor: (agent: AgentName, use: AgentUse) => this.#agents.inboxFor(agent, use),
      whenLeaseEnds: (agent: AgentName, until?: AbortSignal) =>
        this.leases.whenFree(agent, until ?? AbortSignal.timeout(MAX_LEASE_SECONDS * 1000)),
      asTake: <T>(agent: AgentName, work: () => Promise<T>) => this.leases.take(agent, undefined, work),
    };
    this.#takes = new Takes({ ...reads, commits: this.#commits });
    this.#replyWaits = new ReplyWaits({
      ...reads,
      serveWaiters: (agent) => this.#takes.serveWaiters(agent),
    });
    this.#streams = new Streams({
      store: options.store,
      readInOrder: (agent, afterId, limit, maxChars) => this.#awaited.readAfter(agent, afterId, limit, maxChars),
      inboxFor: (agent) => this.#agents.inboxFor(agent, "read"),
      readAsHolder: (agent, hadInboxOn) => this.#agents.readAsHolder(agent, hadInboxOn),
      currentInbox: (agent) => this.#inboxes.get(agent),
      lastId: () => this.#lastId,
      sawId: (id) => (this.#lastId = Math.max(this.#lastId, id)),
      isTaken: (id) => this.#deliveries.taken.has(id),
      delivered: (inbox, envelopes) => this.#deliveries.markDelivered(inbox, envelopes),
      ended: (agent) => this.#agents.touch(agent),
      // With the cursor notes: at a kill -9 both are at most ADVISORY_DELAY_MS late. A shared store's window stays in
      // each broker's memory (a resume may come to another broker anyway).
      replayPoint: (agent, replay) => {
        if (this.#shared === undefined) this.#commits.note({ agent, replay: replay ?? null });
      },
      secondStream: options.secondStream ?? "replace",
      writeTimeoutMs: options.writeTimeoutMs,
      resumeWindowMs: options.resumeWindowMs ?? 0,
      heartbeatMs: options.heartbeatMs,
    });
    this.#agents = new AgentInboxes({
      store: options.store,
      commits: this.#commits,
      records: this.#inboxes,
      admitAgent: options.admitAgent,
      lastId: () => this.#lastId,
      streaming: (agent) => this.#streams.has(agent),
      forget: (agent) => {
        this.#streams.removed(agent);
        this.#deliveries.forget(agent);
        this.leases.forget(agent);
        this.#replyWaits.removed(agent);
      },
      now: this.#now,
    });
    this.tasks = new MessageTasks({
      store: options.store,
      commits: this.#commits,
      agents: this.#agents,
      deliveries: this.#deliveries,
      now: this.#now,
      maxMessageBytes: options.maxMessageBytes,
      asTake: (agent, work) => this.leases.take(agent, undefined, work),
    });
    this.#publishes = new Publishes({
      store: options.store,
      commits: this.#commits,
      records: this.#inboxes,
      agents: this.#agents,
      rateLimiter: new RateLimiter(options.rateLimit ?? 0, (options.rateLimit ?? 0) * 2, options.now),
      observers: this.#observers,
      maxPending: options.maxPending,
      maxHops: options.maxHops,
      shared: this.#shared !== undefined,
      now: this.#now,
    });
    this.#askDeps = {
      shared: this.#shared,
      waiters: this.#waiters,
      replies: this.#replyWaits,
      inboxFor: (agent) => this.#agents.inboxFor(agent, "read"),
      publish: (from, to, payload, publishOptions) => this.publish(from, to, payload, publishOptions),
    };
    // On a shared store the store keeps them, or a reader's lease would hold only on the broker it asked.
    if (this.#shared === undefined) {
      this.#ownLeases = new InboxLeases();
      this.leases = this.#ownLeases;
    } else {
      this.#ownLeases = undefined;
      this.leases = new StoreLeases(this.#shared, (agent) => this.#agents.inboxFor(agent, "read"), this.#stopping.signal);
    }
    this.deadLetters = new DeadLetters({
      store: options.store,
      agents: this.#agents,
      observers: this.#observers,
      now: this.#now,
      publish: (from, to, payload, publishOptions) => this.publish(from, to, payload, publishOptions),
      mayBePending: (agent, id) => this.#deliveries.isPending(agent, id),
      takeOne: (agent, id) => this.takeOne(agent, id),
      unleased: (agent, work) => this.leases.unleased(agent, work),
    });
    this.#lastId = lastId;
    this.#status = new BrokerStatus({
      dataDir: options.dataDir,
      store: options.store,
      inboxes: this.#inboxes,
      lastId: () => this.#lastId,
      streaming: (agent) => this.#streams.has(agent),
      waiting: (agent) => this.#waiters.count(agent),
      redelivered: (agent) => this.#deliveries.redelivered(agent),
      cluster: () => this.#agents.cluster,
      lookAgain: this.#shared === undefined ? undefined : () => this.#agents.lookAgain(),
      now: this.#now,
    });
    for (const inbox of inboxes) this.#inboxes.set(inbox.agent, inbox);
    this.#retention = new ScheduledRetention({
      options,
      inboxes: this.#inboxes,
      shared: this.#shared !== undefined,
      leased: (agent) => this.#ownLeases?.held(agent) ?? false,
      taking: () => this.#deliveries.committing(),
      expired: (agent, count) => {
        this.#observers.expired(agent, count);
        // A store that cannot say what went keeps the stop until the reply's wait ends, as before.
        void this.#awaited.expired(agent).catch(() => {});
      },
      now: this.#now,
    });
  }

  /** Loads the inboxes from the store and makes sure the configured agents have one. */
  static async open(options: BrokerOptions): Promise<Broker> {
    const [inboxes, lastId, replayPoints] = await Promise.all([
      options.store.loadInboxes(),
      options.store.lastId(),
      options.store.loadReplayPoints?.(),
    ]);
    const broker = new Broker(options, inboxes, lastId);
    if (replayPoints !== undefined) broker.#streams.restore(replayPoints);
    if (broker.#shared !== undefined) {
      broker.#timers.push(
        ...await watchCluster(broker.#shared, {
          wake: (agents) => broker.#wake(agents),
          replaced: (agent, session) => broker.#streams.replaced(agent, session),
          look: () => broker.#agents.look(true).catch(() => {}),
        }),
      );
    }
    const missing = options.agents.filter((agent) => !broker.#inboxes.has(agent));
    await Promise.all(missing.map((agent) => broker.#agents.create(agent)));
    await broker.#retention.expireNow();
    return broker;
  }

  /**
   * Stores a message for `to`, or for every other known agent when `to` is omitted.
   * Resolves after the commit, with one envelope per recipient.
   */
  publish(from: AgentName, to: AgentName | undefined, payload: Payload, options: PublishOptions = {}): Promise<Published> {
    return this.publishBatch(from, to, [payload], options);
  }

  /**
   * Stores several messages in one commit, all or none; resolves with the envelopes in order (message by message).
   * A broadcast leaves out recipients whose inbox is full (and says so); a publish to one recipient is refused.
   */
  publishBatch(from: AgentName, to: AgentName | undefined, payloads: Payload[], options: PublishOptions = {}): Promise<Published> {
    const { idempotencyKey } = options;
    if (idempotencyKey === undefined) return this.#publishes.publish(from, to, payloads, options);
    const request = { to, replyTo: options.replyTo, payloads: options.keyNamesMessage ? undefined : payloads };
    return this.#idempotent.once(from, idempotencyKey, request, (storedKey) =>
      this.#publishes.publish(from, to, payloads, { ...options, idempotencyKey: storedKey }));
  }

  /** A commit's messages, in id order, handed out before any publisher hears back: one write per stream. */
  #committed(stored: Envelope[]): void {
    this.#observers.committed(stored.length);
    if (this.#shared !== undefined) {
      // An id below these may commit on another broker after them, and a reader there may take them first: the
      // streams and waiters of these inboxes take from the table.
      for (const envelope of stored) this.#lastId = Math.max(this.#lastId, envelope.id);
      this.#wake([...new Set(stored.map((envelope) => envelope.to))]);
      return;
    }
    const live = new Map<AgentName, Envelope[]>();
    for (const envelope of stored) {
      this.#lastId = Math.max(this.#lastId, envelope.id);
      // An awaited reply, and what follows it, is its waiter's first: the other readers read it once it is released.
      const heldBack = this.#awaited.heldBack(envelope);
      if (this.#waiters.claim(envelope, !heldBack)) this.#deliveries.take(envelope);
      else if (heldBack) this.#awaited.stop(envelope);
      else if (live.has(envelope.to)) live.get(envelope.to)!.push(envelope);
      else if (this.#streams.has(envelope.to)) live.set(envelope.to, [envelope]);
    }
    for (const [agent, envelopes] of live) this.#streams.offer(agent, envelopes);
  }

  /** Streams and waiters of these agents (all when undefined) take from the store from where they are. */
  #wake(agents: AgentName[] | undefined): void {
    // A read now would fail and end the streams; the re-read after the outage finds what they missed.
    if (this.#store.outage !== undefined) return;
    this.#streams.wake(agents);
    for (const agent of agents ?? this.#waiters.agents()) if (this.#waiters.count(agent) > 0) this.#takes.serveWaiters(agent);
    this.#observers.woken(agents);
  }

  /** The oldest undelivered message for `agent`, or the next to arrive within `timeoutMs` (see `Takes.wait`). */
  wait(agent: AgentName, timeoutMs: number, clientGone?: AbortSignal): Promise<Envelope | undefined> {
    return this.#takes.wait(agent, timeoutMs, clientGone);
  }

  /**
   * The reply to `agent`'s message `questionId`, taken out of order (see `ReplyWaits.waitForReply`); `recorded` is the
   * record of the wait `publishQuestion` made, which the wait ends.
   */
  waitForReply(...args: Parameters<ReplyWaits["waitForReply"]>): Promise<Envelope | undefined> {
    return this.#replyWaits.waitForReply(...args);
  }

  /** Publishes a question whose reply `from` waits for, the wait recorded with it: see `publishQuestion` (asks.ts). */
  publishQuestion(from: AgentName, to: AgentName, payload: Payload, timeoutMs: number, options?: PublishOptions): Promise<Question> {
    return publishQuestion(this.#askDeps, from, to, payload, timeoutMs, options);
  }

  /**
   * Publishes a question whose reply is held from `from`'s in-order readers from its commit, for `holdMs` or until a
   * leased reply wait for it takes the hold over: see `publishHoldingReply` (asks.ts).
   */
  publishHoldingReply(from: AgentName, to: AgentName, payload: Payload, holdMs: number, options?: PublishOptions): Promise<Envelope> {
    return publishHoldingReply(this.#askDeps, from, to, payload, holdMs, options);
  }

  /**
   * Calls `ended` once the hold `publishHoldingReply` made for the reply to `agent`'s question `questionId` ends,
   * however it ends; returns the function that ends it, undefined when it is not held.
   */
  whenReplyHoldEnds(agent: AgentName, questionId: number, ended: () => void): (() => void) | undefined {
    return this.#replyWaits.whenHoldEnds(agent, questionId, ended);
  }

  /** Refuses a wait for a reply that cannot come: see `refuseUnanswerable`. */
  refuseUnanswerable(agent: AgentName, questionId: number): Promise<void> {
    return refuseUnanswerable(this.#store, agent, questionId);
  }

  /** Publishes a question to `to` and waits for the reply to it: see `ask` (asks.ts). */
  ask(from: AgentName, to: AgentName, payload: Payload, timeoutMs: number, clientGone?: AbortSignal, settled?: () => Promise<void> | undefined): Promise<Asked> {
    return ask(this.#askDeps, from, to, payload, timeoutMs, clientGone, settled);
  }

  /** Takes up to `limit` undelivered messages for `agent` (the old read-and-clear): see `Takes.poll`. */
  poll(agent: AgentName, limit: number, options: PollOptions = {}): Promise<Envelope[]> {
    return this.#takes.poll(agent, limit, options);
  }

  /** Up to `limit` undelivered messages for `agent`, oldest first, taking none of them; with `answer`, what fits in it. */
  peek(agent: AgentName, limit: number, answer?: MessageAnswer): Promise<Envelope[]> {
    return this.#takes.peek(agent, limit, answer);
  }

  /** The pending reply to `agent`'s message `questionId`, taking nothing: see `ReplyWaits.peekReply`. */
  peekReply(agent: AgentName, questionId: number, answer?: MessageAnswer): Promise<Envelope | undefined> {
    return this.#replyWaits.peekReply(agent, questionId, answer);
  }

  /** Takes message `id` of `agent`'s alone, out of order, under the caller's `lease`: see `Takes.takeOne`. */
  takeOne(agent: AgentName, id: number, options: Omit<PollOptions, "shownUpTo"> = {}): Promise<Envelope | undefined> {
    return this.#takes.takeOne(agent, id, options);
  }

  /** Runs a leased wait for a reply with the reply recorded as awaited: see `ReplyWaits.awaitingReply`. */
  awaitingReply<T>(
    agent: AgentName,
    questionId: number,
    holdMs: number,
    work: () => Promise<T>,
    keep?: (result: T) => Promise<void> | undefined,
  ): Promise<T> {
    return this.#replyWaits.awaitingReply(agent, questionId, holdMs, work, keep);
  }

  /**
   * An answer of messages each encoded by `encode`, within the broker's budget (`DEFAULT_ANSWER_BUDGET`); with
   * `agent`, also within what answers to that agent's inbox and the broker's may hold until read (`AnswerMemory`),
   * refused at once with 429 or 503 past it (a `leasedTake`, one at a time, only past the broker's: see
   * `AnswerMemory.hold`). Such an answer must be released (`MessageAnswer.release`).
   */
  answer<Item extends { id: number } = Envelope>(encode: (item: Item) => string, agent?: AgentName, leasedTake = false): MessageAnswer<Item> {
    const budget = this.#options.answerBudget ?? DEFAULT_ANSWER_BUDGET;
    const hold = agent === undefined ? undefined : this.#answerMemory.hold(agent, budget, leasedTake);
    return new MessageAnswer(encode, budget, hold);
  }

  /** The newest messages of an inbox for the dashboard, taking and creating nothing: see `readHistory` (history.ts). */
  history(agent: AgentName, limit: number, answer: MessageAnswer<HistoryEntry>): Promise<HistoryEntry[]> {
    return readHistory({
      store: this.#store,
      find: (name) => this.#agents.find(name),
      pendingIn: (inbox) => this.#deliveries.pendingIn(inbox),
    }, agent, limit, answer);
  }

  /** Validates a subscription and returns the function that starts it (see `Streams.prepare`). */
  prepareStream(agent: AgentName, start: StreamStart, format: StreamFormat): Promise<PreparedStream> {
    return this.#streams.prepare(agent, start, format);
  }

  /**
   * ntfy's poll: reads up to `limit` messages from `start` without a stream, and takes those not yet delivered as a
   * `/poll` does (see `replay`). Where it starts is decided as for a stream (`Streams.begin`): ntfy's poll and
   * stream must agree on what an id says.
   */
  replay(agent: AgentName, start: StreamStart, limit: number, answer?: MessageAnswer, clientGone?: AbortSignal): Promise<Envelope[]> {
    // Refused, as a /poll is, while another reader leases the inbox: its holder's take found nothing of what it
    // showed, and said nothing of it (red team 63).
    return this.leases.unleased(agent, () => replay({
      readInOrder: (name, afterId, limit, maxChars) => this.#awaited.readAfter(name, afterId, limit, maxChars),
      shared: this.#shared,
      streams: this.#streams,
      isTaken: (id) => this.#deliveries.taken.has(id),
      took: async (inbox, envelopes) => {
        // What was delivered before (a replay from an id below the cursor) counts again; what was pending is taken.
        const after = inbox.deliveredId;
        const pending = envelopes.filter((envelope) => envelope.id > after);
        this.#deliveries.markDelivered(inbox, envelopes.filter((envelope) => envelope.id <= after));
        if (pending.length === 0) return;
        if (this.#shared === undefined) await this.#takes.commitTake(inbox, pending, after);
        else this.#deliveries.markDelivered(inbox, pending);
      },
    }, agent, start, limit, answer, clientGone));
  }

  /** Creates `agent`'s inbox if it has none (`interop agent add`); resolves with whether it was created. */
  addAgent(agent: AgentName): Promise<boolean> {
    return this.#agents.add(agent);
  }

  /** Deletes `agent`'s inbox for good (`interop agent remove`); see `AgentInboxes.remove`. */
  async removeAgent(agent: AgentName, force: boolean): Promise<number> {
    const deleted = await this.#agents.remove(agent, force);
    // Once the deletion committed: a watcher that looks then finds its messages gone.
    this.#observers.removed(agent);
    return deleted;
  }

  /**
   * Throws `agent_removed` when a read by a client that had `agent`'s inbox on this store (`hadInboxOn`, from the
   * `Interop-Had-Inbox` header) would create it again after the operator removed it (see `AgentInboxes.refuseRemoved`).
   */
  refuseRemoved(agent: AgentName, hadInboxOn: string | undefined): Promise<void> {
    return this.#agents.refuseRemoved(agent, hadInboxOn);
  }

  /**
   * `refuseRemoved`, and until the returned function is called, a removal that lands meanwhile keeps the read from
   * creating the inbox again (see `AgentInboxes.readAsHolder`).
   */
  readAsHolder(agent: AgentName, hadInboxOn: string | undefined): Promise<() => void> {
    return this.#agents.readAsHolder(agent, hadInboxOn);
  }

  /** See `AgentInboxes.watchRemoval`: a wait for `agent`'s messages or replies ends once the operator removes it. */
  watchRemoval(agent: AgentName, onRemoved: () => void): () => void {
    return this.#agents.watchRemoval(agent, onRemoved);
  }

  /** Whether `agent` has an inbox here: a sender without one is any name a client put in `from=` (tokens off). */
  hasInbox(agent: AgentName): boolean {
    return this.#inboxes.has(agent);
  }

  /** Counts a leased wait for `agent` in /status's `waiting` until the returned function is called. */
  countWaiting(agent: AgentName): () => void {
    return this.#status.countWaiting(agent);
  }

  /** Attaches an observer of publishes, deliveries, expiries and dead letters; returns the function that detaches it. */
  observe(observer: BrokerObserver): () => void {
    return this.#observers.add(observer);
  }

  /** The identity of the store its ids come from (`MessageStore.id`). */
  get storeId(): string {
    return this.#store.id;
  }

  /** The status report, of the cluster view as last read on a shared store (for samples: metrics, a start-up check). */
  status(): StatusReport {
    return this.#status.report();
  }

  /** The status report a client asked for (`/agents`): on a shared store, of the cluster view as it is now. */
  currentStatus(): Promise<StatusReport> {
    return this.#status.currentReport();
  }

  /** The status report as UTF-8 JSON (`/status`), rebuilt only when it changed; on a shared store, as it is now. */
  statusJson(): Promise<Uint8Array<ArrayBuffer>> {
    return this.#status.currentJson();
  }

  /**
   * Aborted once `close` begins: a wait that ends then was ended by the broker stopping, not by its client or its
   * clock, and the store it would read next is closing.
   */
  get stopping(): AbortSignal {
    return this.#stopping.signal;
  }

  /**
   * Ends every stream, commits what is queued and closes the store, once `requestsEnded` resolves: requests still in
   * progress (a chunked body still arriving) are served before the store closes. Closed under them, they were
   * answered 503 `storage_failed` "database is not open", which a client does not retry.
   */
  async close(requestsEnded: Promise<void> = Promise.resolve()): Promise<void> {
    this.#stopping.abort();
    for (const timer of this.#timers) clearInterval(timer);
    this.#retention.stop();
    this.#replyWaits.close();
    this.#streams.closeAll({ event: "shutdown", message: "broker stopping" });
    this.#waiters.close();
    await requestsEnded;
    await this.#commits.drain();
    await this.#store.close();
  }
}
