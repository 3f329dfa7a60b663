/** A publish: who gets the messages, the limits they pass (rate, inbox caps), and their commit. */
import { InteropError } from "../errors.ts";
import { type AgentName, type Envelope, type Payload, refuseReservedField, type Thread } from "../message.ts";
import type { AwaitedReply, InboxRecord, MessageStore } from "../store/store.ts";
import type { AgentInboxes } from "./agent_inboxes.ts";
import type { CommitQueue } from "./commit_queue.ts";
import type { Observers } from "./observers.ts";
import { limitFor, type PerAgent } from "./per_agent.ts";
import { publishOnCurrentView } from "./publish_retry.ts";
import type { RateLimiter } from "./rate_limiter.ts";
import { replyContext } from "./replies.ts";

export interface PublishOptions {
  /** Answer this message: the reply joins its conversation, one hop deeper. */
  replyTo?: number;
  /** A publish retried with the same key (and sender) returns the first one's messages instead of storing again. */
  idempotencyKey?: string;
  /**
   * The key alone names the message (A2A's messageId), so a retry's body is not compared with the first one's: it
   * may differ without being another message (a new contextId made for a message that came without one).
   */
  keyNamesMessage?: boolean;
  /**
   * Called once the messages are in the commit queue, before they are committed: what is published after this
   * call commits after them (a connection's pipelined publishes start each at its predecessor's).
   */
  queued?: () => void;
  /** On a store other brokers share: the sender awaits the reply, recorded in the commit (`NewMessage.awaited`). */
  awaited?: AwaitedReply;
  /**
   * The agent whose rate limit the messages count against, when not their sender's: a dead letter redelivered is
   * its recipient's doing (red team 59: a recipient redelivering in a loop ran its sender out of its rate).
   */
  chargedTo?: AgentName;
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
  /** A keyed broadcast retried: whom the first attempt left out was not kept (see IdempotentPublishes). */
  refusalsUnknown?: boolean;
  /**
   * The wait recorded in this publish's commit (`PublishOptions.awaited`); absent when nothing was committed (a keyed
   * publish retried finds the first one's messages, and shares the first one's answer while that one commits).
   */
  awaited?: AwaitedReply;
}

export interface PublishesDeps {
  store: MessageStore;
  commits: CommitQueue;
  /** The broker's inbox records: a broadcast goes to every one but the sender's. */
  records: Map<AgentName, InboxRecord>;
  agents: AgentInboxes;
  rateLimiter: RateLimiter;
  observers: Observers;
  maxPending: PerAgent<number>;
  maxHops: number;
  /** Whether other brokers share the store (its refusal of a removed recipient is then retried on the new view). */
  shared: boolean;
  now(): number;
}

/** Who a publish goes to: the inboxes that take it, those refused, and its copies counted against the rate limit. */
interface Addressed {
  inboxes: InboxRecord[];
  refused: RefusedRecipient[];
  thread: Thread | undefined;
  copies: number;
}

export class Publishes {
  #deps: PublishesDeps;

  constructor(deps: PublishesDeps) {
    this.#deps = deps;
  }

  /**
   * Stores `payloads` for `to`, or for every other known agent when `to` is omitted, in one commit; resolves with
   * the envelopes in order (message by message). A broadcast leaves out recipients whose inbox is full (and says
   * so); a publish to one recipient is refused.
   */
  publish(from: AgentName, to: AgentName | undefined, payloads: Payload[], options: PublishOptions): Promise<Published> {
    const payer = options.chargedTo ?? from;
    return publishOnCurrentView(
      {
        address: () => this.#address(from, to, payloads, options.replyTo, payer),
        // The first try told its caller it was queued; the retry does not tell it again.
        commit: (addressed, first) => this.#commit(from, payloads, addressed, first ? options : { ...options, queued: undefined }),
        uncount: (addressed) => this.#deps.rateLimiter.giveBack(payer, addressed.copies),
      },
      this.#deps.shared,
      () => this.#deps.agents.look(),
    );
  }

