/** An ask (`/ask`): a question published and the reply to it waited for, on this broker or across a shared store's. */
import type { AgentName, Envelope, Payload } from "../message.ts";
import type { InboxRecord, SharedInboxes } from "../store/store.ts";
import type { PublishOptions, Published } from "./publishes.ts";
import type { Takes } from "./takes.ts";
import type { Waiters } from "./waiters.ts";

export interface AskDeps {
  /** Set when other brokers share the store: the reply may be published, and read, through any of them. */
  shared: SharedInboxes | undefined;
  waiters: Waiters;
  takes: Takes;
  inboxFor(agent: AgentName): Promise<InboxRecord>;
  publish(from: AgentName, to: AgentName, payload: Payload, options: PublishOptions): Promise<Published>;
}

/** What an ask ends with: its question, and the reply, undefined when none came (see `ask`). */
export interface Asked {
  question: Envelope;
  reply: Envelope | undefined;
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
  // A shared store's reply may be published through another broker and read there: the wait for it is recorded with
  // the question, in its commit. Recorded once it committed, a reply committed within that round trip (an agent
  // answering from a stream on the same broker as the asker's reader) was read before the record held.
  const awaited = deps.shared === undefined ? undefined : { id: crypto.randomUUID(), ms: timeoutMs };
  let question: Envelope;
  try {
    ({ envelopes: [question] } = await deps.publish(from, to, payload, { awaited }));
  } catch (error) {
    // A commit in doubt whose outcome could not be read back may have stored the record: it would hold the reply
    // from every reader until the ask's timeout.
    if (awaited !== undefined) void deps.shared!.endAwait(from, awaited.id).catch(() => {});
    throw error;
  }
  // On a broker of its own, held from the asker's in-order readers from the commit on, as the record holds it on a
  // shared store: a reply committed while the ask settles must wait in the inbox for it, not go to a stream.
  const release = deps.takes.holdReply(from, question.id);
  try {
    const deadline = Date.now() + timeoutMs;
    const settling = settled?.();
    // Registered in the same turn as the commit: the reply cannot arrive before it.
    if (settling === undefined && awaited === undefined) return { question, reply: await deps.waiters.wait(from, question.id, timeoutMs, clientGone) };
    await settling;
    // A reply that came meanwhile waits in the inbox: the wait for a reply takes it from there (and ends the record).
    const left = Math.max(0, deadline - Date.now());
    const recorded = awaited === undefined ? undefined : Promise.resolve(awaited.id);
    return { question, reply: await deps.takes.waitForReply(from, question.id, left, clientGone, recorded) };
  } finally {
    release();
  }
}
