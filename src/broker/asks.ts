/** An ask (`/ask`): a question published and the reply to it waited for, on this broker or across a shared store's. */
import { isStorageUnavailable } from "../errors.ts";
import type { AgentName, Envelope, Payload } from "../message.ts";
import type { InboxRecord, SharedInboxes } from "../store/store.ts";
import type { PublishOptions, Published } from "./publishes.ts";
import type { ReplyWaits } from "./reply_waits.ts";
import type { Waiters } from "./waiters.ts";
import { msUntil } from "../sleep.ts";

export interface AskDeps {
  /** Set when other brokers share the store: the reply may be published, and read, through any of them. */
  shared: SharedInboxes | undefined;
  waiters: Waiters;
  replies: ReplyWaits;
  inboxFor(agent: AgentName): Promise<InboxRecord>;
  publish(from: AgentName, to: AgentName, payload: Payload, options: PublishOptions): Promise<Published>;
}

/** What an ask ends with: its question, and the reply, undefined when none came (see `ask`). */
export interface Asked {
  question: Envelope;
  reply: Envelope | undefined;
}

/** A question published, with the record of the wait for its reply on a shared store (see `publishQuestion`). */
export interface Question {
  question: Envelope;
  /** The record's id for `ReplyWaits.waitForReply`, which ends it; undefined on a store of its own (or once writing it failed). */
  recorded: Promise<string | undefined> | undefined;
}

/**
 * Publishes a question from `from` to `to` whose reply `from` waits for, up to `timeoutMs`: on a shared store the
 * wait is recorded with the question, in its commit. Recorded once it committed, a reply committed within that round
 * trip (an agent answering from a stream on the same broker as the asker's reader) was read before the record held.
 * A keyed publish retried (an A2A SendMessage sent again) commits nothing: its wait is recorded on its own, as soon
 * as the question is known. The record must be handed to a `ReplyWaits.waitForReply`, which ends it.
 */
export async function publishQuestion(
  deps: AskDeps,
  from: AgentName,
  to: AgentName,
  payload: Payload,
  timeoutMs: number,
  options: PublishOptions = {},
): Promise<Question> {
  const awaited = deps.shared === undefined ? undefined : { id: crypto.randomUUID(), ms: timeoutMs };
  let published: Published;
  try {
    published = await deps.publish(from, to, payload, { ...options, awaited });
  } catch (error) {
    // A commit in doubt whose outcome could not be read back may have stored the record: it would hold the reply
    // from every reader until the wait's timeout. A refusal (unknown agent, full inbox, rate) stored nothing: ending
    // it would cost a statement and wake every broker's readers of the inbox, for each refused ask.
    if (awaited !== undefined && isStorageUnavailable(error)) void deps.shared!.endAwait(from, awaited.id).catch(() => {});
    throw error;
  }
  const [question] = published.envelopes;
  if (awaited === undefined) return { question, recorded: undefined };
  if (published.awaited?.id === awaited.id) return { question, recorded: Promise.resolve(awaited.id) };
  return { question, recorded: deps.replies.recordAwait(from, question.id, timeoutMs) };
}

/**
 * Publishes a question from `from` to `to` whose reply is held from `from`'s in-order readers (a stream, a poll, a
 * plain wait) from its commit, for `holdMs` or until a leased reply wait for it takes the hold over
 * (`ReplyWaits.holdFromCommit`): for a client that waits for the reply in requests of its own (`interop mcp`'s ask),
 * a reply committed before its first wait arrived went to the asker's stream. On a shared store the hold is recorded
 * in the question's commit.
 */
export async function publishHoldingReply(
  deps: AskDeps,
  from: AgentName,
  to: AgentName,
  payload: Payload,
  holdMs: number,
  options: PublishOptions = {},
): Promise<Envelope> {
  // The reply needs somewhere to be held: a shared store records no hold for an agent without an inbox.
  await deps.inboxFor(from);
  const { question, recorded } = await publishQuestion(deps, from, to, payload, holdMs, options);
  // In the turn the publish resolved: on a broker of its own, nothing else ran since the commit.
  deps.replies.holdFromCommit(from, question.id, holdMs, recorded);
  return question;
}

/**
 * Publishes a question to `to` and waits for the reply to it; `reply` is undefined on timeout, or once
 * `clientGone` aborts (the reply then lands in the asker's inbox). While `settled` returns a promise (the request
 * arrived too recently to know whether its client closed with it), the reply is not taken: it is looked for once
 * that promise resolves.
 */
export async function ask(
  deps: AskDeps,
  from: AgentName,
  to: AgentName,
  payload: Payload,
  timeoutMs: number,
  clientGone?: AbortSignal,
  settled?: () => Promise<void> | undefined,
): Promise<Asked> {
  // The asker waits on its own inbox, as a reader does: the reply needs somewhere to go.
  await deps.inboxFor(from);
  const { question, recorded } = await publishQuestion(deps, from, to, payload, timeoutMs);
  // On a broker of its own, held from the asker's in-order readers from the commit on, as the record holds it on a
  // shared store: a reply committed while the ask settles must wait in the inbox for it, not go to a stream.
  const release = deps.replies.holdReply(from, question.id);
  try {
    const deadline = performance.now() + timeoutMs;
    const settling = settled?.();
    // Registered in the same turn as the commit: the reply cannot arrive before it.
    if (settling === undefined && recorded === undefined) return { question, reply: await deps.waiters.wait(from, question.id, timeoutMs, clientGone) };
    await settling;
    // A reply that came meanwhile waits in the inbox: the wait for a reply takes it from there (and ends the record).
    const left = msUntil(deadline);
    return { question, reply: await deps.replies.waitForReply(from, question.id, left, clientGone, recorded) };
  } finally {
    release();
  }
}
