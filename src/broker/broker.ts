/** The broker: publish, poll, stream and status over one durable inbox per agent. Knows the store only by its interface. */
import { InteropError } from "../errors.ts";
import type { AdmitAgent, AgentUse } from "./agent_admission.ts";
import { type AgentName, type Envelope, type Payload, refuseReservedField } from "../message.ts";
import type { StatusReport } from "../status_report.ts";
import type { ClusterView, DeadLetter, InboxRecord, MessageOutcome, MessageStore, Parties, SharedInboxes } from "../store/store.ts";
import { CommitQueue } from "./commit_queue.ts";
import type { StreamFormat } from "./stream_format.ts";
import { IdempotentPublishes } from "./idempotent_publishes.ts";
import { type BrokerObserver, Observers } from "./observers.ts";
import { allValues, limitFor, type PerAgent, uniform } from "./per_agent.ts";
import { RateLimiter } from "./rate_limiter.ts";
import { replyContext } from "./replies.ts";
import { applyRetention, retentionInterval } from "./retention.ts";
import { buildStatus, StatusDocument, type StatusInput } from "./status.ts";
import { settled, SharedWaiters } from "./shared_waiters.ts";
import { resolveStart, type StreamStart } from "./stream_start.ts";
import { type StreamStarter, Streams } from "./streams.ts";
import { Waiters } from "./waiters.ts";

export type { StreamStarter } from "./streams.ts";

/** How often streams on a store other brokers share re-read it without a wake-up, in ms. */
const IDLE_REREAD_MS = 5000;
/** How often the cluster view (the brokers, where the streams are) is read again, in ms. */
const CLUSTER_REFRESH_MS = 1000;

export interface BrokerOptions {
  store: MessageStore;
  dataDir: string;
  /** Agents whose inboxes exist from the start, so the first broadcast has somewhere to go. */
  agents: AgentName[];
  /** Undelivered messages one inbox may hold before publishes to it are refused. */
  maxPending: PerAgent<number>;
  /** How long delivered messages stay for replay, in ms. */
  retentionMs: number;
  /** How long an undelivered message may wait before it expires, in ms (0: it waits until delivered). */
  pendingTtlMs?: PerAgent<number>;
  /** Told of expired messages, so they are never dropped silently. */
  onExpired?(agent: AgentName, count: number): void;
  heartbeatMs: number;
  /** How long a stream's client may read nothing while data waits before it is cut off, in ms. */
  writeTimeoutMs: number;
  /** The deepest reply chain accepted; deeper replies are refused, which stops agents auto-replying in a loop. */
  maxHops: number;
  /** Messages per second one sender may publish (0: no limit), with bursts up to twice that. */
  rateLimit?: number;
  /**
   * Called before an inbox is created for an agent that is neither configured nor stored (a publish to it, or
   * its first read), with the agents that have one: throws to refuse it (`unknown_agent`, `too_many_agents`).
   * Without it, any name gets an inbox.
   */
  admitAgent?: AdmitAgent;
  /** What a second stream for an agent that has one does: take over (the old one gets `replaced`), or get 409. */
  secondStream?: "replace" | "refuse";
  /**
   * How far back before a stream ended its writes count as unconfirmed, in ms: a stream that resumes without an
   * id gets them again (0: only what is pending).
   */
  resumeWindowMs?: number;
  now?: () => number;
}

export interface PublishOptions {
  /** Answer this message: the reply joins its conversation, one hop deeper. */
  replyTo?: number;
  /** A publish retried with the same key (and sender) returns the first one's messages instead of storing again. */
  idempotencyKey?: string;
  /**
   * Called once the messages are in the commit queue, before they are committed: what is published after this
   * call commits after them (a connection's pipelined publishes start each at its predecessor's).
   */
  queued?: () => void;
}

/** A recipient of a broadcast that did not get the message, and why. */
export interface RefusedRecipient {
  agent: AgentName;
  code: "inbox_full";
  reason: string;
}