  async #address(
    from: AgentName,
    to: AgentName | undefined,
    payloads: Payload[],
    replyTo: number | undefined,
    payer: AgentName,
  ): Promise<Addressed> {
    const { store, records, maxHops, maxPending } = this.#deps;
    // Whatever the entry point: the metadata field is the broker's (a forged Thread.context would ride in it).
    for (const payload of payloads) refuseReservedField(payload);
    const reply = replyTo === undefined ? undefined : await replyContext(store, from, replyTo, maxHops);
    // A reply without a recipient goes back to whoever sent the message it answers (a follow-up: to its recipient).
    const recipient = to ?? reply?.otherParty;
    const thread = reply?.askerContext !== undefined && recipient === reply.otherParty
      ? { ...reply.thread, context: reply.askerContext }
      : reply?.thread;
    // On a shared store a broadcast goes to the inboxes there are now: one another broker created since this one last
    // looked (once a second) is one of them (one it removed is refused at the commit and left out on the retry). A
    // read that fails leaves the last view: the commit meets the same store and answers for it.
    if (recipient === undefined && this.#deps.shared) await this.#deps.agents.lookAgain().catch(() => {});
    const recipients = recipient !== undefined ? [recipient] : [...records.keys()].filter((agent) => agent !== from);
    if (recipients.length === 0) {
      throw new InteropError(
        "no_recipient",
        `No recipient: ${from} is the only agent known; pass to=NAME`,
      );
    }
    // Each recipient's copy counts: a broadcast to many agents is as many messages as a publish to each.
    const copies = payloads.length * recipients.length;
    this.#deps.rateLimiter.admit(payer, copies);
    const known = recipients.map((agent) => records.get(agent));
    // Known inboxes skip the creation path (and its promise per recipient): this runs per publish.
    const candidates = known.every((inbox) => inbox !== undefined)
      ? known
      : await Promise.all(recipients.map((agent) => this.#deps.agents.inboxFor(agent, "send")));
    const refused: RefusedRecipient[] = [];
    const inboxes = candidates.filter((inbox) => {
      const cap = limitFor(maxPending, inbox.agent);
      if (inbox.pending + payloads.length <= cap) return true;
      refused.push({ agent: inbox.agent, code: "inbox_full", reason: fullReason(inbox.agent, inbox.pending, cap, payloads.length) });
      return false;
    });
    // One full inbox does not hold up a broadcast to the others; a message no one can take is refused.
    if (inboxes.length === 0) throw new InteropError("inbox_full", refused.map((refusal) => refusal.reason).join("; "));
    return { inboxes, refused, thread, copies };
  }

  async #commit(from: AgentName, payloads: Payload[], addressed: Addressed, options: PublishOptions): Promise<Published> {
    const { inboxes, refused, thread } = addressed;
    const { idempotencyKey, awaited } = options;
    this.#deps.agents.touch(from);
    const createdAt = this.#deps.now();
    for (const inbox of inboxes) inbox.pending += payloads.length;
    const doneCommitting = this.#deps.shared ? this.#deps.agents.committing(inboxes, payloads.length) : undefined;
    const commitStarted = performance.now();
    let stored: Envelope[];
    try {
      const committed = this.#deps.commits.append(payloads.flatMap((payload) =>
        inboxes.map((inbox) => ({ from, to: inbox.agent, payload, createdAt, thread, idempotencyKey, awaited }))
      ));
      options.queued?.();
      stored = await committed;
    } catch (error) {
      // Never below 0: on a shared store the count may have been set from the database's meanwhile.
      for (const inbox of inboxes) inbox.pending = Math.max(0, inbox.pending - payloads.length);
      throw error;
    } finally {
      doneCommitting?.();
    }
    this.#deps.observers.published(stored, performance.now() - commitStarted);
    return awaited === undefined ? { envelopes: stored, refused } : { envelopes: stored, refused, awaited };
  }
}

/** Why `count` messages (a batch, when more than one) do not fit in `agent`'s inbox with `pending` of `cap` taken. */
function fullReason(agent: AgentName, pending: number, cap: number, count: number): string {
  if (count === 1) return `Inbox full: ${agent} has ${pending} undelivered messages (the cap is ${cap}); it must read them first`;
  // A batch is stored whole or not at all: a smaller one may fit where this one does not.
  const room = Math.max(0, cap - pending);
  const what = room > 0 ? `send at most ${room} at a time` : "it must read them first";
  return `Inbox full: a batch of ${count} messages does not fit: ${agent} has room for ${room} more (${pending} undelivered, the cap is ${cap}); ${what}`;
}
