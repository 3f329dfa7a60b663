/** Where a reply sits in its conversation, and the hop cap that stops two auto-replying agents from looping. */
import { a2aFieldsOf } from "../a2a/interop_payload.ts";
import { isContextId } from "../a2a/protocol.ts";
import { InteropError } from "../errors.ts";
import type { AgentName, Envelope, Thread } from "../message.ts";
import type { MessageStore } from "../store/store.ts";

/**
 * The thread of `replier`'s reply to `replyTo`, and the other party of that message (where the reply goes by
 * default): its sender, or, for a follow-up to the replier's own message, its recipient. Only a message sent to or
 * by the replier may be answered; any other id is refused exactly as an unknown one, so a reply cannot tell
 * whether an id exists, who sent it, or join (and answer an `/ask` in) a conversation of others. `askerContext`
 * is the `Thread.context` of a reply that goes to `otherParty`.
 */
export async function replyContext(
  store: MessageStore,
  replier: AgentName,
  replyTo: number,
  maxHops: number,
): Promise<{ thread: Thread; otherParty: AgentName; askerContext: string | undefined }> {
  const original = await store.find(replyTo);
  // A message its sender withdrew before delivery never reached its recipient, who cannot have read it.
  const unseen = original?.to === replier && (await store.outcome(replyTo)).withdrawnAt !== undefined;
  if (original === undefined || (original.to !== replier && original.from !== replier) || unseen) {
    throw new InteropError(
      "unknown_message",
      `Cannot reply to message ${replyTo} as ${replier}: no message with this id was sent to or by ${replier} (or retention removed it)`,
    );
  }
  const hops = (original.thread?.hops ?? 0) + 1;
  if (hops > maxHops) {
    throw new InteropError(
      "hop_limit",
      `Reply refused: message ${replyTo} is already ${hops - 1} replies deep (the cap is ${maxHops}, serve --max-hops); two agents auto-replying to each other are looping`,
    );
  }
  return {
    thread: { replyTo, conversation: original.thread?.conversation ?? original.id, hops },
    otherParty: original.to === replier ? original.from : original.to,
    askerContext: askerContext(original, replier),
  };
}

/**
 * Refuses a wait by `asker` for the reply to message `questionId` when no reply can come, rather than letting it
 * wait out its timeout: 404 `unknown_message` for an id that was not sent to or by `asker` (or retention removed
 * it), told apart no further than a reply would tell it; 410 `question_gone` for a message its sender withdrew
 * before delivery or its recipient's push receiver refused for good (a dead letter) with no reply to it.
 */
export async function refuseUnanswerable(store: MessageStore, asker: AgentName, questionId: number): Promise<void> {
  const question = await store.find(questionId);
  if (question === undefined || (question.to !== asker && question.from !== asker)) {
    throw new InteropError(
      "unknown_message",
      `Cannot wait for a reply to message ${questionId} as ${asker}: no message with this id was sent to or by ${asker} (or retention removed it)`,
    );
  }
  const { withdrawnAt, deadLetter } = await store.outcome(questionId);
  if (withdrawnAt === undefined && deadLetter === undefined) return;
  // Answered, then parked (`listen --a2a` parks a message whose task failed once its sender has that answer): the
  // reply came, and the wait is for it.
  if (withdrawnAt === undefined && (await store.readReplies(asker, questionId, 0, 1)).length > 0) return;
  const why = withdrawnAt !== undefined
    ? "its sender withdrew it before it was delivered"
    : `${question.to}'s push receiver refused it for good (a dead letter: ${deadLetter!.reason})`;
  throw new InteropError("question_gone", `No reply to message ${questionId} will come: ${why}`);
}

/**
 * The A2A context the asker sent its question in, vouched for an answer that goes back to the asker: only one an
 * A2A server takes (a plain publish may carry any string there). Not for an answer to an answer: its context was
 * copied from the other side's message, so that side chose it.
 */
function askerContext(original: Envelope, replier: AgentName): string | undefined {
  if (original.to !== replier || original.thread !== undefined) return undefined;
  const contextId = a2aFieldsOf(original.payload)?.contextId;
  return isContextId(contextId) ? contextId : undefined;
}