/** What a publish stored (one envelope per recipient and message) and, for a broadcast, who was left out. */
export interface Published {
  envelopes: Envelope[];
  refused: RefusedRecipient[];
}

export class Broker {
  #options: BrokerOptions;
  #store: MessageStore;
  #commits: CommitQueue;
  #inboxes = new Map<AgentName, InboxRecord>();
  #streams: Streams;
  #waiters = new Waiters();
  #observers = new Observers();
  #statusDocument = new StatusDocument();
  #rateLimiter: RateLimiter;
  #idempotent: IdempotentPublishes;
  /** Messages taken out of order by a wait, above their inbox's cursor: streams and polls skip them. */
  #taken = new Set<number>();
  /** Messages written to a stream again (a resume from before them), per agent since the broker started. */
  #redelivered = new Map<AgentName, number>();
  #lastId: number;
  #startedAt: number;
  #timers: ReturnType<typeof setInterval>[] = [];
  #now: () => number;
  /**
   * Other brokers write to the store too: cursors are the store's, taken with compare-and-set, and streams and
   * waiters read the table when woken instead of taking what this broker's commits offer.
   */
  #shared: SharedInboxes | undefined;
  /** The brokers on the shared store and where the streams are, as last read. */
  #cluster: ClusterView | undefined;
  /** On a shared store: waiters are handed what is taken from the table for them. */
  #sharedWaiters: SharedWaiters | undefined;

  private constructor(options: BrokerOptions, inboxes: InboxRecord[], lastId: number) {
    this.#options = options;
    this.#store = options.store;
    this.#commits = new CommitQueue(options.store, (stored) => this.#committed(stored));
    this.#idempotent = new IdempotentPublishes(options.store);
    this.#rateLimiter = new RateLimiter(options.rateLimit ?? 0, (options.rateLimit ?? 0) * 2, options.now);
    this.#now = options.now ?? Date.now;
    this.#shared = options.store.shared;
    if (this.#shared !== undefined) {
      this.#sharedWaiters = new SharedWaiters({
        waiters: this.#waiters,
        shared: this.#shared,
        store: options.store,
        inboxFor: (agent) => this.#inboxFor(agent, "send"),
        take: (agent, limit) => this.poll(agent, limit),
        tookOutOfOrder: (inbox, envelope) => this.#tookOutOfOrder(inbox, envelope),
      });
    }
    this.#streams = new Streams({
      store: options.store,
      inboxFor: (agent) => this.#inboxFor(agent, "read"),
      lastId: () => this.#lastId,
      sawId: (id) => (this.#lastId = Math.max(this.#lastId, id)),
      isTaken: (id) => this.#taken.has(id),
      delivered: (inbox, envelopes) => this.#markDelivered(inbox, envelopes),
      ended: (agent) => this.#touch(agent),
      now: this.#now,
      secondStream: options.secondStream ?? "replace",
      writeTimeoutMs: options.writeTimeoutMs,
      resumeWindowMs: options.resumeWindowMs ?? 0,
      heartbeatMs: options.heartbeatMs,
    });
    this.#startedAt = this.#now();
    this.#lastId = lastId;
    for (const inbox of inboxes) this.#inboxes.set(inbox.agent, inbox);
    this.#timers.push(
      setInterval(() => this.#heartbeat(), this.#streams.heartbeatTickMs),
      setInterval(() => void this.#prune(), retentionInterval(allValues(options.pendingTtlMs ?? uniform(0)))),
    );
    for (const timer of this.#timers) (timer as { unref?: () => void }).unref?.();
  }

  /** Loads the inboxes from the store and makes sure the configured agents have one. */
  static async open(options: BrokerOptions): Promise<Broker> {
    const [inboxes, lastId] = await Promise.all([options.store.loadInboxes(), options.store.lastId()]);
    const broker = new Broker(options, inboxes, lastId);
    if (broker.#shared !== undefined) {
      await broker.#shared.watch((agents) => broker.#wake(agents), (agent, session) => broker.#streams.replaced(agent, session));
      // A notification lost without the connection noticing: every stream re-reads now and then.
      const reread = setInterval(() => broker.#wake(undefined), IDLE_REREAD_MS);
      const shared = broker.#shared;
      const look = () => shared.cluster().then((cluster) => broker.#sawCluster(cluster), () => {});
      await look();
      const refresh = setInterval(look, CLUSTER_REFRESH_MS);
      for (const timer of [reread, refresh]) {
        (timer as { unref?: () => void }).unref?.();
        broker.#timers.push(timer);
      }
    }
    const missing = options.agents.filter((agent) => !broker.#inboxes.has(agent));
    await Promise.all(missing.map((agent) => broker.#createInbox(agent)));
    await broker.#prune();
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
    if (idempotencyKey === undefined) return this.#publishOnce(from, to, payloads, options);
    return this.#idempotent.once(from, idempotencyKey, () => this.#publishOnce(from, to, payloads, options));
  }

  async #publishOnce(from: AgentName, to: AgentName | undefined, payloads: Payload[], options: PublishOptions): Promise<Published> {
    const { replyTo, idempotencyKey } = options;
    // Whatever the entry point: the metadata field is the broker's (a forged Thread.context would ride in it).
    for (const payload of payloads) refuseReservedField(payload);
    const reply = replyTo === undefined ? undefined : await replyContext(this.#store, from, replyTo, this.#options.maxHops);
    // A reply without a recipient goes back to whoever sent the message it answers (a follow-up: to its recipient).
    const recipient = to ?? reply?.otherParty;
    const thread = reply?.askerContext !== undefined && recipient === reply.otherParty
      ? { ...reply.thread, context: reply.askerContext }
      : reply?.thread;
    const recipients = recipient !== undefined ? [recipient] : [...this.#inboxes.keys()].filter((agent) => agent !== from);
    if (recipients.length === 0) {
      throw new InteropError(
        "no_recipient",
        `No recipient: ${from} is the only agent known; pass to=NAME`,
      );
    }
    // Each recipient's copy counts: a broadcast to many agents is as many messages as a publish to each.
    this.#rateLimiter.admit(from, payloads.length * recipients.length);
    const known = recipients.map((agent) => this.#inboxes.get(agent));
    // Known inboxes skip the creation path (and its promise per recipient): this runs per publish.
    const candidates = known.every((inbox) => inbox !== undefined)
      ? known
      : await Promise.all(recipients.map((agent) => this.#inboxFor(agent, "send")));
    const refused: RefusedRecipient[] = [];
    const inboxes = candidates.filter((inbox) => {
      const cap = limitFor(this.#options.maxPending, inbox.agent);
      if (inbox.pending + payloads.length <= cap) return true;
      refused.push({
        agent: inbox.agent,
        code: "inbox_full",
        reason: `Inbox full: ${inbox.agent} has ${inbox.pending} undelivered messages (the cap is ${cap}); it must read them first`,
      });
      return false;
    });
    // One full inbox does not hold up a broadcast to the others; a message no one can take is refused.
    if (inboxes.length === 0) throw new InteropError("inbox_full", refused.map((refusal) => refusal.reason).join("; "));
    this.#touch(from);
    const createdAt = this.#now();
    for (const inbox of inboxes) inbox.pending += payloads.length;
    const commitStarted = performance.now();
    let stored: Envelope[];
    try {
      const committed = this.#commits.append(payloads.flatMap((payload) =>
        inboxes.map((inbox) => ({ from, to: inbox.agent, payload, createdAt, thread, idempotencyKey }))
      ));
      options.queued?.();
      stored = await committed;
    } catch (error) {
      for (const inbox of inboxes) inbox.pending -= payloads.length;
      throw error;
    }
    this.#observers.published(stored, performance.now() - commitStarted);
    return { envelopes: stored, refused };
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
      if (this.#waiters.claim(envelope)) this.#take(envelope);
      else if (live.has(envelope.to)) live.get(envelope.to)!.push(envelope);
      else if (this.#streams.has(envelope.to)) live.set(envelope.to, [envelope]);
    }
    for (const [agent, envelopes] of live) this.#streams.offer(agent, envelopes);
  }

  /** The cluster view as read: inboxes another broker created join this one's, cursors move on. */
  #sawCluster(cluster: ClusterView): void {
    this.#cluster = cluster;
    for (const [agent, deliveredId] of cluster.cursors) {
      const inbox = this.#inboxes.get(agent);
      if (inbox !== undefined) inbox.deliveredId = Math.max(inbox.deliveredId, deliveredId);
      else this.#inboxes.set(agent, { agent, deliveredId, purgedId: 0, pending: 0, lastSeen: null, deadLetters: 0, expired: 0 });
    }
  }

  /** Streams and waiters of these agents (all when undefined) take from the store from where they are. */
  #wake(agents: AgentName[] | undefined): void {
    // A read now would fail and end the streams; the re-read after the outage finds what they missed.
    if (this.#store.outage !== undefined) return;
    this.#streams.wake(agents);
    for (const agent of agents ?? this.#waiters.agents()) if (this.#waiters.count(agent) > 0) void this.#sharedWaiters?.serve(agent);
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
      void this.#sharedWaiters!.serve(agent);
      return await waiting;
    }
    const [pending] = await this.poll(agent, 1);
    return pending ?? await this.#waiters.wait(agent, undefined, timeoutMs, clientGone);
  }

  /**
   * Publishes a question to `to` and waits for the reply to it; `reply` is undefined on timeout, or once
   * `clientGone` aborts (the reply then lands in the asker's inbox).
   */
  async ask(from: AgentName, to: AgentName, payload: Payload, timeoutMs: number, clientGone?: AbortSignal) {
    // The asker waits on its own inbox, as a reader does: the reply needs somewhere to go.
    await this.#inboxFor(from, "read");
    const { envelopes: [question] } = await this.publish(from, to, payload);
    // Registered in the same turn as the commit: the reply cannot arrive before it.
    const reply = await this.#waiters.wait(from, question.id, timeoutMs, clientGone);
    return { question, reply };
  }

  /**
   * Admits `agent`'s inbox as a reader does (created if the admission rules let it): an A2A caller sends and then
   * waits for the reply, which needs somewhere to go, as an asker's does.
   */
  async admitReader(agent: AgentName): Promise<void> {
    await this.#inboxFor(agent, "read");
  }

  /** Counts a message taken out of order (by a wait for a reply) as delivered. */
  #tookOutOfOrder(inbox: InboxRecord, envelope: Envelope): void {
    if (inbox.pending > 0) inbox.pending--;
    this.#observers.delivered(envelope);
  }

  /**
   * Waits for `from`'s reply to message `questionId` (it is taken from `from`'s inbox, as by `ask`); undefined on
   * timeout, or once `clientGone` aborts.
   */
  waitForReply(from: AgentName, questionId: number, timeoutMs: number, clientGone?: AbortSignal): Promise<Envelope | undefined> {
    return this.#waiters.wait(from, questionId, timeoutMs, clientGone);
  }

  /**
   * Withdraws message `id` from `agent`'s inbox before it is delivered (its sender cancelled it): from now on no
   * stream, poll or wait hands it out, nor after a restart (committed before this resolves). False when it was
   * delivered (or taken) already.
   */
  async withdraw(agent: AgentName, id: number): Promise<boolean> {
    const inbox = await this.#inboxFor(agent, "send");
    // Decided and marked in one turn: a delivery either came before (false) or skips it (#taken). The id stays
    // in #taken (one number per cancel): a second cancel must not count it out of `pending` again.
    if (id <= inbox.deliveredId || this.#taken.has(id)) return false;
    // On a shared store the take is the store's (compare-and-set): a reader on another broker may have it already.
    if (this.#shared !== undefined && !(await settled(this.#shared.takeOne(agent, id)))) return false;
    this.#taken.add(id);
    inbox.pending--;
    try {
      await this.#commits.update({ agent, withdrawn: [{ id, at: this.#now() }] });
    } catch (error) {
      this.#taken.delete(id);
      inbox.pending++;
      throw error;
    }
    return true;
  }

  /** Whether message `id` for `agent` was handed out (or withdrawn): above the cursor only a wait or a poll takes one. */
  isDelivered(agent: AgentName, id: number, outcome: MessageOutcome): boolean {
    const inbox = this.#inboxes.get(agent);
    return (inbox !== undefined && id <= inbox.deliveredId) || this.#taken.has(id) || outcome.taken;
  }

  /** The stored message with this id (whoever it is for), and what became of it; undefined once retention removed it. */
  async message(id: number): Promise<{ envelope: Envelope; outcome: MessageOutcome } | undefined> {
    const [envelope, outcome] = await Promise.all([this.#store.find(id), this.#store.outcome(id)]);
    return envelope === undefined ? undefined : { envelope, outcome };
  }

  /** Messages with an Idempotency-Key starting with `prefix` (between `parties`), ids below `beforeId`, newest first. */
  sentWithKeyPrefix(prefix: string, parties: Parties, beforeId: number, limit: number): Promise<Envelope[]> {
    return this.#store.findByKeyPrefix(prefix, parties, beforeId, limit);
  }

  /** Marks a message handed to a waiter as delivered, out of order if need be. */
  #take(envelope: Envelope): void {
    const inbox = this.#inboxes.get(envelope.to)!;
    this.#taken.add(envelope.id);
    this.#tookOutOfOrder(inbox, envelope);
    // Once committed, the store leaves it out of every read; until then, memory does.
    this.#commits.update({ agent: envelope.to, polled: [{ after: envelope.id - 1, upTo: envelope.id }] }).then(
      () => this.#taken.delete(envelope.id),
      () => {
        // Not committed: after a crash it would be delivered once more to the inbox's reader.
      },
    );
  }

  /**
   * Takes up to `limit` undelivered messages for `agent` (the old read-and-clear), committed before returning;
   * with `shownUpTo`, none above that id (what a client already showed from a peek).
   */
  async poll(agent: AgentName, limit: number, shownUpTo = Infinity): Promise<Envelope[]> {
    const inbox = await this.#inboxFor(agent, "read");
    if (this.#shared !== undefined) {
      const taken = await settled(this.#shared.take(agent, limit, shownUpTo === Infinity ? undefined : shownUpTo));
      this.#markDelivered(inbox, taken);
      return taken;
    }
    const after = inbox.deliveredId;
    const taken = (await this.#store.readAfter(agent, after, limit)).filter((envelope) =>
      envelope.id > inbox.deliveredId && envelope.id <= shownUpTo && !this.#taken.has(envelope.id)
    );
    if (taken.length === 0) return taken;
    const upTo = taken[taken.length - 1].id;
    const before = { deliveredId: inbox.deliveredId, pending: inbox.pending };
    this.#markDelivered(inbox, taken);
    try {
      await this.#commits.update({ agent, deliveredId: upTo, polled: [{ after, upTo }] });
    } catch (error) {
      Object.assign(inbox, before);
      throw error;
    }
    return taken;
  }

  /** Up to `limit` undelivered messages for `agent`, oldest first, taking none of them. */
  async peek(agent: AgentName, limit: number): Promise<Envelope[]> {
    const inbox = await this.#inboxFor(agent, "read");
    const pending = await this.#store.readAfter(agent, inbox.deliveredId, limit);
    return pending.filter((envelope) => envelope.id > inbox.deliveredId && !this.#taken.has(envelope.id));
  }

  /**
   * The last `limit` messages of an inbox, each marked pending or not, for the dashboard: reading them takes,
   * delivers and creates nothing, and does not count as the agent being seen.
   */
  async history(agent: AgentName, limit: number): Promise<Array<{ envelope: Envelope; pending: boolean }>> {
    const inbox = this.#inboxes.get(agent);
    if (inbox === undefined) return [];
    const messages = await this.#store.readLatest(agent, limit);
    return messages.map((envelope) => ({ envelope, pending: envelope.id > inbox.deliveredId && !this.#taken.has(envelope.id) }));
  }

  /** Validates a subscription and returns the function that starts it (see `Streams.prepare`). */
  prepareStream(agent: AgentName, start: StreamStart, format: StreamFormat): Promise<StreamStarter> {
    return this.#streams.prepare(agent, start, format);
  }

  /** Reads up to `limit` messages from `start` without a stream; those not yet delivered count as delivered. */
  async replay(agent: AgentName, start: StreamStart, limit: number): Promise<Envelope[]> {
    const inbox = await this.#inboxFor(agent, "read");
    const messages = await this.#store.readAfter(agent, await resolveStart(this.#store, inbox, start, this.#lastId), limit);
    this.#markDelivered(inbox, messages);
    return messages;
  }

  /**
   * Parks a message that `agent`'s push receiver refused for good, so it shows in status instead of vanishing.
   * Only a message addressed to `agent`: any other id is refused exactly as an unknown one, so a dead letter can
   * neither copy another inbox's message nor tell whether an id exists.
   */
  async parkDeadLetter(agent: AgentName, messageId: number, reason: string): Promise<void> {
    if ((await this.#store.find(messageId))?.to !== agent) {
      throw new InteropError(
        "unknown_message",
        `Cannot park message ${messageId} for ${agent}: no message with this id was addressed to ${agent} (or retention removed it)`,
      );
    }
    const inbox = await this.#inboxFor(agent, "read");
    if (!(await this.#store.addDeadLetter(agent, { messageId, reason, parkedAt: this.#now() }))) return;
    inbox.deadLetters++;
    this.#observers.deadLettered(agent, messageId);
  }

  /**
   * The agent's dead letters, each with its message when retention still has it. A letter naming a message for
   * another agent (parked through a hole that let any id in) is left out.
   */
  async deadLetters(agent: AgentName): Promise<Array<DeadLetter & { message: Envelope | undefined }>> {
    const letters = await this.#store.deadLetters(agent);
    const found = await Promise.all(letters.map(async (letter) => ({ ...letter, message: await this.#store.find(letter.messageId) })));
    return found.filter((letter) => letter.message === undefined || letter.message.to === agent);
  }

  /** Creates `agent`'s inbox if it has none (`interop agent add`); resolves with whether it was created. */
  async addAgent(agent: AgentName): Promise<boolean> {
    if (this.#inboxes.has(agent)) return false;
    this.#options.admitAgent?.(agent, [...this.#inboxes.keys()], "add");
    await this.#createInbox(agent);
    return true;
  }

  /**
   * Deletes `agent`'s inbox for good (`interop agent remove`): its messages, cursor and dead letters; the agent is
   * unknown again. Refused while messages are pending or a stream is open, unless `force` (the stream then ends).
   * Resolves with the number of messages deleted.
   */
  async removeAgent(agent: AgentName, force: boolean): Promise<number> {
    const inbox = this.#inboxes.get(agent);
    if (inbox === undefined) {
      throw new InteropError("unknown_agent", `Unknown agent: ${agent} has no inbox; the known agents are ${[...this.#inboxes.keys()].sort().join(", ") || "none"}`);
    }
    const streaming = this.#streams.has(agent);
    if (!force && (inbox.pending > 0 || streaming)) {
      const holds = [
        ...(inbox.pending > 0 ? [`${inbox.pending} pending message${inbox.pending === 1 ? "" : "s"}`] : []),
        ...(streaming ? ["a stream open (its listener would create the inbox again on reconnecting: stop it first)"] : []),
      ];
      throw new InteropError("agent_busy", `Not removed: ${agent} has ${holds.join(" and ")}; pass --force (force=1) to delete it anyway`);
    }
    this.#inboxes.delete(agent);
    this.#streams.removed(agent);
    this.#redelivered.delete(agent);
    try {
      // Publishes to it that were already queued commit first, so the removal takes their messages too.
      await this.#commits.drain();
      return await this.#store.removeInbox(agent);
    } catch (error) {
      if (!this.#inboxes.has(agent)) this.#inboxes.set(agent, inbox);
      throw error;
    }
  }

  /** Attaches an observer of publishes, deliveries, expiries and dead letters; returns the function that detaches it. */
  observe(observer: BrokerObserver): () => void {
    return this.#observers.add(observer);
  }

  /** The identity of the store its ids come from (`MessageStore.id`). */
  get storeId(): string {
    return this.#store.id;
  }

  status(): StatusReport {
    return buildStatus(this.#statusInput());
  }

  /** The status report as UTF-8 JSON, rebuilt only when it changed. */
  statusJson(): Uint8Array<ArrayBuffer> {
    return this.#statusDocument.bytes(this.#statusInput());
  }

  #statusInput(): StatusInput {
    return {
      now: this.#now(),
      startedAt: this.#startedAt,
      dataDir: this.#options.dataDir,
      store: {
        kind: this.#store.kind,
        location: this.#store.location,
        available: this.#store.outage === undefined,
        ...(this.#store.outage === undefined ? {} : { error: this.#store.outage.message }),
      },
      lastId: this.#lastId,
      storeId: this.#store.id,
      inboxes: this.#inboxes,
      streaming: (agent) => this.#streams.has(agent),
      waiting: (agent) => this.#waiters.count(agent),
      redelivered: (agent) => this.#redelivered.get(agent) ?? 0,
      ...(this.#cluster === undefined ? {} : { cluster: this.#cluster }),
    };
  }

  /** Ends every stream, commits what is queued and closes the store. */
  async close(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#streams.closeAll({ event: "shutdown", message: "broker stopping" });
    this.#waiters.close();
    await this.#commits.drain();
    await this.#store.close();
  }

  /**
   * The inbox for `agent`, created (and committed) on first use if `admitAgent` lets it; a read records a request
   * by it.
   */
  async #inboxFor(agent: AgentName, use: AgentUse): Promise<InboxRecord> {
    // On a shared store another broker may have created it since this one last looked (the view is re-read every
    // second): look again before the admission rule calls it unknown.
    if (!this.#inboxes.has(agent) && this.#shared !== undefined) this.#sawCluster(await this.#shared.cluster());
    let inbox = this.#inboxes.get(agent);
    if (inbox === undefined) {
      this.#options.admitAgent?.(agent, [...this.#inboxes.keys()], use);
      inbox = await this.#createInbox(agent);
    }
    if (use === "read") this.#touch(agent);
    return inbox;
  }

  async #createInbox(agent: AgentName): Promise<InboxRecord> {
    // Another request may have created it while this one waited.
    const existing = this.#inboxes.get(agent);
    if (existing !== undefined) return existing;
    const inbox: InboxRecord = { agent, deliveredId: this.#lastId, purgedId: 0, pending: 0, lastSeen: null, deadLetters: 0, expired: 0 };
    this.#inboxes.set(agent, inbox);
    if (this.#shared === undefined) await this.#commits.update({ agent, deliveredId: inbox.deliveredId });
    else inbox.deliveredId = await this.#shared.createInbox(agent, inbox.deliveredId);
    return inbox;
  }

  #touch(agent: AgentName): void {
    const inbox = this.#inboxes.get(agent);
    if (inbox === undefined) return;
    inbox.lastSeen = this.#now();
    this.#commits.note({ agent, lastSeen: inbox.lastSeen });
  }

  #markDelivered(inbox: InboxRecord, envelopes: Envelope[]): void {
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

  #heartbeat(): void {
    this.#streams.heartbeat();
  }

  async #prune(): Promise<void> {
    const policy = {
      ...this.#options,
      pendingTtlMs: this.#options.pendingTtlMs ?? uniform(0),
      onExpired: (agent: AgentName, count: number) => {
        this.#options.onExpired?.(agent, count);
        this.#observers.expired(agent, count);
      },
    };
    try {
      await applyRetention(this.#store, this.#inboxes, policy, this.#now());
    } catch {
      // Retention retries on the next tick; a store that cannot prune still serves.
    }
  }
}
